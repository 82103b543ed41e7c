"""Atomic file writes: write to a temporary file beside the target, then rename.

A crash or Ctrl-C mid-write leaves the previous file intact, never a truncated one. The
temporary file is flushed to disk (``fsync``) before the rename and the folder after it, so
a power loss cannot leave an empty or partial file under the final name either. The
destination is checked first (:func:`check_destination`): a folder where the file goes, a
parent that is a file, or a folder that cannot be written is a one-line
:class:`~kdsnn.errors.KdsnnError`, and nothing is created. :func:`staged_folder` does the same
for a command that writes several files into one folder (a report): all of them, or none.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import KdsnnError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``target``."""
    target = Path(target)
    check_destination(target)
    created = _make_parents(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        _remove_empty(created)
        raise KdsnnError(f"cannot write {target}: {exc.strerror or type(exc).__name__} in {target.parent}; "
                         "choose a folder you can write to") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        _fsync(tmp)  # callers write by name (torch.save, h5py, nir.write): reopen to flush the data
        os.replace(tmp, target)
        _fsync(target.parent)  # make the rename itself durable
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
            _remove_empty(created)


def check_destination(target: Path) -> None:
    """Refuse, before anything is created, a destination that cannot become a file."""
    if target.is_dir():
        raise KdsnnError(f"cannot write {target}: it is a folder; give the path of a file")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise KdsnnError(f"cannot write {target}: {parent} is a file, not a folder; choose another path")
            break


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created (outermost first), to undo."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(missing)
        raise KdsnnError(f"cannot create the folder {folder} ({exc.strerror or type(exc).__name__}); "
                         "choose a folder you can write to") from None
    return missing


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders a failed write created (innermost first), where they are still empty."""
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden folder beside ``target`` to write several files into; on success move each of them
    into ``target`` (created if needed), on failure or Ctrl-C remove them all: no partial set of files
    is ever left under ``target``."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise KdsnnError(f"cannot write into {target}: it is a file, not a folder")
    check_destination(target / "x")
    created = _make_parents(target.parent)
    try:
        stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    except OSError as exc:
        _remove_empty(created)
        raise KdsnnError(f"cannot write {target}: {exc.strerror or type(exc).__name__} in {target.parent}") from None
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual permissions
    try:
        yield stage
        if not target.exists():
            stage.rename(target)  # one rename: the folder appears complete
            _fsync(target.parent)
            created = []
        else:
            for f in sorted(stage.iterdir()):
                os.replace(f, target / f.name)
            _fsync(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_empty(created)


def _fsync(path: str | os.PathLike) -> None:
    """Flush a file's or a folder's contents to disk (both are opened read-only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_with(target: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
