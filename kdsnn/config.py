"""``--config FILE.toml``: options from a file, overridden by flags given on the command line.

Keys are the long option names (``batch-size`` or ``batch_size``), at the top level or in a
table named after the command (``[distill]``), which wins over the top level. Each value is
checked against its option as the command line would check it (an integer where the flag takes
one, true/false for a switch, a list of strings for a repeatable option), so a wrong type is a
one-line error naming the key, before any work.
"""
from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from .errors import KdsnnError
from .outputs import require_path

MAX_BYTES = 1 << 20  # a config file is a few lines; anything larger is not one


def load(path: str, command: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read ``path`` and return ``{dest: value}`` for ``command``'s parser, rejecting unknown keys."""
    p = require_path(path, "--config", "TOML file of options")
    if not p.is_file():
        raise KdsnnError(f"config file {path} does not exist")
    if p.stat().st_size > MAX_BYTES:
        raise KdsnnError(f"config file {path} is {p.stat().st_size:,} bytes; a config file holds options "
                         f"(at most {MAX_BYTES:,} bytes)")
    try:
        raw = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KdsnnError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise KdsnnError(f"config file {path} nests arrays or tables too deeply to be a config file") from None
    merged = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    section = raw.get(command, {})
    if isinstance(section, dict):
        merged.update(section)
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    out: dict[str, Any] = {}
    for key, value in merged.items():
        dest = key.replace("-", "_")
        if dest not in actions:
            raise KdsnnError(f"config file {path}: unknown option {key!r} for `kdsnn {command}`")
        out[dest] = _checked(actions[dest], value, f"config file {path}: {key}")
    if "data_root" in out and out["data_root"]:
        root = Path(out["data_root"]).expanduser()
        out["data_root"] = str(root if root.is_absolute() else (p.parent / root).resolve())
    return out


def _checked(action: argparse.Action, value: Any, where: str) -> Any:
    """``value`` as ``action``'s option takes it, or a one-line error saying what it must be."""
    if action.nargs == 0:  # a switch (store_true / store_false)
        if not isinstance(value, bool):
            raise KdsnnError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_scalar(action, v, where) for v in items]
    return _scalar(action, value, where)


def _scalar(action: argparse.Action, value: Any, where: str) -> Any:
    kind = action.type
    if isinstance(value, (list, dict)):
        raise KdsnnError(f"{where} must be a single value, got {type(value).__name__} {_short(value)}")
    if kind is None or kind is str:
        if not isinstance(value, str):
            raise KdsnnError(f"{where} must be a string, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise KdsnnError(f"{where} must be a number, got {value!r}")
        value = float(value)
    else:  # int, or a checking type such as positive_int: both take the integer's text
        if isinstance(value, bool) or not isinstance(value, int):
            raise KdsnnError(f"{where} must be an integer, got {value!r}")
        try:
            value = kind(str(value))
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise KdsnnError(f"{where} {exc}") from None
    if action.choices is not None and value not in action.choices:
        raise KdsnnError(f"{where} must be one of {', '.join(map(str, action.choices))}, got {value!r}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
