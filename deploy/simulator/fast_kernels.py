"""The reference simulator's integer fast path, compiled (numba, cached beside the module; they release the GIL).

:func:`_run_fast` runs all steps of all populations of a batch in one call per thread; its leaves add
runs of integer weights (:func:`_add_runs`, four spikes at a time where they share targets), integrate
IF populations (:func:`_integrate`) and scan spikes (:func:`_compact`). What the records hold and why
the path is exact: :mod:`kdsnn.deploy.simulator.fast`. Record columns are named by the constants below
(numba reads module constants as compile-time values). The general path is in
:mod:`kdsnn.deploy.simulator.kernels`.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

# fast path records (int rows): per population, per source row, per extra run, per connection
P_OFF, P_SIZE, P_OUTPUT, P_CONN_LO, P_CONN_HI, P_GRAIN, P_UNIFORM, P_BIAS = range(8)
R_AT, R_BLK, R_K, R_LEN, R_BLOCKS, R_RUNS_LO, R_RUNS_HI, R_SYNOPS = range(8)
U_AT, U_K, U_LEN, U_BLK, U_BLOCKS = range(5)   # runs rows have 8 columns; the last 3 are padding
C_SOURCE, C_EVENTS, C_ROWS = range(3)
S_SPIKES, S_ACTIVE, S_OVERFLOW, S_HMAX, S_HMIN = range(5)   # per-population counters
B_LO, B_HI, B_REACH = range(3)                              # per-population membrane bounds
L_VMIN, L_VMAX, L_HMAX0, L_HMIN0 = range(4)                 # lim: 24-bit range, running max/min start
GROUP_MIN_RUN = 16  # spikes whose first run is shorter are added one by one (see _add_runs)


@njit(cache=True, nogil=True)
def _compact(flags: np.ndarray, lo: int, hi: int, ev: np.ndarray, at: int) -> int:  # pragma: no cover - compiled
    """Write the indices ``j - lo`` of the nonzero bytes of ``flags[lo:hi]`` (each 0 or 1) to ``ev[at:]``.

    ``lo`` and ``hi`` are multiples of 8 and ``flags`` is 8-byte aligned: the scan reads one
    8-byte word per 8 neurons and jumps from set byte to set byte (trailing zeros). Returns the count.
    """
    words = flags.view(np.uint64)
    n = 0
    for q in range(lo // 8, hi // 8):
        word = words[q]
        while word:
            ev[at + n] = q * 8 + (np.int64(trailing_zeros(word)) >> 3) - lo
            n += 1
            word &= word - np.uint64(1)
    return n


@njit(cache=True, nogil=True)
def _add_runs(ev: np.ndarray, e_lo: int, n_ev: int, row_lo: int, rows: np.ndarray, runs: np.ndarray,
              weight: np.ndarray, shape: np.ndarray, cur: np.ndarray, recv: np.ndarray, values: np.ndarray,
              scaled: bool) -> int:  # pragma: no cover - compiled
    """Add the weights of sources ``ev[e_lo:e_lo + n_ev]`` into ``cur`` run by run; mark their blocks in ``recv``.

    Tables as :func:`_concat` lays them out. A run is a contiguous slice of targets and of
    weights, so its loop vectorizes (integer adds: any order gives the same sums). Unsigned
    indices spare numba's negative-index wraparound. Consecutive spikes whose rows reach the same
    targets (equal ``shape``: a convolution's input channels at one position) are added in groups of
    up to four: one pass over the targets adds their weight rows, so each current is loaded and stored
    once per group instead of once per spike (three are one group, not 2 + 1: 4-8 % faster delivery
    on trained snn_resnet18; groups of eight measured no faster than two of four). ``scaled``: the source is analog (an
    integer-valued first layer) and each event adds ``values[source] · weight``; the count
    returned is then its effective MACs. Returns the SynOps (structural synapses reached).
    """
    synops = 0
    if scaled:
        for e in range(e_lo, e_lo + n_ev):
            src = ev[e]
            i = row_lo + src
            at, blk = np.uint64(rows[i, R_AT]), np.uint64(rows[i, R_BLK])
            synops += rows[i, R_SYNOPS]
            value = values[src]
            _add_run_scaled(cur, at, weight, np.uint64(rows[i, R_K]), np.uint64(rows[i, R_LEN]), recv, blk,
                            np.uint64(rows[i, R_BLOCKS]), value)
            for r in range(rows[i, R_RUNS_LO], rows[i, R_RUNS_HI]):
                _add_run_scaled(cur, at + np.uint64(runs[r, U_AT]), weight, np.uint64(runs[r, U_K]),
                                np.uint64(runs[r, U_LEN]), recv, blk + np.uint64(runs[r, U_BLK]),
                                np.uint64(runs[r, U_BLOCKS]), value)
        return synops
    e, end = e_lo, e_lo + n_ev
    while e < end:
        i = row_lo + ev[e]
        group = 1
        if rows[i, R_LEN] < GROUP_MIN_RUN:  # a short row (a skip or pointwise synapse): grouping would cost more
            _add_group(cur, np.uint64(rows[i, R_AT]), weight, 1, rows[i, R_K], 0, 0, 0, np.uint64(rows[i, R_LEN]),
                       recv, np.uint64(rows[i, R_BLK]), np.uint64(rows[i, R_BLOCKS]))
            for r in range(rows[i, R_RUNS_LO], rows[i, R_RUNS_HI]):
                _add_group(cur, np.uint64(rows[i, R_AT] + runs[r, U_AT]), weight, 1, runs[r, U_K], 0, 0, 0,
                           np.uint64(runs[r, U_LEN]), recv, np.uint64(rows[i, R_BLK] + runs[r, U_BLK]),
                           np.uint64(runs[r, U_BLOCKS]))
            synops += rows[i, R_SYNOPS]
            e += 1
            continue
        while group < 4 and e + group < end and shape[row_lo + ev[e + group]] == shape[i]:
            group += 1
        j = row_lo + ev[e + 1] if group > 1 else i
        k = row_lo + ev[e + 2] if group > 2 else i
        m = row_lo + ev[e + 3] if group > 3 else i
        synops += rows[i, R_SYNOPS] * group
        at, blk = np.uint64(rows[i, R_AT]), np.uint64(rows[i, R_BLK])
        _add_group(cur, at, weight, group, rows[i, R_K], rows[j, R_K], rows[k, R_K], rows[m, R_K],
                   np.uint64(rows[i, R_LEN]), recv, blk, np.uint64(rows[i, R_BLOCKS]))
        for r in range(rows[i, R_RUNS_HI] - rows[i, R_RUNS_LO]):
            ri = rows[i, R_RUNS_LO] + r
            _add_group(cur, at + np.uint64(runs[ri, U_AT]), weight, group, runs[ri, U_K],
                       runs[rows[j, R_RUNS_LO] + r, U_K], runs[rows[k, R_RUNS_LO] + r, U_K],
                       runs[rows[m, R_RUNS_LO] + r, U_K], np.uint64(runs[ri, U_LEN]), recv,
                       blk + np.uint64(runs[ri, U_BLK]), np.uint64(runs[ri, U_BLOCKS]))
        e += group
    return synops


@njit(cache=True, nogil=True, inline="always")
def _add_group(cur: np.ndarray, at: np.uint64, weight: np.ndarray, group: int, k0: int, k1: int, k2: int, k3: int,
               n: np.uint64, recv: np.ndarray, blk: np.uint64, blocks: np.uint64) -> None:  # pragma: no cover
    """The same run of targets from ``group`` (1-4) spikes, with weights from ``k0``, ``k1``, ...:
    ``cur[at:at + n] += weight[k0:k0 + n] + ...``, one loop per group size (each vectorizes)."""
    a, b, c, d = np.uint64(k0), np.uint64(k1), np.uint64(k2), np.uint64(k3)
    if group == 4:
        for q in range(n):
            cur[at + q] += (weight[a + q] + weight[b + q]) + (weight[c + q] + weight[d + q])
    elif group == 3:
        for q in range(n):
            cur[at + q] += (weight[a + q] + weight[b + q]) + weight[c + q]
    elif group == 2:
        for q in range(n):
            cur[at + q] += weight[a + q] + weight[b + q]
    else:
        for q in range(n):
            cur[at + q] += weight[a + q]
    for q in range(blocks):
        recv[blk + q] = 1


@njit(cache=True, nogil=True, inline="always")
def _add_run_scaled(cur: np.ndarray, at: np.uint64, weight: np.ndarray, k: np.uint64, n: np.uint64, recv: np.ndarray,
                    blk: np.uint64, blocks: np.uint64, value) -> None:  # pragma: no cover - compiled
    """``cur[at:at + n] += value · weight[k:k + n]``; ``recv[blk:blk + blocks] = 1``. Kept apart from
    :func:`_add_group`: one leaf taking a ``scaled`` flag measured 3–4× slower on spikes (its loops
    stopped vectorizing)."""
    for q in range(n):
        cur[at + q] += value * weight[k + q]
    for q in range(blocks):
        recv[blk + q] = 1


@njit(cache=True, nogil=True)
def _integrate(v: np.ndarray, cur: np.ndarray, bias: np.ndarray, th: np.ndarray, vr: np.ndarray, spk: np.ndarray,
               lim: np.ndarray, stats: np.ndarray, biased: bool, uniform: bool,
               count: bool) -> int:  # pragma: no cover - compiled
    """One integer IF step of one population, in place: ``h = v + cur (+ bias)``; spike iff ``h > θ``; reset;
    ``cur = 0``.

    One branch-free pass in the state dtype, so it vectorizes; the flags are loop-invariant
    (the compiler makes one loop per case): ``biased`` adds ``bias`` here, in the pass that reads the
    currents anyway, instead of a pass that copies it into them before delivery (6 % of trained
    snn_resnet18's run); ``uniform`` reads θ and the reset once, not per neuron; ``count`` counts ``h``
    beyond 24-bit signed, which costs as much again and is asked
    for only when the bounds cannot rule it out. Adds to ``stats[S_OVERFLOW]`` and folds
    max/min ``h`` into ``stats[S_HMAX]``/``stats[S_HMIN]``; returns this step's min ``h``.
    """
    vmin, vmax, hmax, hmin = lim[L_VMIN], lim[L_VMAX], lim[L_HMAX0], lim[L_HMIN0]
    th0, vr0 = th[0], vr[0]
    overflow = 0
    for j in range(v.size):
        v[j] += (cur[j] + bias[j]) if biased else cur[j]
        h = v[j]
        cur[j] = 0
        hmax = max(hmax, h)
        hmin = min(hmin, h)
        if count:
            overflow += (h < vmin) | (h > vmax)
        s = h > (th0 if uniform else th[j])
        v[j] = (vr0 if uniform else vr[j]) if s else h
        spk[j] = s
    stats[S_OVERFLOW] += overflow
    stats[S_HMAX] = max(stats[S_HMAX], hmax)
    stats[S_HMIN] = min(stats[S_HMIN], hmin)
    return hmin


@njit(cache=True, nogil=True)
def _active(recv: np.ndarray, blocks: int, grain: int, ev: np.ndarray, n_ev: int) -> int:  # pragma: no cover
    """Active updates of one population and step: neurons of received blocks, plus spikers outside them.

    ``recv[:blocks]`` marks received blocks of ``grain`` neurons; ``ev[:n_ev]`` are the spikers in
    increasing order, so one walk pairs them with their blocks (no division).
    """
    received = 0
    for g in range(blocks):
        received += recv[g]
    active = received * grain
    if received < blocks:
        g, end = 0, grain
        for e in range(n_ev):
            j = ev[e]
            while j >= end:
                g += 1
                end += grain
            active += recv[g] == 0
    return active


@njit(cache=True, nogil=True)
def _readout(cur: np.ndarray, row: np.ndarray, gather: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """The Output's value: its current (float64), plus each passthrough population's spikes in turn."""
    for j in range(cur.size):
        x = float(cur[j])
        for g in range(gather.shape[0]):
            x += row[gather[g, j]]
        out[j] = x


@njit(cache=True, nogil=True)
def _copy(dst: np.ndarray, src: np.ndarray, lo: int, hi: int) -> None:  # pragma: no cover - compiled
    """``dst[lo:hi] = src[lo:hi]`` as a plain loop (numba's slice assignment is several times slower)."""
    for j in range(np.uint64(lo), np.uint64(hi)):
        dst[j] = src[j]


@njit(cache=True, nogil=True)
def _fill(dst: np.ndarray, lo: int, hi: int) -> None:  # pragma: no cover - compiled
    """``dst[lo:hi] = 0`` as a plain loop."""
    for j in range(np.uint64(lo), np.uint64(hi)):
        dst[j] = 0


@njit(cache=True, nogil=True)
def _run_fast(flags: np.ndarray, values: np.ndarray, analog: bool, pops: np.ndarray, conns: np.ndarray,
              rows: np.ndarray, runs: np.ndarray, weight: np.ndarray, shape: np.ndarray, bias: np.ndarray,
              th: np.ndarray, vr: np.ndarray, lim: np.ndarray, bounds: np.ndarray, gather: np.ndarray, window: int,
              side: int, spk: np.ndarray, out: np.ndarray, stats: np.ndarray,
              synops: np.ndarray) -> None:  # pragma: no cover - compiled
    """Simulate rows of a batch, every step and population, on a :class:`FastNet` (one call, no Python per step).

    ``flags`` ``[B, T, n_in (padded)]`` uint8: nonzero inputs (the input events); ``values``
    ``[B, T, n_in]``: their integer values when ``analog`` (else unread); ``spk`` ``[B, T, n]`` uint8 receives
    every population's spikes (internal order), ``out`` ``[T, B, n_out]`` the Output's values;
    ``stats`` ``[populations, 5]`` (spikes, active updates, overflow, max h, min h) and ``synops``
    ``[connections]`` are added to. Rows are independent; they run ``side`` at a time, each with its
    own membranes, event lists and bounds, population by population: a population's steps for every row
    of the sub-batch run before the next population starts, so its connection tables (tens of MB over a
    CIFAR-scale network, more than the L3 cache) are read from memory once per sub-batch instead of once
    per row (bench/scale.py: trained snn_resnet18, one thread, 11-13 → 8.4 ms per inference). Steps run
    in windows of ``window``: each population runs every step of a window before the next population
    starts (its weights and currents stay in cache across the steps), which is valid when every
    connection comes from an earlier population or the Input; a population fed by itself or a later one
    (a recurrent graph) needs ``window = 1``, where it reads that source's spikes of the previous step.
    Integer sums: any order gives the same bits.
    """
    n_pop, n, n_in, steps = pops.shape[0], spk.shape[2], flags.shape[2], flags.shape[1]
    slots = max(window, 2)
    # as few sub-batches as ``side`` allows, of even size: 8 rows at side 7 run 4 + 4, not 7 + 1 (a lone row
    # reads every table from memory again)
    parts = -(-flags.shape[0] // max(1, side))
    sub = max(1, -(-flags.shape[0] // max(1, parts)))
    v = np.empty((sub, n), dtype=bias.dtype)  # per row of the sub-batch: membranes (zeroed per row below)
    cur = np.zeros(n, dtype=bias.dtype)  # zero between steps: a step adds into it, the update clears it
    recv = np.zeros(n, dtype=np.uint8)  # per population: one byte per receive block, from its offset
    ev = np.empty((sub, slots, n + n_in), dtype=np.int32)  # per row and step slot: every population's spikers
    cnt = np.zeros((sub, slots, n_pop + 1), dtype=np.int64)
    floor = np.zeros((sub, n_pop), dtype=np.int64)  # per row and population: a lower bound of the membranes so far
    for b0 in range(0, flags.shape[0], sub):
        nb = min(sub, flags.shape[0] - b0)
        for r in range(nb):
            _fill(v[r], 0, n)
            floor[r, :] = bounds[:, B_LO]
        for t0 in range(0, steps, window):
            t1 = min(steps, t0 + window)
            for r in range(nb):
                for step in range(t0, t1):
                    cnt[r, step % slots, n_pop] = _compact(flags[b0 + r, step], 0, n_in, ev[r, step % slots], n)
            for q in range(n_pop):
                for r in range(nb):
                    b = b0 + r
                    for step in range(t0, t1):
                        _population_step(q, step, slots, values[b, step], analog, pops, conns, rows, runs, weight,
                                         shape, bias, th, vr, lim, bounds, gather, spk[b, step], out[step, b], stats,
                                         synops, v[r], cur, recv, ev[r], cnt[r], floor[r])


@njit(cache=True, nogil=True, inline="always")
def _population_step(q: int, step: int, slots: int, values: np.ndarray, analog: bool, pops: np.ndarray,
                     conns: np.ndarray, rows: np.ndarray, runs: np.ndarray, weight: np.ndarray, shape: np.ndarray,
                     bias: np.ndarray, th: np.ndarray, vr: np.ndarray, lim: np.ndarray, bounds: np.ndarray,
                     gather: np.ndarray, row: np.ndarray, out: np.ndarray, stats: np.ndarray, synops: np.ndarray,
                     v: np.ndarray, cur: np.ndarray, recv: np.ndarray, ev: np.ndarray, cnt: np.ndarray,
                     floor: np.ndarray) -> None:  # pragma: no cover - compiled
    """One step of population ``q``: its bias, every incoming connection's events, then its update (or the readout)."""
    n_pop = pops.shape[0]
    lo, size, grain = pops[q, P_OFF], pops[q, P_SIZE], pops[q, P_GRAIN]
    hi = lo + size
    slot = step % slots
    biased = pops[q, P_BIAS] != 0
    if biased and pops[q, P_OUTPUT]:  # an IF population takes its bias in _integrate
        _copy(cur, bias, lo, hi)
    _fill(recv, lo, lo + size // grain)
    for c in range(pops[q, P_CONN_LO], pops[q, P_CONN_HI]):
        src = conns[c, C_SOURCE]
        now = src < q or src == n_pop  # updated earlier in this step; else its previous step's spikes
        if not now and step == 0:
            continue
        at = slot if now else (step - 1) % slots
        synops[c] += _add_runs(ev[at], conns[c, C_EVENTS], cnt[at, src], conns[c, C_ROWS], rows, runs, weight,
                               shape, cur, recv, values, analog and src == n_pop)
    if pops[q, P_OUTPUT]:
        _readout(cur[lo:hi], row, gather, out)
        _fill(cur, lo, hi)
        return
    count = (floor[q] - bounds[q, B_REACH] < lim[L_VMIN]
             or bounds[q, B_HI] + bounds[q, B_REACH] > lim[L_VMAX])
    h_min = _integrate(v[lo:hi], cur[lo:hi], bias[lo:hi], th[lo:hi], vr[lo:hi], row[lo:hi], lim, stats[q],
                       biased, pops[q, P_UNIFORM] != 0, count)
    floor[q] = min(floor[q], h_min)
    n_ev = _compact(row, lo, lo + (size + 7) // 8 * 8, ev[slot], lo)
    cnt[slot, q] = n_ev
    stats[q, S_SPIKES] += n_ev
    stats[q, S_ACTIVE] += _active(recv[lo:], size // grain, grain, ev[slot, lo:], n_ev)
