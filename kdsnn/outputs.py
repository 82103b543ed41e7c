"""The output-path guard: what a command may write, checked before it starts working.

A command never writes over one of its own inputs (``export --checkpoint s.pt --out s.pt``,
``distill --teacher X/checkpoint.pt --out X``), never half-fails after minutes of work
because its output names a folder, lies under a file or in a folder it cannot write, and
never replaces an earlier result unless asked (``--force``; training also takes ``--resume``).
:func:`check_file` and :func:`check_folder` refuse in one line; the atomic writer
(:mod:`kdsnn.atomic`) checks the destination again when it writes.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import KdsnnError

Inputs = Mapping[str, "str | os.PathLike | None"]  # the command's input files by flag ("--checkpoint": "s.pt")


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (resolved; by inode when both exist: hard links, symlinks)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor."""
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path(".")  # pragma: no cover - the root exists


def check_writable(path: Path, flag: str, folder: bool) -> None:
    """Refuse a path that cannot become a file (``folder=False``) or folder: an existing folder where a
    file goes (or the reverse), a parent that is a file, or a place this process cannot write to."""
    if path.exists():
        if folder and not path.is_dir():
            raise KdsnnError(f"{flag} {path} is an existing file, but it must be a folder; pass a folder path")
        if not folder and path.is_dir():
            raise KdsnnError(f"{flag} {path} is a folder; give the path of a file to write (e.g. {path}/out"
                             f"{path.suffix or ''})")
    base = nearest_existing(path.parent if not folder or not path.exists() else path)
    if not base.is_dir():
        raise KdsnnError(f"{flag} {path}: its parent {base} is an existing file, not a folder; choose another path")
    probe_writable(base, flag, path)


def probe_writable(folder: Path, flag: str, path: Path) -> None:
    """Create and remove a hidden file in ``folder``: the one test of writability that holds for every
    user (root ignores permission bits, not read-only file systems) and every file system."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".kdsnn-probe-")
    except OSError as exc:
        raise KdsnnError(f"{flag} {path}: cannot write in {folder} ({exc.strerror or type(exc).__name__}); "
                         "choose a folder you can write to") from None
    os.close(fd)
    os.unlink(tmp)


def check_inputs(targets: Iterable[Path], flag: str, inputs: Inputs) -> None:
    """Refuse when a file the command writes is one of its inputs."""
    for target in targets:
        for in_flag, value in inputs.items():
            if value is None or value == "":
                continue
            if _same(Path(value), target):
                raise KdsnnError(f"{flag} {target} is also the input {in_flag} {value}: writing it would destroy the "
                                 "input; choose another output path")


def require_path(path: str | os.PathLike, flag: str, what: str) -> Path:
    """``path`` as a Path, refused when it is empty: ``Path("")`` is the current folder, so an unset shell
    variable (``--out $RUN``) would write the command's files where the user happens to stand."""
    if not str(path).strip():
        raise KdsnnError(f"{flag} is empty; give the path of the {what} (an unset shell variable?)")
    return Path(path)


def check_file(path: str | os.PathLike, flag: str, inputs: Inputs | None = None, force: bool = False) -> Path:
    """Check a file the command will write, before the work: see the module docstring."""
    p = require_path(path, flag, "file to write")
    check_inputs([p], flag, inputs or {})
    check_writable(p, flag, folder=False)
    if p.exists() and not force:
        raise KdsnnError(f"{flag} {p} already exists (an earlier result?); pass --force to replace it, "
                         "or choose another path")
    return p


def check_folder(path: str | os.PathLike, flag: str, writes: Iterable[str], inputs: Inputs | None = None,
                 force: bool = False, existing_hint: str = "pass --force to replace them") -> Path:
    """Check a folder the command will write the files ``writes`` into (names relative to it)."""
    p = require_path(path, flag, "folder to write")
    names = list(writes)
    check_inputs([p / n for n in names], flag, inputs or {})
    check_writable(p, flag, folder=True)
    earlier = [n for n in names if (p / n).exists()]
    if earlier and not force:
        raise KdsnnError(f"{flag} {p} already holds {', '.join(earlier)} (an earlier result?); {existing_hint}, "
                         "or choose another folder")
    return p
