"""The report's "targets" section: per target, fits or not and why, cores, per-core load, energy, latency."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import nir
import torch

from ..targets.core_load import human_joules, ratio_text
from ..targets.mapping import map_graph
from ..targets.spec import builtin_targets, load_target
from ..targets.view import encode_input, mapping_plan
from . import plots

MAX_SYNAPSES = 2e7  # explicit per-synapse matrices (complex128 + index): about 0.5 GB at this size
MAP_SAMPLES = 64    # inputs whose simulation gives the per-core load


def map_targets(int_graph: nir.NIRGraph, float_graph: nir.NIRGraph, x: torch.Tensor, out_dir: str | Path,
                targets: list[str] | None = None, samples: int = MAP_SAMPLES, sim: Any = None
                ) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Map the integer graph onto every target (simulating the first ``samples`` inputs); one load plot each.

    ``sim``: the reference simulator's run of the first inputs of ``x`` already made (the report's own), used
    instead of a second simulation where it shows what the chip receives (direct encoding: the same input
    every step); a Bernoulli-encoded graph is simulated here on input spikes drawn for the chip."""
    chosen = [load_target(t) for t in (targets or builtin_targets())]
    from ..synops import graph_ann_macs

    synapses = graph_ann_macs(float_graph)  # a lower bound of the per-synapse matrices mapping builds
    if synapses > MAX_SYNAPSES:
        return [{"target": t.name,
                 "skipped": f"about {synapses:.3g} synapses: too many for the per-synapse placement "
                            f"inside a report (limit {MAX_SYNAPSES:.0e}); run kdsnn map on the exported graph"}
                for t in chosen], {}
    plan = mapping_plan(int_graph)
    if sim is not None and plan.view.encoding == "direct":
        xs = x[:int(sim.batch)]
    else:
        xs = encode_input(plan.view, x[:samples])
        from ..simulator import simulate
        sim = simulate(plan, xs)
    results, images = [], {}
    for t in chosen:
        r = map_graph(int_graph, t, x=xs, sim=sim, plan=plan, ann_graph=float_graph)
        results.append(r)
        if r.get("load"):
            images[t.name] = plots.core_load(r, Path(out_dir) / f"cores_{t.name}.png")
    return results, images


def _img(path: Path) -> str:
    return f'<img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def targets_html(results: list[dict[str, Any]], images: dict[str, Path]) -> str:
    """HTML of the targets section (images inlined: the report stays one file)."""
    parts = ["<h2>Hardware targets</h2><p>Rules, placement and per-core load of the integer graph on each target "
             "(<code>kdsnn map</code>; figures and their sources in <code>deploy/targets/*.toml</code>; "
             "stated parameters are numbers the vendor has not published).</p>"]
    for r in results:
        e = html.escape
        if "skipped" in r:
            parts.append(f"<h3>{e(r['target'])}: not mapped</h3><p>{e(r['skipped'])}.</p>")
            continue
        verdict = "fits" if r["fits"] else f"does not fit ({len(r['violations'])} rule(s) broken)"
        p = r["placement"]
        parts.append(f"<h3>{e(r['target'])}: {verdict}</h3><p>{e(r['description'])}</p>")
        if r["violations"]:
            parts.append("<ul>" + "".join(f"<li><b>{e(v['node'])}</b>: {e(v['message'])}</li>" for v in r["violations"])
                         + "</ul>")
        parts.append(f"<p>{p['cores_used']} core(s) on {p['chips']} chip(s). Placement: {e(p['algorithm'])}.</p>")
        if r.get("load"):
            lat = r["latency"]
            busiest = f", busiest core {lat['busiest_core']}" if lat.get("busiest_core") is not None else ""
            parts.append(f"<p>Energy per inference: <b>{e(r['human']['energy'])}</b>; "
                         f"latency {e(r['human']['step_latency'])} "
                         f"per step, {e(r['human']['inference_latency'])} per inference{e(busiest)}.</p>"
                         f"<p><b>{e(r['sentence'])}</b>.</p>")
            if r["energy"]["missing"]:
                parts.append(f"<p>Energy not available: {e(', '.join(r['energy']['missing']))} not published.</p>")
            if r["target"] in images:
                parts.append(_img(images[r["target"]]))
        elif r.get("note"):
            parts.append(f"<p>{e(r['note'])}</p>")
        comp = r["compatibility"]
        parts.append("<p>Is the checked integer graph the one this target runs? "
                     + ("yes.</p>" if not comp
                        else "not exactly:</p><ul>" + "".join(f"<li>{e(c)}</li>" for c in comp) + "</ul>"))
        if r["unpublished"]:
            parts.append(f"<p><small>Stated parameters: {e(', '.join(r['unpublished']))}.</small></p>")
    return "\n".join(parts)


def energy_line(snn_j: float, ann_j: float, ann_name: str) -> str:
    """'SNN 2.8 µJ, the student as an ANN 5.6 µJ: 2.0× less energy' for one profile."""
    head = f"SNN {human_joules(snn_j)}, {ann_name} {human_joules(ann_j)}"
    if snn_j <= 0 or ann_j <= 0:
        return head
    r = ann_j / snn_j
    return f"{head}: {ratio_text(r)}× less energy" if r >= 1 else f"{head}: {ratio_text(1 / r)}× more energy"


__all__ = ["energy_line", "map_targets", "targets_html"]
