"""``kdsnn report FILE.nir``: the report of a NIR graph alone (another tool's, or ours), no checkpoint.

Accuracy on every backend that can run the graph (when labels are given), firing, SynOps,
MACs and energy per profile. The counters come from the reference simulator where it runs
the graph; otherwise (leaky neurons, subtract-reset IF) from the PyTorch graph runtime's
spikes by the same definitions (docs/synops.md): SynOps = Σ spikes × exact fan-out, first
layer = effective MACs; every population counts one neuron update per neuron and step, and
an update is *active* where the neuron received a nonzero input or spiked. There is no
float-student row: the graph is all there is.
"""
from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

import nir
import torch

from kdsnn.atomic import staged_folder, write_text
from kdsnn.export.graph_view import GraphView
from kdsnn.export.runtime import GraphSNN

from ..backends import BACKENDS, Simulator
from ..batched import Combined, batch_size, count, is_sequence, run_batches, take
from ..energy import builtin_profiles, energy_report, load_profile
from ..synops import count_graph, graph_ann_macs, leaky_counts
from . import plots
from .html import accuracy_rows, energy_rows, img, sources_html, table


def _rows(graph: nir.NIRGraph, view: GraphView, x: torch.Tensor, y: torch.Tensor | None, steps: int,
          slow_samples: int) -> tuple[dict[str, Any], Combined | None]:
    """Accuracy per backend (when labels are given), each run a batch at a time, and the reference
    simulator's run (its counters are the report's, whether or not labels were given)."""
    rows: dict[str, Any] = {}
    reference = None
    for backend in BACKENDS.values():
        if not backend.in_report:
            continue
        ok, why = backend.usable_for(view)
        if not ok:
            rows[backend.label] = {"note": why}
            continue
        if y is None and not isinstance(backend, Simulator):
            rows[backend.label] = {"note": "runs this graph (no labels given: no accuracy)"}
            continue
        xs = take(x, view, 0, min(count(x, view), slow_samples)) if backend.slow else x
        run = run_batches(backend, graph, xs, view, steps, progress=True)
        if isinstance(backend, Simulator):
            reference = run
        if y is None:
            rows[backend.label] = {"note": "runs this graph (no labels given: no accuracy)"}
            continue
        ys = y[:run.samples]
        rows[backend.label] = {"accuracy": float((run.logits.argmax(1) == ys).double().mean()), "samples": len(ys)}
    return rows, reference


def _counters(graph: nir.NIRGraph, view: GraphView, x: torch.Tensor, steps: int,
              reference: Combined | None) -> tuple[dict[str, float], dict, str]:
    """Per-inference counters, firing rates and which runner counted them."""
    if reference is not None and reference.counters is not None:
        stats = reference.counters.to_dict()
        return reference.counters.per_sample(), {k: v["firing_rate"] for k, v in stats["neurons"].items()}, \
            "reference simulator"
    snn = GraphSNN(graph)
    n, size = count(x, view), batch_size(view, steps)
    totals: dict[str, float] = {}
    spikes: dict[str, float] = {}
    slots: dict[str, int] = {}
    for lo in range(0, n, size):  # a batch at a time: the runtime keeps every node's values over T
        with torch.no_grad():
            res = snn.run(take(x, view, lo, min(n, lo + size)))
        for k, v in _batch_counts(graph, view, res).items():
            totals[k] = totals.get(k, 0.0) + v
        for p in view.populations:
            if view.models[p].spiking:
                spikes[p] = spikes.get(p, 0.0) + float(res.outputs[p].double().sum())
                slots[p] = slots.get(p, 0) + res.outputs[p].numel()
    per = {k: v / n for k, v in totals.items()}
    per["overflow"] = 0.0
    rates = {p: spikes[p] / slots[p] for p in spikes}
    return per, rates, "PyTorch graph runtime (the reference simulator cannot run this graph)"


def _batch_counts(graph: nir.NIRGraph, view: GraphView, res: Any) -> dict[str, float]:
    """Whole-batch counts of one runtime run: SynOps, MACs, neuron updates (active too) and spikes."""
    seq = res.outputs[view.input]
    spiking = {n: res.outputs[n] for n in view.populations if view.models[n].spiking}
    counts = count_graph(graph, spiking, seq)
    b, t = int(seq.shape[1]), int(seq.shape[0])
    updates = active = 0.0
    for n in view.populations:
        inp = sum(res.outputs[p] for p in view.preds[n]).reshape(t, b, -1)
        updates += inp.numel()
        fired = (res.outputs[n].reshape(t, b, -1) != 0 if view.models[n].spiking
                 else torch.zeros_like(inp, dtype=torch.bool))
        active += float(((inp != 0) | fired).sum())
    return {**{k: v * b for k, v in counts.per_sample().items()}, "neuron_updates": updates,
            "active_neuron_updates": active, "spikes": float(sum(float(s.sum()) for s in spiking.values()))}


def build_graph_report(graph: nir.NIRGraph, name: str, out_dir: str | Path, x: torch.Tensor, y: torch.Tensor | None,
                       source: str, slow_samples: int = 32, profiles: list[str] | None = None) -> dict[str, Any]:
    """Measure the graph on ``x`` (labels ``y`` or None) and write report.html/json and PNGs to ``out_dir``
    (all of them, or none after a failure or Ctrl-C)."""
    t0 = time.time()
    chosen = [load_profile(p) for p in (profiles or builtin_profiles())]
    view = GraphView.of(graph)
    t = int(x.shape[0]) if is_sequence(x, view) else view.require_timesteps()
    accuracy, reference = _rows(graph, view, x, y, t, slow_samples)
    per, rates, counted_by = _counters(graph, view, x, t, reference)
    per.update(leaky_counts(view, int(t)))  # from the graph's models: whichever runner counted the rest
    anns = {"the graph as an ANN": graph_ann_macs(graph)}
    energies = [energy_report(per, anns, p) for p in chosen]
    with staged_folder(out_dir) as out:
        images = {"firing_rates": plots.firing_rates(rates, out / "firing_rates.png"),
                  "energy": plots.energy(energies, out / "energy.png")}
        report = {
            "model": str(name), "inputs": source, "timesteps": t, "dt": view.dt, "dt_from": view.reading.dt_why,
            "if_reset": view.reset, "if_reset_why": view.reading.reset_why, "notes": view.notes,
            "readout": view.readout_text(),
            "neurons": {n: f"{m.kind}: {m.summary()}" for n, m in view.models.items()},
            "accuracy": accuracy, "firing_rates": rates, "per_inference": per, "counted_by": counted_by,
            "ann_macs": anns, "energy": energies, "images": {k: v.name for k, v in images.items()},
            "seconds": round(time.time() - t0, 1),
            "definitions": "SynOps: exact fan-out, pooling composed into the next layer; first layer: effective "
                           "MACs (docs/synops.md). Neuron updates: every neuron every step; active: nonzero input "
                           "or a spike; leaky updates (LIF, CubaLIF, LI) add one decay per decaying state variable. "
                           "Energy: count × per-operation energy of each profile (sources inside).",
        }
        write_text(out / "report.json", json.dumps(report, indent=2, default=float))
        write_text(out / "report.html", _html(report, images))
    return report


def _html(r: dict[str, Any], images: dict[str, Path]) -> str:
    acc_rows = accuracy_rows(r)
    e_rows = energy_rows(r)
    sources = sources_html(r)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in r["notes"]) or "<li>none</li>"
    neurons = [[k, v] for k, v in r["neurons"].items()]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>kdsnn report: {html.escape(r['model'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}img{{max-width:100%;margin:0.5em 0}}</style></head><body>
<h1>kdsnn report: {html.escape(r['model'])}</h1>
<p>{html.escape(r['inputs'])}; T = {r['timesteps']}; dt = {r['dt']:g} ({html.escape(r['dt_from'])});
IF reset: {html.escape(r['if_reset'])} ({html.escape(r['if_reset_why'])}); readout: {html.escape(r['readout'])}.</p>
<h2>Reading notes</h2><ul>{notes}</ul>
<h2>Neurons</h2>{table(neurons, ['node', 'model'])}
<h2>Accuracy on every backend</h2>{table(acc_rows, ['backend', 'accuracy', 'samples', 'note'])}
<h2>Operations per inference</h2><p>counted by the {html.escape(r['counted_by'])}</p>
{table([[k, v] for k, v in r['per_inference'].items()], ['counter', 'per inference'])}
<p>{html.escape(r['definitions'])}</p>
<h2>Firing</h2>{img(images['firing_rates'])}
<h2>Energy per inference</h2>{table(e_rows, ['profile', 'network', 'joules', 'breakdown'])}{img(images['energy'])}
<h3>Sources of the constants</h3><ul>{sources}</ul>
</body></html>
"""
