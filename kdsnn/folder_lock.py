"""A lock on a run folder while a run writes it: a second run on the same folder refuses.

The lock is ``FOLDER/.kdsnn.lock``, held with ``flock`` (the kernel releases it when the holder
dies, whatever the cause) and holding the holder's pid, so a refusal can name it. A lock file
left by a run that died (``kill -9``, power loss) is not held by anyone: the next run takes it
over and says so in one line. The lock file is removed when the run ends.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from .errors import KdsnnError

LOCK_NAME = ".kdsnn.lock"


def _holder(fd: int) -> str:
    """The pid recorded in an open lock file ("" when it holds none)."""
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 64).decode("ascii", "replace").strip().split(" ")[0]


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "run", flag: str = "--out") -> Iterator[Path]:
    """Hold ``folder``'s lock for the body (creating the folder; an empty folder created here is removed
    again if the body fails). A live holder is a one-line :class:`KdsnnError` naming its pid."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KdsnnError(f"{flag} {folder}: cannot create the folder ({exc.strerror or type(exc).__name__})") from None
    path = folder / LOCK_NAME
    ok = False
    try:
        fd = _acquire(path, folder, what, flag)
        ok = True
    finally:
        if not ok:
            _remove_empty(created)
    try:
        yield path
        created = []  # the run finished: its folder stays
    finally:
        try:
            path.unlink()
        except OSError:
            pass
        os.close(fd)  # releases the flock
        _remove_empty(created)


def _acquire(path: Path, folder: Path, what: str, flag: str) -> int:
    """Open and lock ``path``; retry when another process replaced the file while we waited on it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise KdsnnError(f"{flag} {folder} is being written by another kdsnn {what} (pid {pid or '?'}); "
                             f"wait for it to finish, or choose another {flag}") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the file between our open and our lock: lock the new one
            os.close(fd)
            continue
        stale = _holder(fd)
        if stale and stale != str(os.getpid()):
            print(f"note: took over the lock of {folder} left by kdsnn process {stale}, which is no longer "
                  "running", file=sys.stderr)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()} {' '.join(sys.argv[:3])}\n".encode("ascii", "replace"))
        os.fsync(fd)
        return fd


def _remove_empty(created: list[Path]) -> None:
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break
