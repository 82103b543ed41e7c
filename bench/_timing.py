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


def interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                cpu: dict[str, float] | None = None) -> dict[str, float]:
    """Best of ``repeats`` wall-clock runs of each function, taken in turn (side by side: load hits all alike).

    ``cpu``, if given, receives each function's best CPU time of the process (all its threads): on a
    loaded machine waiting for a core adds wall time but no CPU time, so CPU times compare more steadily."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
            if cpu is not None:
                cpu[k] = min(cpu.get(k, float("inf")), time.process_time() - c0)
    return best


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares ``y = intercept + slope·x``: (intercept, slope, R²) — a benchmark's fixed and per-unit cost."""
    import numpy as np

    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    slope, icpt = np.polyfit(x, y, 1)
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(np.sum((y - (slope * x + icpt)) ** 2)) / ss if ss else 1.0
    return float(icpt), float(slope), r2
