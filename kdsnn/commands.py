"""Export and deploy sub-commands (filled in by kdsnn.export / kdsnn.deploy)."""
from __future__ import annotations

from typing import Callable


def register(add: Callable) -> None:
    """Add the export/deploy sub-commands to the parser via ``add(name, help, handler)``."""
