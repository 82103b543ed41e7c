"""Host-memory policy for CPU training: keep freed memory for reuse instead of returning it.

glibc serves every allocation above 32 MiB with a fresh ``mmap`` and unmaps it on free, so
each one is paid again in page faults (the kernel zeroes every 4 KiB page on first touch).
An SNN training step folds T into the batch: its maps are T times the ANN's, above that
threshold, and on the benchmark network of docs/benchmarks.md they cost about 217,000 page
faults (850 MB of fresh pages) per step against the ANN's 10,000. Serving large blocks from
the heap and never trimming it makes a step reuse the previous step's pages, as PyTorch's
caching allocator does on CUDA. The price: the process keeps its peak heap until it exits.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameters of glibc's <malloc.h>
_M_MMAP_MAX = -4
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc reuse freed blocks of any size (no mmap, no trimming). Idempotent; returns
    whether the policy is in effect (False off Linux/glibc, where nothing is changed)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # musl and others have no mallopt: leave their defaults
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
    return _applied
