"""The machine's bounds for the simulator's inner operations, one core, beside the simulator's own kernels.

What the integer fast path does per spike and per step, timed alone on one thread (best of
``--repeats``, the data in cache as in a run):

- **run add**: ``cur[at:at + n] += w[k:k + n]``, int8 weights into int32 currents, the run of one
  kernel row of a 3×3 convolution in channels-last order (n = 3·C_out), at the positions of sorted
  spikes in a 32×32 (C_out 64), 16×16 (128), 8×8 (256) or 4×4 (512) map, weights from a 3×3·C_out²
  kernel: as a plain loop (one spike at a time), and four weight rows per pass (what the simulator
  does with the spikes of one position: ``cur`` loaded and stored once per four);
- **the simulator's delivery**, ``_add_runs`` on the same spikes (its groups, records and block marks);
- **population pass**: NumPy's ``v += cur`` over int32 (a streaming bound) and the simulator's
  ``_integrate`` (add, compare, reset, spike byte, max/min) on one population of 65,536 neurons.

    .venv/bin/python bench/bounds.py [--repeats 7] [--write docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from numba import njit

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._doc import replace_section  # noqa: E402
from bench._timing import timed  # noqa: E402
from kdsnn.deploy.simulator import fast_kernels as kernels  # noqa: E402
from kdsnn.deploy.simulator.kernels import V_MAX, V_MIN  # noqa: E402

MAPS = {64: 32, 128: 16, 256: 8, 512: 4}  # C_out → map side (ResNet18's stages at 32×32 input)
SPIKES = 4096


@njit(cache=True)
def _one(cur, weight, ats, ks, n):  # pragma: no cover - compiled
    for e in range(ats.size):
        at, k = np.uint64(ats[e]), np.uint64(ks[e])
        for q in range(np.uint64(n)):
            cur[at + q] += weight[k + q]


@njit(cache=True)
def _four(cur, weight, ats, ks, n):  # pragma: no cover - compiled
    for e in range(0, ats.size, 4):
        at = np.uint64(ats[e])
        a, b, c, d = np.uint64(ks[e]), np.uint64(ks[e + 1]), np.uint64(ks[e + 2]), np.uint64(ks[e + 3])
        for q in range(np.uint64(n)):
            cur[at + q] += (weight[a + q] + weight[b + q]) + (weight[c + q] + weight[d + q])


def _best(fn, repeats: int) -> float:
    """Best of ``repeats`` timed runs after one untimed run (numba compiles on the first call)."""
    fn()
    return timed(fn, repeats)


def run_adds(c_out: int, repeats: int, rng: np.random.Generator) -> dict:
    """G adds per second of the three ways to deliver the same spikes (four per position) of one conv."""
    side, n = MAPS[c_out], 3 * c_out
    cur = np.zeros((side + 2) * (side + 2) * c_out, np.int32)
    weight = rng.integers(-127, 128, 9 * c_out * c_out, dtype=np.int8)
    pos = np.sort(rng.integers(0, (side + 2) * (side - 1), SPIKES // 4)).repeat(4)
    ats, ks = pos * c_out, rng.integers(0, 9 * c_out * c_out - n, SPIKES)
    # the same spikes as simulator records: one row per spike, its first run = this run, no others
    rows = np.zeros((SPIKES, 8), np.int32)
    rows[:, kernels.R_AT], rows[:, kernels.R_K], rows[:, kernels.R_LEN] = ats, ks, n
    rows[:, kernels.R_BLK], rows[:, kernels.R_BLOCKS], rows[:, kernels.R_SYNOPS] = pos, 3, n
    shape = np.repeat(np.arange(SPIKES // 4), 4).astype(np.int32)
    recv, ev, values = np.zeros(cur.size, np.uint8), np.arange(SPIKES, dtype=np.int64), np.zeros(0, np.int32)
    runs = np.zeros((0, 8), np.int32)
    adds = SPIKES * n
    return {"c_out": c_out, "n": n,
            "one": adds / _best(lambda: _one(cur, weight, ats, ks, n), repeats) / 1e9,
            "four": adds / _best(lambda: _four(cur, weight, ats, ks, n), repeats) / 1e9,
            "sim": adds / _best(lambda: kernels._add_runs(ev, 0, SPIKES, 0, rows, runs, weight, shape, cur, recv,
                                                         values, False), repeats) / 1e9}


def population_pass(repeats: int, rng: np.random.Generator, size: int = 65536) -> dict:
    """G neurons per second: a streaming int32 add, and the simulator's IF update of one population."""
    v = np.zeros(size, np.int32)
    cur = rng.integers(-40, 40, size).astype(np.int32)
    th, vr = np.full(size, 30, np.int32), np.zeros(size, np.int32)
    spk = np.zeros(size, np.uint8)
    lim = np.array([V_MIN, V_MAX, np.iinfo(np.int32).min, np.iinfo(np.int32).max], np.int32)
    stats = np.zeros(5, np.int64)

    def update():
        keep = cur.copy()  # _integrate clears the currents it reads; time the copy apart and take it off
        kernels._integrate(v, keep, keep, th, vr, spk, lim, stats, False, True, False)

    copy_s = _best(lambda: cur.copy(), repeats)
    return {"stream": size / _best(lambda: np.add(v, cur, out=v), repeats) / 1e9,
            "integrate": size / max(_best(update, repeats) - copy_s, 1e-12) / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--write", default=None, help="docs/benchmarks.md: replace the '## Simulator bounds' section")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    adds = [run_adds(c, a.repeats, rng) for c in MAPS]
    for r in adds:
        print(f"C_out {r['c_out']:4d} run {r['n']:5d}: one spike at a time {r['one']:5.1f}, four per pass "
              f"{r['four']:5.1f}, simulator {r['sim']:5.1f} G adds/s")
    pop = population_pass(a.repeats, rng)
    print(f"population pass: streaming add {pop['stream']:.2f} G/s, simulator's IF update {pop['integrate']:.2f} G/s")
    if a.write:
        rows = "\n".join(f"| {r['c_out']} | {r['n']} | {r['one']:.1f} | {r['four']:.1f} | {r['sim']:.1f} |"
                         for r in adds)
        replace_section(Path(a.write), "Simulator bounds", f"""Command: `.venv/bin/python bench/bounds.py \
--repeats {a.repeats} --write docs/benchmarks.md` (one thread; 1-minute load average {load0:.1f} at the start,
{os.getloadavg()[0]:.1f} at the end, on a shared 2-core machine). See the module docstring for what each column times.

| C_out | run (int8 weights) | G adds/s, one spike at a time | four rows per pass | simulator's `_add_runs` |
|---|---|---|---|---|
{rows}

Population pass (65,536 int32 neurons): streaming `v += cur` {pop['stream']:.2f} G neurons/s; the simulator's IF
update (`_integrate`: add, compare, reset, spike byte, max/min) {pop['integrate']:.2f} G neurons/s.
""")


if __name__ == "__main__":
    main()
