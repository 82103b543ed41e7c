"""``kdsnn map``: will a network fit a neuromorphic chip, on how many cores, at what energy and latency."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdsnn.errors import KdsnnError


def _load_model(a: argparse.Namespace) -> tuple[Any, Any, str | None]:
    """(integer graph, float graph for the ANN count, data set) from a .nir file or a checkpoint."""
    path = Path(a.model)
    if not path.is_file():
        raise KdsnnError(f"model file {path} does not exist (give a .nir file or a student checkpoint)")
    if path.suffix.lower() == ".nir":
        from kdsnn.export import nir_io
        from kdsnn.export.graph import get_meta

        graph = nir_io.read(str(path))
        return graph, graph, a.dataset or get_meta(graph).get("dataset")
    from kdsnn.export.student import load_student_graphs

    dep = load_student_graphs(str(path), a.bits, dataset=a.dataset, data_root=a.data_root)
    return dep.int_graph, dep.float_graph, dep.dataset


def _map(a: argparse.Namespace) -> int:
    from .mapping import map_graph
    from .placement import place
    from .spec import load_target
    from .view import encode_input, mapping_plan

    targets = [load_target(t) for t in (a.target or ["loihi2"])]  # bad names fail before the long work
    if a.samples < 1:
        raise KdsnnError(f"--samples must be at least 1, got {a.samples}")
    graph, float_graph, dataset = _load_model(a)
    plan = mapping_plan(graph)
    placements = {t.name: place(plan, t) for t in targets}
    sim = loads = None
    if dataset or a.inputs:
        from ..graph_inputs import graph_batch

        source = argparse.Namespace(inputs=a.inputs, labels=None, spike_rate=None, seed=0, model=a.model,
                                    dataset=None if a.inputs else dataset, data_root=a.data_root)
        x = encode_input(plan.view, graph_batch(plan.view, source, a.samples)[0])
        sim, loads = _load_in_batches(plan, x, targets, placements)
    results = [map_graph(graph, t, sim=sim, plan=plan, ann_graph=float_graph, placement=placements[t.name],
                         load=loads[t.name] if loads else None) for t in targets]
    if a.json:
        print(json.dumps({"model": a.model, "dataset": None if a.inputs else dataset, "inputs": a.inputs,
                          "samples": int(sim.batch) if sim is not None else 0, "targets": results}, default=float))
    else:
        if sim is None:
            print(f"{a.model} does not record its data set: rules and placement only "
                  "(pass --dataset or --inputs for load and energy)")
        print("\n\n".join(format_text(r) for r in results))
    return 0


def _load_in_batches(plan: Any, x: Any, targets: list, placements: dict) -> tuple[Any, dict[str, Any]]:
    """Simulate ``x`` a batch at a time and count every target's per-core load from each batch, so memory
    does not grow with --samples; returns the simulator's merged counters and each target's combined load."""
    from ..batched import batch_size, count, is_sequence, merge_counters, take
    from ..simulator import simulate
    from .core_load import combine, core_load

    view = plan.view
    n = count(x, view)
    size = batch_size(view, int(x.shape[0]) if is_sequence(x, view) else view.require_timesteps())
    sim, loads = None, {t.name: [] for t in targets}
    for lo in range(0, n, size):
        xb = take(x, view, lo, min(n, lo + size))
        part = simulate(plan, xb, progress=False)
        for t in targets:
            loads[t.name].append(core_load(plan, placements[t.name], part, xb))
        sim = merge_counters(sim, part)
    return sim, {k: combine(v) for k, v in loads.items()}


def format_text(r: dict[str, Any]) -> str:
    """The human-readable answer of ``kdsnn map`` for one target."""
    lines = [f"{r['target']}: {'fits' if r['fits'] else 'does NOT fit'} — {r['description']}"]
    for v in r["violations"]:
        lines.append(f"  ✗ {v['node']}: {v['message']}")
    p = r["placement"]
    lines.append(f"  placement: {p['cores_used']} core(s) on {p['chips']} chip(s); {p['algorithm']}")
    for c in p["cores"]:
        segs = ", ".join(f"{s[0]}[{s[1]}:{s[2]}]" for s in c["segments"])
        mem = (", ".join(f"{k} {v}" for k, v in c["memory"].items()) if c["memory"]
               else f"{c.get('weights', 0)} stored weights")
        load = ""
        if "per_step" in c:
            ps = c["per_step"]
            load = f"; per step {ps['synops']:.1f} SynOps, {ps['spikes']:.1f} spikes"
        axons = (f", fan-in axons {c['fan_in_axons']}, fan-out axons {c['fan_out_axons']}" if r["kind"] == "cores"
                 else "")
        lines.append(f"    {c['label']:>9} chip {c['chip']}: {segs}: {c['neurons']} neurons, {c['synapses']} synapses, "
                     f"{mem}{axons}{load}")
    for note in r["compatibility"]:
        lines.append(f"  • {note}")
    if r.get("load"):
        lines.append(f"  energy per inference: {r['human']['energy']}" + (
            f" (missing: {', '.join(r['energy']['missing'])})" if r["energy"]["missing"] else ""))
        lines.append(f"  latency: {r['human']['step_latency']} per step, "
                     f"{r['human']['inference_latency']} per inference"
                     + (f" ({r['latency']['model']}, busiest core {r['latency']['busiest_core']})"
                        if r['latency'].get('model') else ""))
        lines.append(f"  {r['sentence']}")
        for n in r["load"]["notes"] + r["energy"]["notes"]:
            lines.append(f"  note: {n}")
    else:
        lines.append("  no inputs: per-core load, energy and latency need a data set (--dataset)")
    prov = r.get("provenance") or {}
    if prov:
        lines.append(f"  published: {', '.join(prov['published']) or 'none'}")
        for key, how in prov["derived"].items():
            lines.append(f"  derived: {key} = {how}")
        lines.append(f"  assumed (not published by the vendor): {', '.join(prov['assumed']) or 'none'}")
    return "\n".join(lines)


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    from kdsnn.export.commands import set_handoff

    from .handoff import export_for
    from .spec import builtin_targets

    set_handoff(export_for)  # `kdsnn export --for CHIP` writes what the chip's toolchain reads

    p = add("map", "will it fit a chip: rules, cores, per-core load, energy and latency per target", _map)
    p.add_argument("model", help="a .nir file or a student checkpoint (kdsnn distill)")
    p.add_argument("--target", action="append", default=None,
                   help=f"built-in target ({', '.join(builtin_targets())}) or a TOML/JSON target file; repeatable "
                        "(default: loihi2)")
    p.add_argument("--dataset", default=None, help="data set of the inputs (default: the one the model records)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--samples", type=int, default=16, help="test inputs simulated for the per-core load")
    p.add_argument("--inputs", default=None, help="your own inputs instead of the data set's: .npy [N, ...] (analog) "
                                                  "or [T, N, ...] (spikes), all of them simulated")
    p.add_argument("--bits", type=int, default=8, help="weight bits when MODEL is a checkpoint")
