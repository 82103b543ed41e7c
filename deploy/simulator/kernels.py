"""The reference simulator's compiled kernels (numba, cached beside the module; they release the GIL).

General path (:func:`deliver`, :func:`update_if`): any graph, float64 state, populations ``[B, n]``.
Each step costs one pass over the events of each connection (work ∝ events × fan-out) plus one
fused pass over each IF population. A spike reads its source's pattern in the connection's
:class:`~kdsnn.deploy.simulator.connect.Tables` (runs of targets and the kernel weights they take);
per target, the weights are summed from zero in event order and the sum is added once to the
current: the floating-point operations of a sparse product, so results are bit-identical with
the explicit sparse formulation (:mod:`kdsnn.deploy.simulator.sparse`). A source reaches each target
at most once, so the order of targets within one event does not change any sum.

Integer fast path (:func:`_run_fast` and its leaves): see :mod:`kdsnn.deploy.simulator.fast`. Record
columns are named by the constants below (numba reads module constants as compile-time values).
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from kdsnn.export.loihi import STATE_BITS

V_MIN, V_MAX = -(2 ** (STATE_BITS - 1)), 2 ** (STATE_BITS - 1) - 1  # the 24-bit membrane of the contract (Loihi's)
SPIKES, ANALOG, EXACT = 0, 1, 2  # delivery modes of the general path (see deliver)

# fast path records (int rows): per population, per source row, per extra run, per connection
P_OFF, P_SIZE, P_OUTPUT, P_CONN_LO, P_CONN_HI, P_GRAIN, P_UNIFORM, P_BIAS = range(8)
R_AT, R_BLK, R_K, R_LEN, R_BLOCKS, R_RUNS_LO, R_RUNS_HI, R_SYNOPS = range(8)
U_AT, U_K, U_LEN, U_BLK, U_BLOCKS = range(5)   # runs rows have 8 columns; the last 3 are padding
C_SOURCE, C_EVENTS, C_ROWS = range(3)
S_SPIKES, S_ACTIVE, S_OVERFLOW, S_HMAX, S_HMIN = range(5)   # per-population counters
B_LO, B_HI, B_REACH = range(3)                              # per-population membrane bounds
L_VMIN, L_VMAX, L_HMAX0, L_HMIN0 = range(4)                 # lim: 24-bit range, running max/min start


# ----------------------------------------------------------------------------- general path

@njit(cache=True, nogil=True)
def deliver(ev_cnt: np.ndarray, ev_idx: np.ndarray, ev_val: np.ndarray, mode: int, pattern: np.ndarray,
            first: np.ndarray, kbase: np.ndarray, sptr: np.ndarray, s_at: np.ndarray, s_k: np.ndarray,
            s_seq: np.ndarray, rptr: np.ndarray, run_at: np.ndarray, run_len: np.ndarray, run_k: np.ndarray,
            run_step: np.ndarray, fan: np.ndarray, weight: np.ndarray, cur: np.ndarray, recv: np.ndarray,
            acc: np.ndarray, accv: np.ndarray, mark: np.ndarray, touched: np.ndarray) -> int:  # pragma: no cover
    """Add each row ``b``'s events (sources ``ev_idx[b, :ev_cnt[b]]``) through the tables into ``cur``
    (source ``i`` reads its pattern's weights from ``kbase[i]`` on: single synapses ``sptr[p]:sptr[p + 1]``
    at target ``first[i] + s_at[k]`` with weight index ``s_k[k]``, then runs as in the tables).

    ``mode`` ``SPIKES``: per target, ``acc`` sums the weights from zero in event order and is
    then added once to ``cur``. ``ANALOG``: the same with weight × value (a sum whose weights
    and values both cancel to zero is not added, as a sparse product drops it). ``EXACT``
    (integer weights and currents, sums provably below 2**52: any order gives the same bits):
    weights go straight into ``cur``. ``recv`` marks every target a structural synapse reached.
    Returns the number of events (spikes × structural fan-out).
    """
    events = 0
    analog = mode == ANALOG
    for b in range(cur.shape[0]):
        nt = 0
        cur_b, recv_b = cur[b], recv[b]
        for e in range(ev_cnt[b]):
            i = ev_idx[b, e]
            p, at, kb = pattern[i], first[i], kbase[i]
            events += fan[p]
            v = ev_val[b, e] if analog else 1.0  # a spike adds each weight once (1.0 · w is w, bit for bit)
            lo, hi = sptr[p], sptr[p + 1]
            seq = s_seq[p] and hi > lo  # consecutive weights: no index to read per synapse
            k_lo = kb + s_k[lo] - lo if seq else 0
            if mode == EXACT:
                for k in range(lo, hi):
                    j = at + s_at[k]
                    cur_b[j] += weight[k_lo + k] if seq else weight[kb + s_k[k]]
                    recv_b[j] = True
                for r in range(rptr[p], rptr[p + 1]):
                    j0, k0, step = at + run_at[r], kb + run_k[r], run_step[r]
                    for q in range(run_len[r]):
                        cur_b[j0 + q * step] += weight[k0 + q]
                        recv_b[j0 + q * step] = True
                continue
            # single synapses (a conv's short runs, expanded); ``ws``/``wk`` address the weights either way
            ws, wk = (weight[k_lo + lo:k_lo + hi], s_k[lo:lo]) if seq else (weight[kb:], s_k[lo:hi])
            for k in range(hi - lo):
                j = at + s_at[lo + k]
                if not mark[j]:
                    mark[j] = True
                    touched[nt] = j
                    nt += 1
                acc[j] += v * (ws[k] if seq else ws[wk[k]])
                if analog:
                    accv[j] += v
            for r in range(rptr[p], rptr[p + 1]):  # long runs (a dense layer's rows)
                j0, k0, step = at + run_at[r], kb + run_k[r], run_step[r]
                for q in range(run_len[r]):
                    j = j0 + q * step
                    if not mark[j]:
                        mark[j] = True
                        touched[nt] = j
                        nt += 1
                    acc[j] += v * weight[k0 + q]
                    if analog:
                        accv[j] += v
        for q in range(nt):
            j = touched[q]
            if not analog or acc[j] != 0.0 or accv[j] != 0.0:
                cur_b[j] += acc[j]
            recv_b[j] = True
            acc[j] = 0.0
            accv[j] = 0.0
            mark[j] = False
    return events





@njit(cache=True, nogil=True)
def update_if(v: np.ndarray, cur: np.ndarray, r: np.ndarray, scaled: bool, th: np.ndarray, vr: np.ndarray,
            recv: np.ndarray, spk: np.ndarray, ev_cnt: np.ndarray, ev_idx: np.ndarray, integer: bool,
            stats: np.ndarray, soft: bool = False) -> tuple[float, float]:  # pragma: no cover - compiled
    """One IF step of a population ``[B, n]`` in place: ``h = v + r·cur``; spike iff ``h > θ``; reset
    to ``v_reset`` (``soft``: subtract θ).

    Writes the spikes to ``spk`` and, per row, the spiking indices to ``ev_idx`` (count in
    ``ev_cnt``), adds ``[spikes, active updates, overflow]`` to ``stats``; returns ``(max h, min h)``
    (NaN if any ``h`` is NaN).
    """
    hmax, hmin = -np.inf, np.inf
    spikes = active = overflow = 0
    nan = False
    for b in range(cur.shape[0]):
        n_ev = 0
        for j in range(cur.shape[1]):
            h = v[b, j] + (r[j] * cur[b, j] if scaled else cur[b, j])
            if integer and (h < V_MIN or h > V_MAX):
                overflow += 1
            if h > hmax:
                hmax = h
            if h < hmin:
                hmin = h
            if h != h:
                nan = True
            if h > th[j]:
                v[b, j] = h - th[j] if soft else vr[j]
                spk[b, j] = 1
                ev_idx[b, n_ev] = j
                n_ev += 1
                active += 1
            else:
                v[b, j] = h
                spk[b, j] = 0
                if recv[b, j]:
                    active += 1
        ev_cnt[b] = n_ev
        spikes += n_ev
    stats[0] += spikes
    stats[1] += active
    stats[2] += overflow
    if nan:  # as numpy's max/min: NaN, which then leaves the running maximum as it was
        return np.nan, np.nan
    return hmax, hmin


# ----------------------------------------------------------------------------- integer fast path

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
              weight: np.ndarray, cur: np.ndarray, recv: np.ndarray, values: np.ndarray,
              scaled: bool) -> int:  # pragma: no cover - compiled
    """Add the weights of sources ``ev[e_lo:e_lo + n_ev]`` into ``cur`` run by run; mark their blocks in ``recv``.

    Tables as :func:`_concat` lays them out. A run is a contiguous slice of targets and of
    weights, so its loop vectorizes (integer adds: any order gives the same sums). Unsigned
    indices spare numba's negative-index wraparound. ``scaled``: the source is analog (an
    integer-valued first layer) and each event adds ``values[source] · weight``; the count
    returned is then its effective MACs. Returns the SynOps (structural synapses reached).
    """
    synops = 0
    for e in range(e_lo, e_lo + n_ev):
        src = ev[e]
        i = row_lo + src
        at, blk = np.uint64(rows[i, R_AT]), np.uint64(rows[i, R_BLK])
        synops += rows[i, R_SYNOPS]
        if scaled:
            value = values[src]
            _add_run_scaled(cur, at, weight, np.uint64(rows[i, R_K]), np.uint64(rows[i, R_LEN]), recv, blk,
                            np.uint64(rows[i, R_BLOCKS]), value)
            for r in range(rows[i, R_RUNS_LO], rows[i, R_RUNS_HI]):
                _add_run_scaled(cur, at + np.uint64(runs[r, U_AT]), weight, np.uint64(runs[r, U_K]),
                                np.uint64(runs[r, U_LEN]), recv, blk + np.uint64(runs[r, U_BLK]),
                                np.uint64(runs[r, U_BLOCKS]), value)
        else:
            _add_run(cur, at, weight, np.uint64(rows[i, R_K]), np.uint64(rows[i, R_LEN]), recv, blk,
                     np.uint64(rows[i, R_BLOCKS]))
            for r in range(rows[i, R_RUNS_LO], rows[i, R_RUNS_HI]):
                _add_run(cur, at + np.uint64(runs[r, U_AT]), weight, np.uint64(runs[r, U_K]),
                         np.uint64(runs[r, U_LEN]), recv, blk + np.uint64(runs[r, U_BLK]),
                         np.uint64(runs[r, U_BLOCKS]))
    return synops


@njit(cache=True, nogil=True, inline="always")
def _add_run(cur: np.ndarray, at: np.uint64, weight: np.ndarray, k: np.uint64, n: np.uint64, recv: np.ndarray,
             blk: np.uint64, blocks: np.uint64) -> None:  # pragma: no cover - compiled
    """``cur[at:at + n] += weight[k:k + n]``; ``recv[blk:blk + blocks] = 1`` (one vectorized loop each)."""
    for q in range(n):
        cur[at + q] += weight[k + q]
    for q in range(blocks):
        recv[blk + q] = 1


@njit(cache=True, nogil=True, inline="always")
def _add_run_scaled(cur: np.ndarray, at: np.uint64, weight: np.ndarray, k: np.uint64, n: np.uint64, recv: np.ndarray,
                    blk: np.uint64, blocks: np.uint64, value) -> None:  # pragma: no cover - compiled
    """``cur[at:at + n] += value · weight[k:k + n]``; ``recv[blk:blk + blocks] = 1``. Kept apart from
    :func:`_add_run`: one leaf taking a ``scaled`` flag measured 3–4× slower on spikes (its loops
    stopped vectorizing)."""
    for q in range(n):
        cur[at + q] += value * weight[k + q]
    for q in range(blocks):
        recv[blk + q] = 1


@njit(cache=True, nogil=True)
def _integrate(v: np.ndarray, cur: np.ndarray, th: np.ndarray, vr: np.ndarray, spk: np.ndarray, lim: np.ndarray,
               stats: np.ndarray, uniform: bool, count: bool) -> int:  # pragma: no cover - compiled
    """One integer IF step of one population, in place: ``h = v + cur``; spike iff ``h > θ``; reset; ``cur = 0``.

    One branch-free pass in the state dtype, so it vectorizes; the two flags are loop-invariant
    (the compiler makes one loop per case): ``uniform`` reads θ and the reset once, not per
    neuron; ``count`` counts ``h`` beyond 24-bit signed, which costs as much again and is asked
    for only when the bounds cannot rule it out. Adds to ``stats[S_OVERFLOW]`` and folds
    max/min ``h`` into ``stats[S_HMAX]``/``stats[S_HMIN]``; returns this step's min ``h``.
    """
    vmin, vmax, hmax, hmin = lim[L_VMIN], lim[L_VMAX], lim[L_HMAX0], lim[L_HMIN0]
    th0, vr0 = th[0], vr[0]
    overflow = 0
    for j in range(v.size):
        v[j] += cur[j]
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
              rows: np.ndarray, runs: np.ndarray, weight: np.ndarray, bias: np.ndarray,
              th: np.ndarray, vr: np.ndarray, lim: np.ndarray, bounds: np.ndarray, gather: np.ndarray, spk: np.ndarray,
              out: np.ndarray, stats: np.ndarray, synops: np.ndarray) -> None:  # pragma: no cover - compiled
    """Simulate rows of a batch, every step and population, on a :class:`FastNet` (one call, no Python per step).

    ``flags`` ``[B, T, n_in (padded)]`` uint8: nonzero inputs (the input events); ``values``
    ``[B, T, n_in]``: their integer values when ``analog`` (else unread); ``spk`` ``[B, T, n]`` uint8 receives
    every population's spikes (internal order), ``out`` ``[T, B, n_out]`` the Output's values;
    ``stats`` ``[populations, 5]`` (spikes, active updates, overflow, max h, min h) and ``synops``
    ``[connections]`` are added to. A row runs all its steps before the next row (rows are
    independent), so its state stays in cache.
    """
    n_pop, n, n_in = pops.shape[0], spk.shape[2], flags.shape[2]
    v = np.zeros(n, dtype=bias.dtype)
    cur = np.zeros(n, dtype=bias.dtype)  # zero between steps: a step adds into it, the update clears it
    recv = np.zeros(n, dtype=np.uint8)  # per population: one byte per receive block, from its offset
    ev = np.zeros(n + n_in, dtype=np.int64)
    cnt = np.zeros(n_pop + 1, dtype=np.int64)
    floor = np.zeros(n_pop, dtype=np.int64)  # per population: a lower bound of the membranes so far
    for b in range(flags.shape[0]):
        _fill(v, 0, n)
        floor[:] = bounds[:, B_LO]
        for step in range(flags.shape[1]):
            cnt[n_pop] = _compact(flags[b, step], 0, n_in, ev, n)
            row = spk[b, step]
            for q in range(n_pop):
                lo, size, grain = pops[q, P_OFF], pops[q, P_SIZE], pops[q, P_GRAIN]
                hi = lo + size
                if pops[q, P_BIAS]:
                    _copy(cur, bias, lo, hi)
                _fill(recv, lo, lo + size // grain)
                for c in range(pops[q, P_CONN_LO], pops[q, P_CONN_HI]):
                    synops[c] += _add_runs(ev, conns[c, C_EVENTS], cnt[conns[c, C_SOURCE]], conns[c, C_ROWS], rows,
                                           runs, weight, cur, recv, values[b, step],
                                           analog and conns[c, C_SOURCE] == n_pop)
                if pops[q, P_OUTPUT]:
                    _readout(cur[lo:hi], row, gather, out[step, b])
                    _fill(cur, lo, hi)
                    continue
                count = (floor[q] - bounds[q, B_REACH] < lim[L_VMIN]
                         or bounds[q, B_HI] + bounds[q, B_REACH] > lim[L_VMAX])
                h_min = _integrate(v[lo:hi], cur[lo:hi], th[lo:hi], vr[lo:hi], row[lo:hi], lim, stats[q],
                                   pops[q, P_UNIFORM] != 0, count)
                floor[q] = min(floor[q], h_min)
                cnt[q] = _compact(row, lo, lo + (size + 7) // 8 * 8, ev, lo)
                stats[q, S_SPIKES] += cnt[q]
                stats[q, S_ACTIVE] += _active(recv[lo:], size // grain, grain, ev[lo:], cnt[q])
