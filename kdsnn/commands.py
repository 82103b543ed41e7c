"""Export and deploy sub-commands, registered from the modules beside their code."""
from __future__ import annotations

import importlib
from collections.abc import Callable

# Each module defines ``register(add)``, where ``add(name, help, handler)`` returns the
# sub-parser; handlers take the parsed namespace and return an exit status.
COMMAND_MODULES = (
    "kdsnn.export.commands",        # quantize, export, inspect
    "kdsnn.deploy.commands",        # simulate, doctor, verify, report, demo
    "kdsnn.deploy.targets.command",     # map (hardware targets)
)


def register(add: Callable) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(add)
