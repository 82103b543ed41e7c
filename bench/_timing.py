"""Timing shared by the benchmarks."""
from __future__ import annotations

import time
from collections.abc import Callable


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` wall-clock runs of ``fn`` (as timeit: on a shared machine interference only adds time)."""
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t0)
    return min(best)
