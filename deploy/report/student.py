"""``kdsnn report``: accuracy on every backend, firing, SynOps and energy, as HTML/JSON/PNG.

One self-contained ``report.html`` (images inlined), ``report.json`` with every number, and
the PNGs beside them. Counting definitions: docs/synops.md; energy constants and their
sources: ``deploy/profiles/*.toml``.
"""
from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdsnn import checkpoint, data
from kdsnn.atomic import staged_folder, write_text
from kdsnn.budget import require
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import get_meta
from kdsnn.export.graph_view import GraphView
from kdsnn.export.student import Deployable
from kdsnn.progress import progress, stage

from ..backends import BACKENDS
from ..batched import MAX_BATCH, WORKING_SET, run_batches
from ..energy import builtin_profiles, energy_report, load_profile
from ..synops import ann_macs, graph_ann_macs
from ..targets.spec import builtin_targets, load_target
from . import plots
from .html import ACCURACY_HEAD, STYLE, accuracy_rows, energy_rows, figure, sources_html, table
from .summary import summary_html
from .targets import MAP_SAMPLES, map_targets, targets_html


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((torch.as_tensor(logits).argmax(1) == labels).double().mean())


def _test_inputs(dep: Deployable, data_root: str | None, limit: int | None,
                 inputs: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and labels the report measures: the user's, or the data set's test split (first ``limit``)."""
    if inputs is not None:
        return inputs[0][:limit], inputs[1][:limit]
    test = data.load(dep.dataset, "test", data_root, timesteps=dep.timesteps)
    n = len(test) if limit is None else min(limit, len(test))
    steps = dep.timesteps if data.is_time_major(test) else 1
    require(n * steps * int(np.prod(data.spec(dep.dataset).input_shape)) * 4, f"{n} test inputs of {dep.dataset}",
            "use --samples")
    xs, ys = zip(*(test[i] for i in range(n)), strict=True)
    return torch.stack(xs, dim=1 if data.is_time_major(test) else 0), torch.tensor(ys)


def _student_logits(dep: Deployable, x: torch.Tensor) -> torch.Tensor:
    """The float student on ``x``, as many inputs at a time as fit (memory does not grow with ``x``)."""
    from kdsnn.checkpoint import constructor_args, model_spec
    from kdsnn.models.sizing import measure

    spec = model_spec(dep.ckpt)
    kwargs = constructor_args(spec)
    size = measure(spec["arch"], tuple(spec["input_shape"]), spec["classes"], **kwargs)
    per = size.bytes(1, kwargs.get("timesteps", 1), False) - size.parameters * 4
    batch = max(1, min(MAX_BATCH, WORKING_SET // max(per, 1)))
    with torch.no_grad():
        return torch.cat([dep.model(x[i:i + batch]).logits
                          for i in progress(range(0, len(x), batch), desc="float student", leave=False)])


def build_report(dep: Deployable, out_dir: str | Path, data_root: str | None = None, limit: int | None = None,
                 slow_samples: int = 32, profiles: list[str] | None = None, targets: list[str] | None = None,
                 inputs: tuple[torch.Tensor, torch.Tensor] | None = None, map_samples: int = MAP_SAMPLES
                 ) -> dict[str, Any]:
    """Measure everything and write the report files; returns the JSON content.

    ``inputs``: the user's own samples and labels instead of the data set's test split. Every runner takes
    the inputs a batch at a time; the files appear together when all are written (none after a failure)."""
    t0 = time.time()
    chosen = [load_profile(p) for p in (profiles or builtin_profiles())]  # bad names fail before the long work
    chosen_targets = [load_target(t) for t in (targets or builtin_targets())]
    x, y = _test_inputs(dep, data_root, limit, inputs)
    n = len(y)
    stage(f"report: the float student on {n:,} samples")
    meta = get_meta(dep.int_graph)

    float_pred = _student_logits(dep, x).argmax(1)
    accuracy: dict[str, Any] = {"float (PyTorch student)": {"accuracy": float((float_pred == y).double().mean()),
                                                            "samples": n}}
    accuracy_rows, sim, head, reference = backend_accuracy(dep.int_graph, x, y, dep.bits, slow_samples)
    accuracy["float (PyTorch student)"]["agreement"] = float((float_pred == reference).double().mean())
    accuracy.update(accuracy_rows)

    stats = sim.to_dict()
    rates = {k: v["firing_rate"] for k, v in stats["neurons"].items()}
    per_layer = {k: {"synops": v["synops"] / n, "macs_effective": v["macs_effective"] / n,
                     "macs_dense": v["macs_dense"] / n, "synapses": v["synapses"]} for k, v in stats["layers"].items()}
    anns = {"student as ANN": graph_ann_macs(dep.float_graph)}
    teacher_path = (dep.ckpt.get("config") or {}).get("teacher")
    if teacher_path:
        try:
            teacher, _ = checkpoint.load_model(teacher_path)
            anns[f"teacher {checkpoint.load(teacher_path)['model_spec']['arch']}"] = ann_macs(teacher, x[:1])
        except KdsnnError as exc:
            anns_note = str(exc)
            accuracy["teacher"] = {"note": anns_note}
    stage("report: counting SynOps and energy")
    energies = [energy_report(sim, anns, p) for p in chosen]
    one = {k: torch.as_tensor(v)[:, 0].reshape(v.shape[0], -1).numpy() for k, v in head.spikes.items()}
    params = sum(p.numel() for p in dep.model.parameters())
    with staged_folder(out_dir) as out:
        stage(f"report: mapping onto {', '.join(t.name for t in chosen_targets)} ({min(n, map_samples):,} samples, "
              "as kdsnn map does)")
        target_results, target_images = map_targets(dep.int_graph, dep.float_graph, x, out, chosen_targets,
                                                    samples=map_samples)
        stage("report: drawing the plots")
        images = {
            "firing_rates": plots.firing_rates(rates, out / "firing_rates.png", n, meta.get("timesteps")),
            "synops": plots.synops(per_layer, out / "synops.png", n),
            "energy": plots.energy(energies, out / "energy.png", n),
            "raster": plots.raster(one, out / "raster.png"),
            **{f"cores_{k}": v for k, v in target_images.items()},
        }
        report = {
            "checkpoint_arch": dep.arch, "dataset": dep.dataset, "samples": n, "timesteps": meta.get("timesteps"),
            "bits": dep.bits, "parameters": params, "readout": meta.get("readout"), "encoding": meta.get("encoding"),
            "accuracy": accuracy, "firing_rates": rates, "per_layer": per_layer, "per_inference": sim.per_sample(),
            "ann_macs": anns, "energy": energies, "targets": target_results, "map_samples": min(n, map_samples),
            "membrane_overflow": stats["totals"]["overflow"], "quantization": meta.get("quantization", {}),
            "images": {k: v.name for k, v in images.items()}, "seconds": round(time.time() - t0, 1),
            "definitions": "SynOps: exact fan-out, pooling composed into the next layer; first layer: effective "
                           "MACs (docs/synops.md). Energy: count × per-operation energy of each profile "
                           "(sources inside).",
        }
        stage("report: writing report.html and report.json")
        write_text(out / "report.json", json.dumps(report, indent=2, default=float))
        write_text(out / "report.html", _html(report, images))
    return report


def backend_accuracy(graph, x: torch.Tensor, y: torch.Tensor, bits: int, slow_samples: int
                     ) -> tuple[dict[str, Any], Any, Any, torch.Tensor]:
    """Accuracy of every registered backend that reports one (slow ones on the first ``slow_samples``
    inputs), each run a batch at a time, and how often each predicted what the reference simulator predicted on
    the same inputs; the reference simulator's counters over all inputs, its run of the first
    :data:`MAP_SAMPLES` inputs alone (spike trains: the raster), and its predictions."""
    view = GraphView.of(graph)
    steps = view.require_timesteps()
    rows: dict[str, Any] = {}
    preds: dict[str, torch.Tensor] = {}
    sim = head = reference = None
    for backend in BACKENDS.values():
        if not backend.in_report:
            continue
        label = backend.report_label(bits)
        ok, why = backend.usable_for(view)
        xs, ys = (x[:slow_samples], y[:slow_samples]) if backend.slow else (x, y)
        if not ok or not len(xs):
            rows[label] = {"note": why or "no samples (--slow-samples 0)"}
            continue
        stage(f"report: {backend.title} on {len(xs):,} samples")
        run = run_batches(backend, graph, xs, view, steps, keep_head=MAP_SAMPLES, progress=True)
        preds[label] = torch.as_tensor(run.logits).argmax(1)
        rows[label] = {"accuracy": _accuracy(run.logits, ys), "samples": len(ys),
                       **({"seconds_per_sample": run.extra["seconds_per_sample"]}
                          if "seconds_per_sample" in run.extra else {})}
        if run.counters is not None:
            sim, head, reference = run.counters, run.head, preds[label]
    if sim is None:  # pragma: no cover - the reference simulator is always registered and runs every graph
        raise KdsnnError("the reference simulator did not run; its counters are what the report is built on")
    for label, p in preds.items():
        rows[label]["agreement"] = float((p == reference[:len(p)]).double().mean())
    return rows, sim, head, reference


def _html(r: dict[str, Any], images: dict[str, Path]) -> str:
    e = html.escape
    n = r["samples"]
    per = r["per_inference"]
    ops_rows = [[k.replace("_", " "), v] for k, v in per.items()]
    m = r.get("map_samples", 0)
    targets = targets_html(r.get("targets", []), {k[6:]: v for k, v in images.items() if k.startswith("cores_")})
    return f"""<!doctype html><html><head>\
<meta charset="utf-8"><title>kdsnn report: {e(r['checkpoint_arch'])}</title><style>{STYLE}</style></head><body>
<h1>kdsnn report: {e(r['checkpoint_arch'])} on {e(r['dataset'])}</h1>
{summary_html(r)}
<h2>Accuracy on every backend</h2>
<p>Each backend on the first samples of the same {n:,} test samples (the slow ones on fewer); the last column: how
often it predicted the class the reference simulator predicted on those samples.</p>
{table(accuracy_rows(r), ACCURACY_HEAD)}
<h2>Operations per inference (mean over {n:,} samples)</h2>{table(ops_rows, ['counter', 'per inference'])}
<p>{e(r['definitions'])}</p>
{figure(images['synops'], f"Synaptic work per layer, mean over {n:,} samples.")}
<h2>Firing ({n:,} samples)</h2>
{figure(images['firing_rates'], f"Firing rate per spiking layer over {n:,} samples × {r['timesteps']} steps.")}
{figure(images['raster'], "Spikes of one test sample (1 sample: the first of the test set).")}
<h2>Energy per inference (mean over {n:,} samples)</h2>
{table(energy_rows(r, "the "), ['profile', 'network', 'energy', 'breakdown'])}
{figure(images['energy'], f"Energy per inference by hardware profile, mean over {n:,} samples.")}
<h3>Sources of the constants</h3><ul>{sources_html(r)}</ul>
{targets.replace("<h2>Hardware targets</h2>", f"<h2>Hardware targets ({m:,} samples, as kdsnn map)</h2>", 1)}
<p>Membrane values beyond the simulator's 24-bit check over {n:,} samples: {r['membrane_overflow']:,}
(each target's own state range is checked above, on the membranes its {m:,} samples reached).</p>
</body></html>
"""
