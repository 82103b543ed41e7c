"""``kdsnn export --for speck|xylo|loihi2``: the file each chip's own toolchain reads.

- ``speck``: a NIR file Sinabs 3.1 reads (nir 1.0.4's layout: IF resets by subtraction there), with
  Sinabs' integers (:mod:`.speck`); Sinabs' ``from_nir`` → ``DynapcnnNetwork`` takes it.
- ``xylo``: a NIR file of ``Linear`` + ``CubaLIF`` in Rockpool's convention (:mod:`.xylo`); Rockpool's
  ``from_nir`` → ``as_graph()`` → Xylo ``mapper`` takes it.
- ``loihi2``: the lava-dl netx file Lava runs for a sequential graph; any other graph is written as
  the NIR file kdsnn's Lava process-graph route runs.

Each is refused in one line where the student cannot mean on the chip what it means in kdsnn (a
reset the file cannot state, analog input on an events-only chip, a membrane readout on a chip
whose layers always spike), and each prints the verdict of ``kdsnn map`` for that target, computed
from the same lowering, with a check of the written file on real inputs.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from kdsnn.errors import KdsnnError

from . import speck

CHIPS = ("speck", "xylo", "loihi2")
CHECK_SAMPLES = 8


def _require(meta: dict[str, Any], chip: str, reset: str | None, events: bool, spikes: bool) -> None:
    if reset and meta.get("reset", "hard") != reset:
        want = "--reset soft" if reset == "soft" else "--reset hard"
        why = {"speck": "Sinabs reads NIR as nir 1.0.4 does, where IF resets by subtracting θ",
               "xylo": "Xylo's neurons reset by subtraction (Rockpool's Xylo overview)"}.get(chip, "")
        raise KdsnnError(f"{chip}: the student resets {'to zero' if reset == 'soft' else 'by subtraction'}, "
                         f"but {why}: train it with {want}")
    if events and meta.get("encoding", "direct") not in ("bernoulli", "events"):
        raise KdsnnError(f"{chip}: the student takes analog input (direct encoding); {chip} takes only events: "
                         "train it with --encoding bernoulli, or on an event data set (--dataset nmnist, dvsgesture)")
    if spikes and meta.get("readout") != "spike":
        raise KdsnnError(f"{chip}: the student reads its output as a membrane; {chip}'s layers always spike: "
                         "train it with --readout spike")


# ----------------------------------------------------------------------------- Speck

def speck_graph(graph: nir.NIRGraph, net: speck.SpeckNet) -> nir.NIRGraph:
    """``graph`` with every layer's integers replaced by ``net``'s and one threshold per layer
    (``DynapcnnLayer`` programs one ``threshold_high`` per core)."""
    from kdsnn.export.graph import get_meta, set_meta

    g = copy.deepcopy(graph)
    nodes = dict(g.nodes)
    for lay in net.layers:
        syn = nodes[lay.synaptic]
        w = lay.weight.reshape(np.asarray(syn.weight).shape)
        if isinstance(syn, nir.Conv2d):
            nodes[lay.synaptic] = nir.Conv2d(input_shape=syn.input_shape, weight=w, stride=syn.stride,
                                             padding=syn.padding, dilation=syn.dilation, groups=syn.groups,
                                             bias=lay.bias.copy())
        else:
            nodes[lay.synaptic] = nir.Affine(weight=w, bias=lay.bias.copy())
        nodes[lay.population] = nir.IF(r=np.ones(1), v_threshold=np.array([lay.threshold]), v_reset=np.zeros(1))
    out = nir.NIRGraph(nodes=nodes, edges=list(g.edges), type_check=False)
    meta = get_meta(graph)
    meta.update(integer=True, reset="soft", quantization={"speck": {lay.population: lay.scale for lay in net.layers}})
    set_meta(out, meta)
    return out


def agreement(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Per layer: the share of (step, sample, neuron) spike counts that are equal; and the same classes."""
    def flat(s: torch.Tensor) -> torch.Tensor:
        return s.to(torch.float64).reshape(s.shape[0], s.shape[1], -1)

    layers = {k: float((flat(ours[k]) == flat(theirs[k])).double().mean()) for k in ours if k in theirs}
    last = list(ours)[-1]
    a, b = flat(ours[last]).sum(0).argmax(1), flat(theirs[last]).sum(0).argmax(1)
    return {"layers": layers, "same_class": float((a == b).double().mean())}


def export_speck(graph: nir.NIRGraph, path: str | Path, x: torch.Tensor | None) -> dict[str, Any]:
    """Lower a soft-reset, event-driven float (or integer) graph for Speck and write it (module docstring)."""
    from kdsnn.export import nir_io
    from kdsnn.export.graph import get_meta
    from kdsnn.export.graph_view import GraphView
    from kdsnn.export.runtime import GraphSNN

    from .nir104 import write_nir104

    _require(get_meta(graph), "speck", "soft", events=True, spikes=True)
    net = speck.lower(GraphView.of(graph))
    if net.problems:
        node, _, msg = net.problems[0]
        more = f" (and {len(net.problems) - 1} more: kdsnn map --target speck lists them)" if len(net.problems) > 1 \
            else ""
        raise KdsnnError(f"speck: {node}: {msg}{more}")
    out = speck_graph(graph, net)
    written = write_nir104(out, path)
    result: dict[str, Any] = {"out": str(written), "for": "speck", "nir_version": "1.0.4",
                              "layers": [{"population": lay.population, "scale": lay.scale,
                                          "threshold": lay.threshold, **lay.memory} for lay in net.layers]}
    if x is not None:
        snn = GraphSNN(nir_io.read(written))
        torch.manual_seed(0)
        events = snn.prepare_input(x)
        kd = snn.run(events)
        ours = {p: kd.outputs[p] for p in (lay.population for lay in net.layers)}
        result["check"] = {"inputs": int(events.shape[1]),
                           "kdsnn_vs_speck": agreement(ours, speck.run(net, events))}
    return result


# ----------------------------------------------------------------------------- Xylo

def export_xylo(graph: nir.NIRGraph, path: str | Path, x: torch.Tensor | None) -> dict[str, Any]:
    """Lower a soft-reset, event-driven integer graph to Xylo's matrices and write Rockpool's NIR file."""
    from kdsnn.export.graph import get_meta

    from . import xylo
    from .nir104 import write_nir104
    from .view import mapping_plan

    _require(get_meta(graph), "xylo", "soft", events=True, spikes=True)
    plan = mapping_plan(graph)
    net = xylo.lower(plan.view, plan)
    if net.problems:
        node, _, msg = net.problems[0]
        raise KdsnnError(f"xylo: {node}: {msg}")
    from .spec import load_target

    t = load_target("xylo")
    for key in ("input_channels", "hidden_neurons", "output_neurons"):
        if net.counts[key] > t.get("limits", key):
            raise KdsnnError(f"xylo: {net.counts[key]} {key.replace('_', ' ')}; Xylo has {t.get('limits', key)} "
                             f"({t.source('limits', key)}): train a smaller student (kdsnn map --target xylo)")
    written = write_nir104(xylo.to_nir(net), path)
    result: dict[str, Any] = {"out": str(written), "for": "xylo", "nir_version": "1.0.4", "counts": net.counts,
                              "dash_mem": xylo.DASH_MEM, "dash_syn": xylo.DASH_SYN}
    if x is not None:
        from kdsnn.export.runtime import GraphSNN

        snn = GraphSNN(graph)
        torch.manual_seed(0)
        events = snn.prepare_input(x)
        run = snn.run(events)
        hid = [run.outputs[p].reshape(*run.outputs[p].shape[:2], -1) for p, _, _ in net.hidden]
        p_in = float((events.reshape(*events.shape[:2], -1) != 0).double().mean())
        p_hid = float((torch.cat(hid, dim=2) != 0).double().mean()) if hid else 0.0
        result["check"] = {"inputs": int(events.shape[1]), "input_activity": p_in, "hidden_activity": p_hid,
                           "cycles_per_step": xylo.cycles(net, p_in, p_hid)}
    return result


# ----------------------------------------------------------------------------- Loihi 2

def export_loihi2(graph: nir.NIRGraph, path: str | Path, x: torch.Tensor | None) -> dict[str, Any]:
    """The netx file Lava loads for a sequential graph, the NIR file of the process-graph route otherwise."""
    from kdsnn.export.commands import check_file
    from kdsnn.export.formats import check_name, get
    from kdsnn.export.graph import get_meta

    from ..lava import lava_route

    _require(get_meta(graph), "loihi2", "hard", events=False, spikes=False)
    route = lava_route(graph)
    fmt = "netx" if route == "netx" else "nir"
    check_name(get(fmt), path, choosing=False)  # the route decides the format: a name saying the other is refused
    written = get(fmt).write(graph, path)
    result: dict[str, Any] = {"out": str(written), "for": "loihi2", "format": fmt, "lava_route": route}
    if x is not None:
        result["check"] = check_file(fmt, written, graph, x)
    return result


# ----------------------------------------------------------------------------- the command

def export_for(a: Any) -> int:
    """``kdsnn export --checkpoint C --for CHIP --out FILE`` (module docstring)."""
    import json

    from kdsnn import data
    from kdsnn.export.student import load_student_graphs

    from .mapping import map_graph

    chip = a.for_chip
    dep = load_student_graphs(a.checkpoint, a.bits, integer=chip != "speck", quantized=chip != "speck",
                              dataset=a.dataset, data_root=a.data_root, soft_reset_ok=chip in ("speck", "xylo"))
    x = None if a.no_check else data.sample_batch(dep.dataset, CHECK_SAMPLES, a.data_root,
                                                           timesteps=dep.timesteps)[0]
    write = {"speck": export_speck, "xylo": export_xylo, "loihi2": export_loihi2}[chip]
    result = write(dep.graph, a.out, x)
    mapped = dep.graph if chip != "speck" else speck_graph(dep.graph, speck.lower(_view(dep.graph)))
    verdict = map_graph(mapped, chip)
    result["map"] = {"fits": verdict["fits"], "violations": verdict["violations"],
                     "cores_used": verdict["placement"]["cores_used"],
                     "cores": [{"label": c["label"], "segments": c["segments"], "memory": c["memory"]}
                               for c in verdict["placement"]["cores"]]}
    if getattr(a, "json", False):
        print(json.dumps(result, default=float))
    else:
        print(_text(result))
    return 0


def _view(graph: nir.NIRGraph) -> Any:
    from kdsnn.export.graph_view import GraphView
    return GraphView.of(graph)


def _text(r: dict[str, Any]) -> str:
    lines = [f"wrote {r['out']} (for {r['for']}" + (f", nir {r['nir_version']}" if "nir_version" in r else "")
             + (f", {r['format']}" if "format" in r else "") + ")"]
    m = r["map"]
    lines.append(f"kdsnn map --target {r['for']}: {'fits' if m['fits'] else 'does NOT fit'}, "
                 f"{m['cores_used']} core(s)" + "".join(f"\n  ✗ {v['node']}: {v['message']}" for v in m["violations"]))
    for lay in r.get("layers", []):
        lines.append(f"  {lay['population']}: Sinabs scale {lay['scale']:.4g}, threshold {lay['threshold']:.0f}, "
                     f"kernel memory {lay['kernel_memory']}, neuron memory {lay['neuron_memory']}")
    if "counts" in r:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in r["counts"].items()))
    chk = r.get("check")
    if chk and "kdsnn_vs_speck" in chk:
        agree = chk["kdsnn_vs_speck"]
        lines.append(f"check on {chk['inputs']} test inputs: kdsnn's IF (v > θ, one spike) vs Speck's IAF as Sinabs "
                     "runs it (v ≥ θ, several spikes, floor −θ): equal spikes "
                     + ", ".join(f"{k} {100 * v:.1f} %" for k, v in agree["layers"].items())
                     + f"; same class {100 * agree['same_class']:.0f} %")
    elif chk and "cycles_per_step" in chk:
        lines.append(f"check on {chk['inputs']} test inputs: {chk['cycles_per_step']:.0f} clock cycles per step "
                     f"(Rockpool's cycle model at input activity {chk['input_activity']:.2f}, hidden "
                     f"{chk['hidden_activity']:.2f})")
    elif chk:
        lines.append(f"check: {chk['summary']}")
    return "\n".join(lines)
