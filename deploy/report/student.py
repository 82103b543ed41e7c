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
from kdsnn.export.quantize import range_problems
from kdsnn.export.student import Deployable
from kdsnn.progress import progress

from ..backends import BACKENDS
from ..batched import MAX_BATCH, WORKING_SET, run_batches
from ..energy import builtin_profiles, energy_report, load_profile
from ..synops import ann_macs, graph_ann_macs
from ..targets.spec import builtin_targets, load_target
from . import plots
from .html import accuracy_rows, energy_rows, img, sources_html, table
from .targets import MAP_SAMPLES, map_targets, targets_html


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((torch.as_tensor(logits).argmax(1) == labels).double().mean())


def _test_inputs(dep: Deployable, data_root: str | None, limit: int | None,
                 inputs: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and labels the report measures: the user's, or the data set's test split (first ``limit``)."""
    if inputs is not None:
        return inputs[0][:limit], inputs[1][:limit]
    test = data.load(dep.dataset, "test", data_root)
    n = len(test) if limit is None else min(limit, len(test))
    require(n * int(np.prod(data.spec(dep.dataset).input_shape)) * 4, f"{n} test inputs of {dep.dataset}",
            "use --limit")
    xs, ys = zip(*(test[i] for i in range(n)), strict=True)
    return torch.stack(xs), torch.tensor(ys)


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
                 lava_samples: int = 32, profiles: list[str] | None = None, targets: list[str] | None = None,
                 inputs: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, Any]:
    """Measure everything and write the report files; returns the JSON content.

    ``inputs``: the user's own samples and labels instead of the data set's test split. Every runner takes
    the inputs a batch at a time; the files appear together when all are written (none after a failure)."""
    t0 = time.time()
    chosen = [load_profile(p) for p in (profiles or builtin_profiles())]  # bad names fail before the long work
    chosen_targets = [load_target(t) for t in (targets or builtin_targets())]
    x, y = _test_inputs(dep, data_root, limit, inputs)
    n = len(y)
    meta = get_meta(dep.int_graph)

    accuracy: dict[str, Any] = {"float (PyTorch student)": {"accuracy": _accuracy(_student_logits(dep, x), y),
                                                            "samples": n}}
    accuracy_rows, sim, head = backend_accuracy(dep.int_graph, x, y, dep.bits, lava_samples)
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
    energies = [energy_report(sim, anns, p) for p in chosen]
    one = {k: torch.as_tensor(v)[:, 0].reshape(v.shape[0], -1).numpy() for k, v in head.spikes.items()}
    params = sum(p.numel() for p in dep.model.parameters())
    with staged_folder(out_dir) as out:
        target_results, target_images = map_targets(dep.int_graph, dep.float_graph, x, out, chosen_targets,
                                                    sim=head)
        images = {
            "firing_rates": plots.firing_rates(rates, out / "firing_rates.png"),
            "synops": plots.synops(per_layer, out / "synops.png"),
            "energy": plots.energy(energies, out / "energy.png"),
            "raster": plots.raster(one, out / "raster.png"),
            **{f"cores_{k}": v for k, v in target_images.items()},
        }
        report = {
            "checkpoint_arch": dep.arch, "dataset": dep.dataset, "samples": n, "timesteps": meta.get("timesteps"),
            "bits": dep.bits, "parameters": params, "readout": meta.get("readout"), "encoding": meta.get("encoding"),
            "accuracy": accuracy, "firing_rates": rates, "per_layer": per_layer, "per_inference": sim.per_sample(),
            "ann_macs": anns, "energy": energies, "targets": target_results,
            "range_problems": range_problems(dep.int_graph),
            "membrane_overflow": stats["totals"]["overflow"], "quantization": meta.get("quantization", {}),
            "images": {k: v.name for k, v in images.items()}, "seconds": round(time.time() - t0, 1),
            "definitions": "SynOps: exact fan-out, pooling composed into the next layer; first layer: effective "
                           "MACs (docs/synops.md). Energy: count × per-operation energy of each profile "
                           "(sources inside).",
        }
        write_text(out / "report.json", json.dumps(report, indent=2, default=float))
        write_text(out / "report.html", _html(report, images))
    return report


def backend_accuracy(graph, x: torch.Tensor, y: torch.Tensor, bits: int, slow_samples: int
                     ) -> tuple[dict[str, Any], Any, Any]:
    """Accuracy of every registered backend that reports one (slow ones on the first ``slow_samples``
    inputs), each run a batch at a time; the reference simulator's counters over all inputs, and its run of
    the first :data:`MAP_SAMPLES` inputs alone (spike trains: the raster and the per-core load)."""
    view = GraphView.of(graph)
    steps = view.require_timesteps()
    rows: dict[str, Any] = {}
    sim = head = None
    for backend in BACKENDS.values():
        if not backend.in_report:
            continue
        label = backend.report_label(bits)
        ok, why = backend.usable_for(view)
        xs, ys = (x[:slow_samples], y[:slow_samples]) if backend.slow else (x, y)
        if not ok or not len(xs):
            rows[label] = {"note": why or "no samples (--lava-samples 0)"}
            continue
        run = run_batches(backend, graph, xs, view, steps, keep_head=MAP_SAMPLES, progress=True)
        rows[label] = {"accuracy": _accuracy(run.logits, ys), "samples": len(ys),
                       **({"seconds_per_sample": run.extra["seconds_per_sample"]}
                          if "seconds_per_sample" in run.extra else {})}
        if run.counters is not None:
            sim, head = run.counters, run.head
    if sim is None:  # pragma: no cover - the reference simulator is always registered and runs every graph
        raise KdsnnError("the reference simulator did not run; its counters are what the report is built on")
    return rows, sim, head


def _html(r: dict[str, Any], images: dict[str, Path]) -> str:
    acc_rows = accuracy_rows(r)
    e_rows = energy_rows(r, "the ")
    per = r["per_inference"]
    ops_rows = [[k, v] for k, v in per.items()]
    sources = sources_html(r)
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in r["range_problems"]) or "<li>none</li>"
    return f"""<!doctype html><html><head>\
<meta charset="utf-8"><title>kdsnn report: {html.escape(r['checkpoint_arch'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}img{{max-width:100%;margin:0.5em 0}}</style></head><body>
<h1>kdsnn report: {html.escape(r['checkpoint_arch'])} on {html.escape(r['dataset'])}</h1>
<p>T = {r['timesteps']}, {r['bits']}-bit integer deployment, {r['parameters']:,} parameters, \
encoding {html.escape(str(r['encoding']))},
readout {html.escape(str(r['readout']))}; {r['samples']} test samples.</p>
<h2>Accuracy on every backend</h2>{table(acc_rows, ['backend', 'accuracy', 'samples', 'note'])}
<h2>Operations per inference</h2>{table(ops_rows, ['counter', 'per inference'])}
<p>{html.escape(r['definitions'])}</p>
{img(images['synops'])}
<h2>Firing</h2>{img(images['firing_rates'])}{img(images['raster'])}
<h2>Energy per inference</h2>{table(e_rows, ['profile', 'network', 'joules', 'breakdown'])}{img(images['energy'])}
<h3>Sources of the constants</h3><ul>{sources}</ul>
{targets_html(r.get('targets', []), {k[6:]: v for k, v in images.items() if k.startswith('cores_')})}
<h2>Ranges a Loihi-style target cannot hold</h2><ul>{problems}</ul>
<p>Membrane values beyond 24 bits seen by the simulator: {r['membrane_overflow']}.</p>
</body></html>
"""
