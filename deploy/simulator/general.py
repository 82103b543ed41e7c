"""The reference simulator's general path: any graph the plan holds, float64 state, step by step.

Python walks steps and populations; the compiled kernels (:mod:`kdsnn.deploy.simulator.kernels`)
deliver each connection's events through its :class:`~kdsnn.deploy.simulator.connect.Tables` and
update each IF population in one fused pass (``h = v + r·dt·x``; spike iff ``h > θ``; reset to
``v_reset``, or subtract θ under a soft reset: :class:`kdsnn.neuron_models.IFModel`'s step). Leaky
populations (LIF, CubaLIF, and the LI/Integrator readouts) step by their model's own reference
step. A batch is split over threads (rows are independent; results do not depend on the split).
"""
from __future__ import annotations

import numpy as np
import torch

from .kernels import ANALOG, EXACT, SPIKES, V_MAX, V_MIN, deliver, update_if
from .plan import Plan
from .results import LayerStats, NeuronStats, SimState, fresh, merge, parts
from .tables import Tables, exact


def simulate_general(plan: Plan, seq: np.ndarray, analog: bool, state: SimState) -> dict[str, torch.Tensor]:
    """Fill ``state``'s counters and Output sequence from ``seq`` ``[T, B, n_in]``; return the spikes."""
    t, b = seq.shape[0], seq.shape[1]
    tables = plan.cache.setdefault("general", {})  # kept with the plan: built once, reused by every batch
    for c in plan.connections:
        if c.name not in tables:
            tables[c.name] = general_arrays(c.tables(shared=True))
    spikes = {n: np.zeros((t, b, s.size), dtype=np.uint8) for n, s in state.neurons.items()
              if plan.view.models[n].spiking}
    for lo in range(0, b, state.chunk):
        jobs = [(plan, tables, seq[:, r0:r1], analog, state.integer, *fresh(state.layers, state.neurons),
                 {n: s[:, r0:r1] for n, s in spikes.items()}, state.out_seq[:, r0:r1], state.bar if k == 0 else None)
                for k, (r0, r1) in enumerate(parts(lo, min(lo + state.chunk, b), state.workers))]
        done = [_run_chunk(*jobs[0])] if len(jobs) == 1 else list(state.pool.map(lambda j: _run_chunk(*j), jobs))
        for part_layers, part_neurons in done:
            merge(state.layers, state.neurons, part_layers, part_neurons)
    return {n: torch.from_numpy(s.reshape(t, b, *plan.shape[n])) for n, s in spikes.items()}


def _leaky_update(model, state, cur: np.ndarray, recv: np.ndarray, integer: bool, stats: np.ndarray,
                  spk: np.ndarray | None, ev_cnt: np.ndarray,
                  ev_idx: np.ndarray) -> tuple[object, np.ndarray, float, float]:
    """One step of a population whose model is not IF, by the model's own reference step (numpy, float64).

    Same bookkeeping as the compiled IF update: spikes into ``spk`` and the events of each row,
    ``[spikes, active updates, overflow]`` into ``stats``; returns the new state, what the
    population passes on (spikes, or a non-spiking readout's membrane) and max/min pre-reset membrane."""
    h = np.asarray(model.membrane(model.charge(cur, state))) if model.spiking else None
    out, state = model.step(cur, state)
    out = np.asarray(out)
    if h is None:  # a readout has no threshold: its membrane after the step is what it passes on
        h = np.asarray(model.membrane(state))
    if integer:
        stats[2] += int(((h < V_MIN) | (h > V_MAX)).sum())
    if model.spiking:
        fired = out > 0
        spk[:] = fired
        stats[0] += int(fired.sum())
        stats[1] += int((fired | recv).sum())
        ev_cnt[:] = fired.sum(1)
        for row in range(fired.shape[0]):
            idx = np.flatnonzero(fired[row])
            ev_idx[row, :idx.size] = idx
    else:
        stats[1] += int(recv.sum())
    return state, out, float(h.max(initial=-np.inf)), float(h.min(initial=np.inf))


def wait_steps(plan: Plan, name: str) -> np.ndarray | None:
    """How many steps connection ``name`` holds each source element's events (None: it delivers them at once):
    one on a recurrent edge, plus the steps of the Delay nodes on its path."""
    d = plan.delays.get(name)
    if name in plan.delayed:
        return np.ones(1, dtype=np.int64) if d is None else d + 1
    return d


def _arriving(now: tuple[np.ndarray, np.ndarray, np.ndarray],
              ring: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None,
              wait: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The events a connection delivers this step: its source's events of ``k`` steps ago for the source elements
    that wait ``k`` (``now`` for 0, ``ring[-k]`` for k ≥ 1, none before the first step)."""
    if wait is None:
        return [now]
    out = []
    for k in np.unique(wait).tolist():
        ev = now if k == 0 else (ring[-k] if ring is not None and len(ring) >= k else None)
        if ev is None:
            continue
        out.append(ev if wait.size == 1 or np.all(wait == k) else _only(ev, wait == k))
    return out


def _only(ev: tuple[np.ndarray, np.ndarray, np.ndarray], keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The events of ``ev`` (counts, indices, values per row) whose source element is in ``keep``, in order."""
    cnt, idx, val = ev
    m = int(cnt.max(initial=0))
    sub = idx[:, :m]
    valid = (np.arange(m)[None, :] < cnt[:, None]) & keep[sub]
    order = np.argsort(~valid, axis=1, kind="stable")  # the kept events first, in their order
    new_idx = np.zeros_like(idx)
    new_idx[:, :m] = np.take_along_axis(sub, order, 1)
    new_val = val
    if val.shape[1]:
        new_val = np.zeros_like(val)
        new_val[:, :m] = np.take_along_axis(val[:, :m], order, 1)
    return valid.sum(1).astype(np.int64), new_idx, new_val


SHORT = 8  # runs shorter than this are delivered synapse by synapse (less bookkeeping per synapse)


def general_arrays(t: Tables) -> tuple[np.ndarray, ...]:
    """What :func:`deliver` reads of a connection's tables, in its argument order: short runs expanded
    into single synapses (per pattern: target offset and weight index), long runs kept."""
    short = t.run_len < SHORT
    n_single = np.where(short, t.run_len, 0)
    run_of = np.repeat(np.arange(t.run_len.size), n_single)
    q = np.arange(run_of.size) - np.repeat(np.cumsum(n_single) - n_single, n_single)
    s_at, s_k = t.run_at[run_of] + q * t.run_step[run_of], t.run_k[run_of] + q
    cs = np.concatenate([[0], np.cumsum(n_single)])
    sptr = cs[t.rptr]
    keep = np.flatnonzero(~short)
    rptr = np.searchsorted(keep, t.rptr).astype(np.int64)
    step = np.diff(s_k, append=s_k[-1:] + 1) == 1  # weight index k+1 follows k
    breaks = np.concatenate([[0], np.cumsum(~step)])
    s_seq = (breaks[np.maximum(sptr[1:] - 1, sptr[:-1])] == breaks[sptr[:-1]]) | (sptr[1:] == sptr[:-1])
    s_seq = np.append(s_seq, True)
    small = np.int32 if max(s_at.max(initial=0), s_k.max(initial=0)) < 2 ** 31 else np.int64  # fewer bytes per synapse
    return (t.pattern, t.first, t.kbases, sptr, s_at.astype(small), s_k.astype(small), s_seq, rptr, t.run_at[keep],
            t.run_len[keep], t.run_k[keep], t.run_step[keep], t.fan, np.ascontiguousarray(t.weight, dtype=np.float64))


def _params(plan: Plan, name: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-neuron input gain r·dt, threshold and reset of population ``name``."""
    m = plan.view.models[name]
    return tuple(np.ascontiguousarray(np.broadcast_to(a, (n,)), dtype=np.float64)  # type: ignore[return-value]
                 for a in (m.gain, m.threshold, m.v_reset))


def _events(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A step's input ``[B, n_in]`` as events per row: counts, source indices (increasing) and values."""
    b, n_in = x.shape
    b_idx, i_idx = np.nonzero(x)
    ev_cnt = np.bincount(b_idx, minlength=b).astype(np.int64)
    ev_idx = np.zeros((b, n_in), dtype=np.int64)
    ev_val = np.zeros((b, n_in))
    col = np.arange(b_idx.size) - np.repeat(np.cumsum(ev_cnt) - ev_cnt, ev_cnt)
    ev_idx[b_idx, col] = i_idx
    ev_val[b_idx, col] = x[b_idx, i_idx]
    return ev_cnt, ev_idx, ev_val


def _run_chunk(plan: Plan, tables: dict, seq: np.ndarray, analog: bool, integer: bool, layers: dict[str, LayerStats],
               neurons: dict[str, NeuronStats], spikes: dict[str, np.ndarray], out_seq: np.ndarray,
               bar) -> tuple[dict[str, LayerStats], dict[str, NeuronStats]]:
    """Simulate rows of the batch step by step, populations in order; returns the counters it added to.

    Rows are independent, so threads may run disjoint rows (the compiled kernels release the GIL).
    """
    t, b = seq.shape[0], seq.shape[1]
    incoming = {n: plan.incoming(n) for n in plan.populations}
    n_max = max([int(np.prod(plan.shape[c.target])) for c in plan.connections], default=0)
    acc, accv = np.zeros(n_max), np.zeros(n_max)  # per-target scratch of deliver, left zeroed by it
    mark, touched = np.zeros(n_max, dtype=np.bool_), np.zeros(n_max, dtype=np.int64)
    events: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {  # per source: counts, indices, values
        n: (np.zeros(b, dtype=np.int64), np.zeros((b, st.size), dtype=np.int64), np.zeros((b, 0)))
        for n, st in neurons.items()}
    v = {n: np.zeros((b, st.size)) for n, st in neurons.items()}
    leaky = {n: plan.view.models[n] for n in neurons if plan.view.models[n].kind != "IF"}
    lstate = {n: m.initial_state(np.zeros((b, neurons[n].size))) for n, m in leaky.items()}
    params = {n: _params(plan, n, st.size) for n, st in neurons.items() if n not in leaky}
    scaled = {n: bool(np.any(p[0] != 1)) for n, p in params.items()}
    soft = {n: plan.view.models[n].reset == "soft" for n in params}
    counts = {n: np.zeros(3, dtype=np.int64) for n in neurons}  # spikes, active updates, overflow
    mode = {c.name: ANALOG if analog and c.source == plan.input else SPIKES for c in plan.connections}
    for name, conns in incoming.items():
        if all(mode[c.name] == SPIKES for c in conns) and exact(plan.target_bias[name], conns):
            mode.update((c.name, EXACT) for c in conns)
    # a recurrent connection delivers its source's spikes of the step before, a Delay's k steps later: each
    # source keeps its events of the last steps such a connection reads (a ring of event lists: cost ∝ events)
    waits = {c.name: wait_steps(plan, c.name) for c in plan.connections}
    depth: dict[str, int] = {}
    for c in plan.connections:
        if waits[c.name] is not None:
            depth[c.source] = max(depth.get(c.source, 0), int(waits[c.name].max()))
    ring: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {n: [] for n in depth}
    for step in range(t):
        x = seq[step]
        state: dict[str, np.ndarray] = {plan.input: x}
        events[plan.input] = _events(x)
        for name in plan.populations:
            size = plan.target_bias[name].size
            cur = np.empty((b, size))
            cur[:] = plan.target_bias[name]
            recv = np.zeros((b, size), dtype=np.bool_)
            for c in incoming[name]:
                n_ev = 0
                for ev in _arriving(events[c.source], ring.get(c.source), waits[c.name]):
                    n_ev += deliver(*ev, mode[c.name], *tables[c.name], cur, recv, acc, accv, mark, touched)
                st = layers[c.name]
                if mode[c.name] == ANALOG:
                    st.macs_effective += n_ev
                    st.macs_dense += c.synapses * b
                else:
                    st.synops += n_ev
            if name == plan.output:
                for p in plan.passthrough:
                    cur += state[p]
                out_seq[step] = cur
                continue
            cnt, idx, _ = events[name]
            st = neurons[name]
            if name in leaky:
                lstate[name], state[name], hmax, hmin = _leaky_update(
                    leaky[name], lstate[name], cur, recv, integer, counts[name],
                    spikes[name][step] if name in spikes else None, cnt, idx)
            else:
                r, th, vr = params[name]
                spk = spikes[name][step]
                hmax, hmin = update_if(v[name], cur, r, scaled[name], th, vr, recv, spk, cnt, idx, integer,
                                       counts[name], soft[name])
                state[name] = spk
            if size:
                st.max_abs_membrane = max(st.max_abs_membrane, float(hmax), -float(hmin))
            st.updates += b * size
        for n, kept in ring.items():  # this step's events, for the connections that read them later
            kept.append((events[n][0].copy(), events[n][1].copy(), events[n][2]))
            del kept[:-depth[n]]
        if bar is not None:
            bar.update(1)
    for n, st in neurons.items():
        spk_n, active, overflow = (int(v_) for v_ in counts[n])
        st.spikes += spk_n
        st.active_updates += active
        if integer:
            st.overflow += overflow
    return layers, neurons
