"""The reference simulator's compiled kernels of the general path (numba, cached beside the module; they
release the GIL), and the membrane range both paths share.

General path (:func:`deliver`, :func:`update_if`): any graph, float64 state, populations ``[B, n]``.
Each step costs one pass over the events of each connection (work ∝ events × fan-out) plus one
fused pass over each IF population. A spike reads its source's pattern in the connection's
:class:`~kdsnn.deploy.simulator.connect.Tables` (runs of targets and the kernel weights they take);
per target, the weights are summed from zero in event order and the sum is added once to the
current: the floating-point operations of a sparse product, so results are bit-identical with
the explicit sparse formulation (:mod:`kdsnn.deploy.simulator.sparse`). A source reaches each target
at most once, so the order of targets within one event does not change any sum.

The integer fast path's kernels are in :mod:`kdsnn.deploy.simulator.fast_kernels`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from kdsnn.export.loihi import STATE_BITS

V_MIN, V_MAX = -(2 ** (STATE_BITS - 1)), 2 ** (STATE_BITS - 1) - 1  # the 24-bit membrane of the contract (Loihi's)
SPIKES, ANALOG, EXACT = 0, 1, 2  # delivery modes of the general path (see deliver)



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
