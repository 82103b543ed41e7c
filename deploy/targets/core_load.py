"""Per-core work of a placed graph, from a simulation on real inputs, and what it costs.

For every neuron: the SynOps it receives (each source spike × the structural synapses from
that source to it, the simulator's definition), the analog first-layer MACs it receives
(host work), the spikes it emits and its active updates (a step in which it received an
event or spiked); summed over the neurons each core holds. A spike sends one message to each
distinct core that holds one of its targets. All counts are per inference (batch mean).

On a chip every placed neuron is updated every step, readout integrators included (the
simulator leaves the readout out of its neuron updates), so updates = neurons × T.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ..simulator import Plan
from .placement import fan_out_axons, structure
from .spec import Target


@dataclass
class Load:
    """Per-core counts per inference (lists indexed by core), host work, and notes on exactness."""

    timesteps: int
    samples: int
    synops: list[float]
    synops_from_input: list[float]
    spikes: list[float]
    updates: list[float]
    active_updates: list[float]
    messages: list[float]
    host_macs: float = 0.0
    host_messages: float = 0.0
    notes: list[str] = field(default_factory=list)


def _per_neuron_spikes(sim: Any, pop: str) -> np.ndarray:
    s = torch.as_tensor(sim.spikes[pop])
    return s.reshape(s.shape[0] * s.shape[1], -1).numpy()


def input_nonzero(x: torch.Tensor, input_shape: tuple[int, ...], T: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-step nonzero mask of the input ``[T·B, n_in]`` (direct encoding repeats the static input)."""
    x = torch.as_tensor(x)
    if x.dim() == len(input_shape) + 1:  # [B, ...]: direct encoding, same input every step
        mask = (x.reshape(x.shape[0], -1) != 0).numpy()
        return np.tile(mask, (T, 1)), mask
    mask = (x.reshape(x.shape[0] * x.shape[1], -1) != 0).numpy()  # [T, B, ...]
    return mask, mask


def core_load(plan: Plan, placement: Any, sim: Any, x: torch.Tensor) -> Load:
    """Count each core's work from simulation ``sim`` of inputs ``x`` (see module docstring)."""
    T, B = int(sim.timesteps), int(sim.batch)
    n_cores = len(placement.cores)
    notes: list[str] = []
    recv: dict[str, np.ndarray] = {}
    recv_in: dict[str, np.ndarray] = {}
    reached: dict[str, np.ndarray] = {}
    host_macs = host_msgs = 0.0
    sent = np.zeros(n_cores)
    in_steps, _ = input_nonzero(x, plan.shape[plan.input], T)
    spikes = {p: _per_neuron_spikes(sim, p) for p in plan.view.populations if p in sim.spikes}
    dcount = fan_out_axons(plan, placement)
    for ci, c in enumerate(plan.connections):
        if c.target not in placement.core_of:
            continue
        a = structure(c)
        n_t = a.shape[1]
        recv.setdefault(c.target, np.zeros(n_t))
        recv_in.setdefault(c.target, np.zeros(n_t))
        reached.setdefault(c.target, np.zeros((T * B, n_t), dtype=bool))
        stats = sim.layers.get(c.name)
        if c.source == plan.input:
            ev = in_steps.astype(np.float64)
            per_src = ev.sum(0)
            got = np.asarray(a.T @ per_src).ravel()
            total = float(stats.macs_effective if stats is not None and stats.analog
                          else (stats.synops if stats else got.sum()))
            if stats is not None and abs(got.sum() - total) > 1e-6 * max(1.0, total):
                got = got * (total / got.sum()) if got.sum() else got
                notes.append(f"{c.name}: input work spread over neurons in proportion to their input fan-in "
                             "(the input events were not recorded)")
            if stats is not None and stats.analog:
                host_macs += got.sum()
                host_msgs += float(per_src @ dcount[ci])
            else:
                recv[c.target] += got
                recv_in[c.target] += got
                host_msgs += float(per_src @ dcount[ci])
            reached[c.target] |= (sp.csr_matrix(ev) @ a).toarray() > 0
            continue
        if c.source not in spikes:
            continue
        s = spikes[c.source]
        per_src = s.sum(0).astype(np.float64)
        recv[c.target] += np.asarray(a.T @ per_src).ravel()
        reached[c.target] |= (sp.csr_matrix(s.astype(np.float64)) @ a).toarray() > 0
        if c.source in placement.core_of:  # a population left unplaced (the network does not fit) sends nothing
            sent += np.bincount(placement.core_of[c.source], weights=per_src * dcount[ci], minlength=n_cores)
    load = Load(T, B, [0.0] * n_cores, [0.0] * n_cores, [0.0] * n_cores, [0.0] * n_cores, [0.0] * n_cores,
                list(sent / B), host_macs / B, host_msgs / B, notes)
    for pop, owner in placement.core_of.items():
        n = len(owner)
        active = reached.get(pop, np.zeros((T * B, n), dtype=bool)).copy()
        if pop in spikes:
            active |= spikes[pop] > 0
            own = spikes[pop].sum(0)
        else:
            own = np.zeros(n)
        act = active.sum(0).astype(np.float64)
        st = sim.neurons.get(pop)
        if st is not None and int(act.sum()) != int(st.active_updates):
            notes.append(f"{pop}: active updates recounted per neuron ({int(act.sum())}) differ from the simulator's "
                         f"({st.active_updates})")
        for arr, dst in ((recv.get(pop, np.zeros(n)), load.synops),
                         (recv_in.get(pop, np.zeros(n)), load.synops_from_input),
                         (own, load.spikes), (act, load.active_updates)):
            sums = np.bincount(owner, weights=arr, minlength=n_cores)
            for k in np.nonzero(sums)[0]:
                dst[k] += float(sums[k]) / B
        for k, cnt in zip(*np.unique(owner, return_counts=True), strict=True):
            load.updates[int(k)] += float(cnt) * T
    return load


def combine(loads: list[Load]) -> Load:
    """The load of all inputs from the loads of batches of them: per-inference counts are batch means, so the
    whole is their mean weighted by batch size (updates are neurons × T in every batch)."""
    total = sum(ld.samples for ld in loads)

    def mean(get: Any) -> Any:
        return sum(np.asarray(get(ld), dtype=np.float64) * ld.samples for ld in loads) / total

    first = loads[0]
    notes = list(dict.fromkeys(n for ld in loads for n in ld.notes))
    return Load(first.timesteps, total, *(list(mean(lambda ld, k=k: getattr(ld, k))) for k in
                                          ("synops", "synops_from_input", "spikes")),
                list(first.updates), list(mean(lambda ld: ld.active_updates)), list(mean(lambda ld: ld.messages)),
                float(mean(lambda ld: ld.host_macs)), float(mean(lambda ld: ld.host_messages)), notes)


# ----------------------------------------------------------------------------- energy and time

def estimate(target: Target, placement: Any, load: Load) -> dict[str, Any]:
    """Energy per inference and latency per step from the target's per-operation figures."""
    e, t = (lambda k: target.get("energy", k)), (lambda k: target.get("time", k))
    T = load.timesteps
    syn, upd, act = sum(load.synops), sum(load.updates), sum(load.active_updates)
    msgs = sum(load.messages) + load.host_messages
    energy: dict[str, Any] = {"lines": {}, "missing": [], "notes": []}

    def line(name: str, count: float, key: str, required: bool = True) -> None:
        j = e(key)
        if j is None:
            if count > 0 and required:
                energy["missing"].append(f"energy.{key}")
            elif count > 0:
                energy["notes"].append(f"{name} not priced: energy.{key} is not published")
            return
        energy["lines"][name] = {"count": count, "joules_each": j, "joules": count * j}

    line("synops", syn, "synop_joules")
    if e("neuron_update_active_joules") is not None:
        line("neuron_updates_active", act, "neuron_update_active_joules")
        line("neuron_updates_inactive", upd - act, "neuron_update_inactive_joules")
    else:
        line("neuron_updates", upd, "neuron_update_joules")
    line("spike_messages", msgs, "spike_message_joules", required=False)
    line("host_macs", load.host_macs, "host_mac_joules")
    energy["joules"] = None if energy["missing"] else sum(v["joules"] for v in energy["lines"].values())

    per_core = []
    missing_t: list[str] = []
    for k, core in enumerate(placement.cores):
        secs = 0.0
        syn_k, syn_in = load.synops[k], load.synops_from_input[k]
        rate_syn = (t("output_synop_seconds") if core.label == "output" and t("output_synop_seconds")
                    else t("synop_seconds"))
        rate_in = t("input_synop_seconds") or rate_syn
        if syn_k > 0 and rate_syn is None:
            missing_t.append("time.synop_seconds")
        secs += (syn_k - syn_in) * (rate_syn or 0) + syn_in * (rate_in or 0)
        if t("neuron_update_active_seconds") is not None:
            secs += load.active_updates[k] * t("neuron_update_active_seconds")
            secs += (load.updates[k] - load.active_updates[k]) * (t("neuron_update_inactive_seconds") or 0)
        else:
            rate_u = t("output_neuron_update_seconds") if core.label == "output" and t("output_neuron_update_seconds") \
                else t("neuron_update_seconds")
            if rate_u is None:
                missing_t.append("time.neuron_update_seconds")
            secs += load.updates[k] * (rate_u or 0)
        secs += load.messages[k] * (t("spike_message_seconds") or 0)
        per_core.append(secs / T)
    latency: dict[str, Any] = {"per_core_step_seconds": per_core, "missing": sorted(set(missing_t))}
    if missing_t or not per_core:
        latency["step_seconds"] = None
    else:
        body = sum(per_core) if t("sequential") else max(per_core)
        latency["step_seconds"] = body + (t("barrier_seconds") or 0)
        latency["inference_seconds"] = latency["step_seconds"] * T
        latency["busiest_core"] = int(np.argmax(per_core))
        latency["model"] = "sum of the cores (sequential)" if t("sequential") else "busiest core + barrier"
    return {"energy": energy, "latency": latency}


def human_joules(j: float | None) -> str:
    """Joules in the unit a person reads: pJ, nJ, µJ, mJ or J (three significant figures)."""
    if j is None:
        return "not available"
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9)):
        if abs(j) >= scale:
            return f"{j / scale:.3g} {unit}"
    return f"{j / 1e-12:.3g} pJ"


def human_seconds(s: float | None) -> str:
    if s is None:
        return "not available"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(s) >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def ratio_text(r: float) -> str:
    """2.0, 25, 130: one decimal below 10, none above."""
    return f"{r:.1f}" if r < 10 else f"{r:.0f}"


def comparison_sentence(snn_j: float | None, ann_j: float, where: str, ann_where: str) -> str:
    """E.g. 'SNN 2.8 µJ on loihi2, the student as an ANN 5.6 µJ (45 nm fp32): 2.0× less energy'."""
    if snn_j is None:
        return f"SNN energy on {where} not available (per-operation figures not published); the student as an ANN " \
               f"{human_joules(ann_j)} ({ann_where})"
    head = f"SNN {human_joules(snn_j)} on {where}, the student as an ANN {human_joules(ann_j)} ({ann_where})"
    if snn_j <= 0 or ann_j <= 0:
        return head
    r = ann_j / snn_j
    return f"{head}: {ratio_text(r)}× less energy" if r >= 1 else f"{head}: {ratio_text(1 / r)}× more energy"
