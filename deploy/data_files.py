"""Built-in data files and the user's own: energy profiles and hardware targets are read alike.

A name picks a file shipped in ``deploy/<folder>/NAME.toml`` (package ``kdsnn.deploy``); a path
(or anything ending in ``.toml``/``.json``) reads the user's file. Every problem is a one-line :class:`KdsnnError`
naming the file. A user's file is read only up to :data:`MAX_BYTES` (a target or profile is a page
of figures; anything far larger is a wrong file) and may not nest deeper than a parser can follow.
"""
from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from kdsnn.errors import KdsnnError

T = TypeVar("T")
MAX_BYTES = 1 << 20


def builtin_names(folder: str) -> list[str]:
    """Names of the ``.toml`` files shipped in ``deploy/<folder>``."""
    root = resources.files("kdsnn.deploy") / folder
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_data_file(spec: str | Path, folder: str, what: str, parse: Callable[[dict, str, str], T]) -> T:
    """``parse(content, origin, default_name)`` of a built-in file by name or a TOML/JSON file by path.

    ``what`` names the kind of file in messages ("energy profile", "target")."""
    text = str(spec)
    path = Path(text)
    if path.suffix.lower() in (".toml", ".json") or "/" in text or path.is_file():
        if not path.is_file():
            raise KdsnnError(f"{what} file {path} does not exist")
        if path.stat().st_size > MAX_BYTES:
            raise KdsnnError(f"{what} file {path} is {path.stat().st_size:,} bytes, more than a {what} file holds "
                             f"(at most {MAX_BYTES:,}); is it the right file?")
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KdsnnError(f"{what} file {path} could not be read ({type(exc).__name__})") from None
        return parse(_decode(raw, path.suffix.lower(), str(path), what), str(path), path.stem)
    names = builtin_names(folder)
    if text not in names:
        raise KdsnnError(f"unknown {what} {text!r}; built-in: {', '.join(names)}; "
                         f"or give the path of a .toml/.json {what} file")
    raw = (resources.files("kdsnn.deploy") / folder / f"{text}.toml").read_text(encoding="utf-8")
    return parse(_decode(raw, ".toml", text, what), f"built-in:{text}", text)


def _decode(raw: str, suffix: str, where: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw) if suffix == ".json" else tomllib.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "JSON" if suffix == ".json" else "TOML"
        raise KdsnnError(f"{what} file {where} is not valid {kind}: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise KdsnnError(f"{what} file {where} nests arrays or tables too deeply to be a {what} file") from None
    if not isinstance(data, dict):
        raise KdsnnError(f"{what} file {where} must be a table/object at the top level")
    return data
