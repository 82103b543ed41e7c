"""The memory budget: every size that comes from a user, a file or metadata is checked here
before anything is allocated for it.

Shapes, time steps, sample counts, data set sizes and declared weight counts are believed
nowhere else: a caller works out the bytes its allocation needs and calls :func:`require`,
which refuses in one line (naming the size and the limit) what the machine cannot hold, so
a typo like ``--timesteps 10000000`` ends in a message, not in minutes of swapping and a
``MemoryError``. The limit is a share (:data:`SHARE`) of the memory available now
(``MemAvailable`` of ``/proc/meminfo``, or the cgroup's limit when that is lower; ``os.sysconf``
elsewhere); ``KDSNN_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix) sets it explicitly, e.g.
on a machine shared with other jobs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import KdsnnError

SHARE = 0.5  # of the available memory: the rest is for the process's other data, the OS and neighbours
GPU_SHARE = 0.9  # of a CUDA device's free memory (nothing else of this process lives there)
ENV = "KDSNN_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def human_bytes(n: float) -> str:
    """``3.2 GB``-style size (binary multiples, as ``free -h`` prints them)."""
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"  # pragma: no cover - the loop returns


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    m = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def _cgroup_headroom() -> int | None:
    """What the cgroup (v2) still allows this process's group, if it sets a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
    except OSError:
        return None
    if not limit.isdigit() or not used.isdigit():
        return None  # "max": no limit
    return max(0, int(limit) - int(used))


def available_bytes() -> int:
    """Memory the machine can give this process now (before the :data:`SHARE` is taken)."""
    found = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    if not found:
        try:
            found = [os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
        except (ValueError, OSError, AttributeError):  # no sysconf names: assume a small machine
            found = [4 * 2 ** 30]
    return int(min(found))


def parse_size(text: str) -> int:
    """``"512M"`` → 536870912; a plain number is bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not m:
        raise KdsnnError(f"{ENV}={text!r} is not a size; write bytes or a number with K, M, G or T (e.g. 8G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def limit_bytes(device: object = None) -> tuple[int, str]:
    """The most one allocation may take, and where that figure comes from (for messages). ``device``: a
    CUDA ``torch.device`` whose free memory is the limit (host memory otherwise)."""
    forced = os.environ.get(ENV)
    if forced:
        return parse_size(forced), f"{ENV}={forced}"
    if getattr(device, "type", None) == "cuda":
        try:
            import torch

            free, _ = torch.cuda.mem_get_info(device)
            return int(free * GPU_SHARE), f"{GPU_SHARE:.0%} of the {human_bytes(free)} free on {device}"
        except (RuntimeError, AssertionError):  # no usable CUDA after all: fall back to the host's memory
            pass
    avail = available_bytes()
    return int(avail * SHARE), f"{SHARE:.0%} of the {human_bytes(avail)} this machine has available"


def require(nbytes: float, what: str, hint: str = "", device: object = None) -> None:
    """Refuse in one line when ``nbytes`` (for ``what``, in words) exceeds the budget (of ``device``, a CUDA
    device, or the host's); ``hint`` says what to change ("use fewer --samples")."""
    limit, why = limit_bytes(device)
    if nbytes > limit:
        raise KdsnnError(f"{what} would need {human_bytes(nbytes)} of memory, more than the {human_bytes(limit)} "
                         f"kdsnn allows itself ({why})" + (f"; {hint}" if hint else ""))


def fitting(per_item: float, wanted: int, device: object = None) -> int:
    """How many items of ``per_item`` bytes fit the budget at once, at most ``wanted`` (0: not even one)."""
    limit, _ = limit_bytes(device)
    if per_item <= 0:
        return wanted
    return int(max(0, min(wanted, limit // per_item)))
