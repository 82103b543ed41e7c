"""Will it fit, on how many cores, at what energy and latency: a graph mapped onto a target.

``map_graph(graph, target, x)`` checks every rule of the target (:mod:`.rules`), places
every population on cores, counts each core's neurons, synapses and memory, and, from a
simulation on real inputs, each core's SynOps, spikes and spike messages; then prices them
with the target's per-operation figures (``deploy/targets/*.toml``).

Placement (``place``), per target kind:

- ``cores`` (Loihi): greedy, populations in topological order, neurons in their flat order
  (channel-major); a new core opens when the next neuron would exceed the neurons, synaptic
  memory (its fan-in synapses × ``synapse_bits``) or input axons (distinct source neurons)
  of a core. A core holds one population (as Lava's compiler does); a population larger than
  a core is split into contiguous slices. Cores fill chips in order.
- ``layers`` (Speck): one chip layer per population; populations are matched to layers
  whose kernel and neuron memory hold them (augmenting paths, as Sinabs does with max-flow).
- ``dense`` (Xylo): every hidden population in the one hidden core, the readout in the
  output core.

Latency per time step: each core's work (SynOps it receives, neuron updates, spike messages
it sends) × the target's time per operation; the step ends when the busiest core is done,
plus one barrier (targets that compute sequentially, ``time.sequential``, sum their cores).
Routing congestion and memory traffic beyond the per-operation figures are not modelled.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import nir
import numpy as np
import torch

from kdsnn.export.graph_view import GraphView

from ..simulator import Plan
from . import rules
from .placement import Placement, fan_out_axons, place
from .spec import Target, load_target
from .view import encode_input, mapping_plan


def _max_membrane(sim: Any) -> dict[str, float] | None:
    return None if sim is None else {p: float(st.max_abs_membrane) for p, st in sim.neurons.items()}


def target_compatibility(graph: nir.NIRGraph | GraphView, target: Target | str, sim: Any = None) -> list[str]:
    """How the integer graph kdsnn checked differs from what ``target`` would run (empty: it is the same).

    Ranges (weights, biases, thresholds, and the membranes a simulation ``sim`` reached), reset,
    neuron model, spike condition, spikes per step and input encoding. ``verify`` and ``report``
    print it per target.
    """
    return rules.compatibility(GraphView.of(graph), load_target(target), _max_membrane(sim))


def _cycle_model_latency(t: Target, plan: Plan, placement: Placement, load: Any, x: Any) -> dict[str, Any]:
    """Step latency from the target's cycle model (Xylo: Rockpool's, :func:`.xylo.cycles`) at the activity the
    simulation measured: the share of input channels and of hidden neurons with an event per step."""
    from . import xylo
    from .core_load import input_nonzero

    net = xylo.lower(plan.view, plan)
    T = load.timesteps
    steps, _ = input_nonzero(torch.as_tensor(x), plan.shape[plan.input], T)
    p_in = float(steps.mean())
    n_hid = max(net.w_rec.shape[0], 1)
    p_hid = float(load.spikes[0]) / (n_hid * T) if placement.cores else 0.0
    cycles = xylo.cycles(net, p_in, p_hid)
    step = cycles / t.get("time", "clock_hz")
    return {"per_core_step_seconds": [step, 0.0], "missing": [], "step_seconds": step, "inference_seconds": step * T,
            "busiest_core": 0, "cycles_per_step": cycles, "input_activity": p_in, "hidden_activity": p_hid,
            "model": f"Rockpool's cycle model ({t.get('time', 'cycle_model')}), phases in sequence"}


def _ann(graph: nir.NIRGraph) -> dict[str, Any]:
    from ..energy import load_profile
    from ..synops import graph_ann_macs

    macs = graph_ann_macs(graph)
    out = {"macs": macs}
    for name in ("cmos45_fp32", "cmos45_int8"):
        p = load_profile(name)
        out[name] = {"joules": macs * p.ops["mac"].joules, "source": p.ops["mac"].source}
    return out


def map_graph(graph: nir.NIRGraph, target: Target | str, x: Any = None, sim: Any = None,
              plan: Plan | None = None, ann_graph: nir.NIRGraph | None = None, placement: Any = None,
              load: Any = None) -> dict[str, Any]:
    """Rules, placement, per-core load, energy and latency of ``graph`` on ``target`` (JSON-ready).

    ``x``: inputs to simulate (or ``sim``, a finished simulation of ``x`` on this graph);
    without them the answer has rules and placement only. ``plan``: the graph's
    :func:`~kdsnn.deploy.targets.view.mapping_plan`, when the caller has it already. ``ann_graph``
    (default ``graph``): the graph whose dense MACs price the student as an ANN. ``placement``
    (``place(plan, target)``) and ``load`` (its per-core load, e.g. combined over batches of inputs)
    when the caller counted them already; ``sim`` then only gives the membranes reached.
    """
    from .core_load import comparison_sentence, core_load, estimate, human_joules, human_seconds

    t = load_target(target)
    plan = plan or mapping_plan(graph)
    view = plan.view
    violations = rules.common_rules(view, t, _max_membrane(sim))
    if t.kind == "layers":
        violations += rules.layer_rules(view, t)[1]
    placement = placement if placement is not None else place(plan, t)
    violations += placement.violations
    dcount = fan_out_axons(plan, placement)
    for ci, c in enumerate(plan.connections):
        if c.source in placement.core_of and ci in dcount:
            fo = np.bincount(placement.core_of[c.source], weights=dcount[ci], minlength=len(placement.cores))
            for k in np.nonzero(fo)[0]:
                placement.cores[k].fan_out_axons += int(fo[k])
    fmax = t.get("limits", "fan_out_axons_per_core")
    for core in placement.cores:
        if fmax and core.fan_out_axons > fmax:
            p, lo, hi = core.segments[0]
            violations.append(rules.Violation(p, "fan_out",
                                              f"{core.label} ({p}[{lo}:{hi}]) sends to {core.fan_out_axons} "
                                              f"core-to-core axons; {t.name} allows {fmax} per core: "
                                              "reduce the fan-out"))
    cpc, chips = t.get("limits", "cores_per_chip"), t.get("limits", "chips")
    if chips and placement.chips > chips:
        violations.append(rules.Violation("graph", "chips",
                                          f"needs {placement.chips} chips; {t.name} maps onto {chips}"))
    result: dict[str, Any] = {
        "target": t.name, "description": t.description, "kind": t.kind, "origin": t.origin,
        "fits": not violations, "violations": [asdict(v) for v in violations],
        "compatibility": rules.compatibility(view, t, _max_membrane(sim)),
        "placement": {"algorithm": placement.algorithm,
                      "cores_used": sum(1 for c in placement.cores if c.label != "unplaced"), "chips": placement.chips,
                      "cores_per_chip": cpc, "cores": [asdict(c) for c in placement.cores]},
        "unpublished": t.unpublished(),
        "provenance": t.provenance(),
        "sources": {f"{s}.{k}": e.source for s, d in t.entries.items() for k, e in d.items()},
    }
    if sim is None and load is None and x is not None:
        x = encode_input(view, x)
        from ..simulator import simulate
        sim = simulate(plan, x)
    if sim is None and load is None:
        result["load"] = None
        return result
    load = load if load is not None else core_load(plan, placement, sim, x)
    est = estimate(t, placement, load)
    if t.get("time", "cycle_model"):
        est["latency"] = _cycle_model_latency(t, plan, placement, load, x)
    limit = t.get("limits", "max_input_events")
    if limit is not None and x is not None and float(torch.as_tensor(x).max()) > limit:
        result["violations"].append(asdict(rules.Violation(view.input, "input_events", (
            f"up to {float(torch.as_tensor(x).max()):g} input events per step and channel; {t.name} takes at most "
            f"{limit}: scale the input down"))))
        result["fits"] = False
    T = load.timesteps
    for k, c in enumerate(result["placement"]["cores"]):
        c["per_step"] = {"synops": load.synops[k] / T, "spikes": load.spikes[k] / T, "messages": load.messages[k] / T,
                         "active_updates": load.active_updates[k] / T, "updates": load.updates[k] / T,
                         "seconds": est["latency"]["per_core_step_seconds"][k]}
    ann = _ann(ann_graph if ann_graph is not None else graph)
    snn_j = est["energy"]["joules"]
    result.update({
        "load": {"samples": load.samples, "timesteps": T, "host_macs": load.host_macs,
                 "host_messages": load.host_messages, "synops": sum(load.synops), "spikes": sum(load.spikes),
                 "messages": sum(load.messages), "notes": load.notes},
        "energy": est["energy"], "latency": est["latency"], "ann": ann,
        "sentence": comparison_sentence(snn_j, ann["cmos45_fp32"]["joules"], t.name, "45 nm fp32")
                    + f"; as an int8 ANN {human_joules(ann['cmos45_int8']['joules'])}",
        "human": {"energy": human_joules(snn_j), "step_latency": human_seconds(est["latency"].get("step_seconds")),
                  "inference_latency": human_seconds(est["latency"].get("inference_seconds"))},
    })
    return result
