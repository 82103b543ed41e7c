"""``--config FILE.toml``: options from a file, overridden by flags given on the command line.

Keys are the long option names (``batch-size`` or ``batch_size``), at the top level or in a
table named after the command (``[distill]``), which wins over the top level.
"""
from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from .errors import KdsnnError


def load(path: str, command: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read ``path`` and return ``{dest: value}`` for ``command``'s parser, rejecting unknown keys."""
    p = Path(path)
    if not p.is_file():
        raise KdsnnError(f"config file {path} does not exist")
    try:
        raw = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KdsnnError(f"config file {path} is not valid TOML: {exc}") from None
    merged = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    section = raw.get(command, {})
    if isinstance(section, dict):
        merged.update(section)
    dests = {a.dest for a in parser._actions if a.dest not in ("help", "config")}
    out: dict[str, Any] = {}
    for key, value in merged.items():
        dest = key.replace("-", "_")
        if dest not in dests:
            raise KdsnnError(f"config file {path}: unknown option {key!r} for `kdsnn {command}`")
        out[dest] = value
    if "data_root" in out and out["data_root"]:
        root = Path(out["data_root"]).expanduser()
        out["data_root"] = str(root if root.is_absolute() else (p.parent / root).resolve())
    return out
