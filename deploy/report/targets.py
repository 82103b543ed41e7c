"""The report's "targets" section: per target, fits or not and why, cores, per-core load, energy, latency."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import nir
import torch

from kdsnn.human import joules as human_joules
from kdsnn.human import ratio as ratio_text

from ..targets.mapping import MAP_SAMPLES, map_onto
from ..targets.spec import builtin_targets, load_target
from . import plots


def map_targets(int_graph: nir.NIRGraph, float_graph: nir.NIRGraph, x: torch.Tensor, out_dir: str | Path,
                targets: list[str] | None = None, samples: int = MAP_SAMPLES
                ) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Map the integer graph onto every target on the first ``samples`` inputs of ``x``; one load plot each.

    The same road as ``kdsnn map MODEL --samples N`` (:func:`~kdsnn.deploy.targets.mapping.map_onto`), so the
    report and ``map`` give the same cores, energy and latency for the same inputs; no size limit of its own."""
    chosen = [load_target(t) for t in (targets or builtin_targets())]
    results, _ = map_onto(int_graph, chosen, x[:samples], ann_graph=float_graph)
    images = {}
    for r in results:
        if r.get("load"):
            images[r["target"]] = plots.core_load(r, Path(out_dir) / f"cores_{r['target']}.png")
    return results, images


def targets_html(results: list[dict[str, Any]], images: dict[str, Path]) -> str:
    """HTML of the targets section (images inlined: the report stays one file); each problem listed once."""
    from ..targets.command import other_notes
    from .html import figure  # html builds its energy rows with this module's energy_line

    e = html.escape
    parts = ["<h2>Hardware targets</h2><p>Rules, placement and per-core load of the integer graph on each target "
             "(the same computation as <code>kdsnn map</code>; figures and their sources in "
             "<code>deploy/targets/*.toml</code>; stated parameters are numbers the vendor has not published).</p>"]
    for r in results:
        verdict = "fits" if r["fits"] else f"does not fit ({len(r['violations'])} rule(s) broken)"
        p = r["placement"]
        parts.append(f"<h3>{e(r['target'])}: {verdict}</h3><p>{e(r['description'])}</p>")
        if r["violations"]:
            parts.append("<ul>" + "".join(f"<li><b>{e(v['node'])}</b>: {e(v['message'])}</li>" for v in r["violations"])
                         + "</ul>")
        unplaced = sum(1 for c in p["cores"] if c["label"] == "unplaced")
        unit = "layer" if r["kind"] == "layers" else "core"
        parts.append(f"<p>{p['cores_used']:,} {unit}(s) on {p['chips']:,} chip(s)"
                     + (f", {unplaced} population(s) unplaced" if unplaced else "")
                     + f". Placement: {e(p['algorithm'])}.</p>")
        if r.get("load"):
            n = r["load"]["samples"]
            lat = r["latency"]
            latency = (f"latency {e(r['human']['step_latency'])} per step, {e(r['human']['inference_latency'])} per "
                       "inference" + (f", busiest core {lat['busiest_core']}" if lat.get("busiest_core") is not None
                                      else "")
                       if lat.get("step_seconds") is not None else
                       "latency not available (not published: " + e(", ".join(lat.get("missing") or [])) + ")")
            parts.append(f"<p>Mean over {n:,} samples: energy per inference <b>{e(r['human']['energy'])}</b>; "
                         f"{latency}.</p><p><b>{e(r['sentence'])}</b>.</p>")
            if r["energy"]["missing"]:
                parts.append(f"<p>Energy not available: {e(', '.join(r['energy']['missing']))} not published.</p>")
            if r["target"] in images:
                parts.append(figure(images[r["target"]], f"Per-core load on {r['target']}, mean over {n:,} samples; "
                                                         "the busiest core in red."))
        elif r.get("note"):
            parts.append(f"<p>{e(r['note'])}</p>")
        notes = other_notes(r)
        parts.append("<p>Is the checked integer graph the one this target runs? "
                     + ("yes.</p>" if not r["compatibility"] else
                        "not exactly: the broken rules above" + (", and:</p><ul>" + "".join(
                            f"<li>{e(c)}</li>" for c in notes) + "</ul>" if notes else ".</p>")))
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
