"""Deploy sub-commands: simulate, doctor, verify, report, demo."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from kdsnn.arg_types import positive_int
from kdsnn.errors import KdsnnError


def _simulate(a: argparse.Namespace) -> int:
    from kdsnn.export.graph_view import GraphView

    from .backends import get
    from .batched import is_sequence, run_batches
    from .graph_inputs import accuracy, check_save, graph_batch, read_graph, save_run

    backend = get(a.backend)
    if a.save:
        check_save(a, backend)  # before the work: a wrong --save fails now, not after the simulation
    graph = read_graph(a)
    view = GraphView.of(graph, a.timesteps)
    ok, why = backend.available()
    if not ok:
        raise KdsnnError(f"backend {a.backend} is not usable here: {why}")
    ok, why = backend.supports(view)
    if not ok:
        raise KdsnnError(f"backend {a.backend} cannot run {a.model}: {why}")
    x, y, source = graph_batch(view, a, a.samples)
    steps = int(x.shape[0]) if is_sequence(x, view) else view.require_timesteps()
    if a.save:
        check_save(a, backend, view, x, steps)
    run = run_batches(backend, view, x, view, steps, timesteps=a.timesteps, keep_all=bool(a.save),
                      progress=not a.json)
    rates = run.firing_rates()
    spiking = [k for k in run.spike_totals if k in view.models and view.models[k].spiking]
    if a.save:
        out = run.output if run.output is not None else run.spikes.get(view.preds[view.output][0]) \
            if view.spiking_output and run.spikes else None
        if out is None:
            raise KdsnnError(f"backend {a.backend} does not return the output sequence; --save needs it")
        save_run(a.save, out, {k: run.spikes[k] for k in spiking})
    summary: dict = {"layers": {k: {"firing_rate": rates[k], "spikes": int(run.spike_totals[k])} for k in spiking}}
    if run.counters is not None:
        summary["per_inference"] = run.counters.per_sample()
    summary.update(run.extra)
    acc = accuracy(run.logits, y)
    dataset = (a.dataset or view.meta.get("dataset")) if a.inputs is None and a.spike_rate is None else None
    result = {"backend": a.backend, "model": a.model, "dataset": dataset, "inputs": source,
              "samples": run.samples, "accuracy": acc, "dt": view.dt, "if_reset": view.reset,
              "notes": view.notes, **summary}
    if a.save:
        result["saved"] = a.save
    if a.json:
        print(json.dumps(result, default=float))
        return 0
    print(f"{backend.title} on {source}: " + (f"accuracy {acc * 100:.2f} %" if acc is not None else "no labels"))
    for note in view.notes:
        print(f"  note: {note}")
    for name, st in summary["layers"].items():
        print(f"  {name:10s} firing rate {st['firing_rate'] * 100:6.2f} %   spikes {st['spikes']}")
    if "per_inference" in summary:
        p = summary["per_inference"]
        print(f"  per inference: {p['synops']:.0f} SynOps, {p['macs_effective']:.0f} effective first-layer MACs "
              f"({p['macs_dense']:.0f} dense), {p['neuron_updates']:.0f} neuron updates, "
              f"{p['overflow']:.0f} 24-bit overflows")
    return 0


def _doctor(a: argparse.Namespace) -> int:
    import importlib.metadata as md

    import numpy as np

    from .backends import BACKENDS

    nir_v = md.version("nir")
    nir_ok = tuple(int(p) for p in nir_v.split(".")[:3]) >= (1, 0, 8)
    rows = [("NIR", nir_ok,
             f"nir {nir_v}" + ("" if nir_ok else ": need >= 1.0.8 (IF reset semantics changed in 1.0.6)"))]
    np_ok = tuple(int(p) for p in np.__version__.split(".")[:2]) < (2, 4)
    rows.append(("numpy", np_ok, f"numpy {np.__version__}" + ("" if np_ok else ": lava-nc 0.10 needs numpy < 2.4")))
    for backend in BACKENDS.values():
        ok, why = backend.available()
        rows.append((backend.title, ok, backend.detail() if ok else why))
    if a.json:
        print(json.dumps([{"backend": n, "usable": u, "detail": d} for n, u, d in rows]))
    else:
        for n, u, d in rows:
            print(f"{'ok ' if u else 'NO '} {n:32s} {d}")
    return 0


def _checkpoint_inputs(a: argparse.Namespace, dep, need_labels: bool = False):
    """``--inputs``/``--labels`` for a student checkpoint: ``(x, y or None)`` shaped like its input, or None."""
    if getattr(a, "spike_rate", None) is not None:
        raise KdsnnError("--spike-rate feeds NIR files that expect spikes; a student checkpoint encodes its own input")
    if not getattr(a, "inputs", None):
        if getattr(a, "labels", None):
            raise KdsnnError("--labels goes with --inputs (the labels of your own samples)")
        return None
    from kdsnn import checkpoint, data

    spec = checkpoint.model_spec(dep.ckpt)
    x, y = data.load_inputs(a.inputs, a.labels, shape=tuple(spec["input_shape"]), classes=int(spec["classes"]))
    if need_labels and y is None:
        raise KdsnnError("report measures accuracy: give --labels FILE.npy with --inputs")
    return x, y


def _graph_or_checkpoint(a: argparse.Namespace) -> bool:
    """Whether the command runs on a NIR file (True) or a checkpoint (False); one-line error if neither or both."""
    if (a.model is None) == (a.checkpoint is None):
        raise KdsnnError(f"give a NIR file (kdsnn {a.command} FILE.nir) or --checkpoint CKPT, "
                         + ("not both" if a.model else "one of them"))
    return a.model is not None


def _verify_graph(a: argparse.Namespace, targets: list) -> int:
    from kdsnn.export.graph_view import GraphView

    from .graph_inputs import graph_batch, read_graph
    from .verify import as_json, comparison_rule, format_table, verify_graph

    graph = read_graph(a)
    view = GraphView.of(graph)
    x, _, source = graph_batch(view, a, a.samples)
    checks = verify_graph(graph, x, progress=not a.json, slow_samples=a.slow_samples)
    failed = [c for c in checks if c.failed]
    fidelity = _target_fidelity(graph, targets)
    if a.json:
        print(json.dumps({"agree": not failed, "inputs": source, "notes": view.notes, "checks": as_json(checks),
                          "comparison": comparison_rule(view.integer), "targets": fidelity}))
    else:
        print(f"{a.model} on {source}; dt {view.dt:g} ({view.reading.dt_why}); IF reset: {view.reset}")
        print(f"comparison: {comparison_rule(view.integer)}")
        for note in view.notes:
            print(f"note: {note}")
        print(format_table(checks))
        _print_fidelity(fidelity)
        print("all backends agree" if not failed else f"{len(failed)} backend(s) disagree")
    return 1 if failed else 0


def _print_fidelity(fidelity: dict[str, list[str]]) -> None:
    for name, problems in fidelity.items():
        print(f"target {name}: " + ("it runs this very integer graph" if not problems else
                                    "it would run a different graph: " + "; ".join(problems)))


def _verify(a: argparse.Namespace) -> int:
    from kdsnn import data

    from .targets.spec import builtin_targets, load_target

    graph_file = _graph_or_checkpoint(a)
    # a wrong name fails before the work; a NIR file is compared with the targets asked for, a checkpoint's
    # integer graph with every built-in one by default
    targets = [load_target(t) for t in (a.target or ([] if graph_file else builtin_targets()))]
    if graph_file:
        return _verify_graph(a, targets)

    from kdsnn.export.student import load_student_graphs

    from .verify import as_json, format_table, verify

    dep = load_student_graphs(a.checkpoint, a.bits, dataset=a.dataset, data_root=a.data_root)
    user = _checkpoint_inputs(a, dep)
    x = user[0] if user is not None else data.sample_batch(dep.dataset, a.samples, a.data_root)[0]
    checks = verify(dep, x, progress=not a.json, slow_samples=a.slow_samples)
    failed = [c for c in checks if c.failed]
    fidelity = _target_fidelity(dep.int_graph, targets)
    if a.json:
        print(json.dumps({"agree": not failed, "checks": as_json(checks), "targets": fidelity}))
    else:
        print(format_table(checks))
        _print_fidelity(fidelity)
        print("all backends agree" if not failed else f"{len(failed)} backend(s) disagree")
    return 1 if failed else 0


def _target_fidelity(graph, targets: list) -> dict[str, list[str]]:
    """Per hardware target: how the integer graph verify checked differs from what the target runs."""
    from .targets.mapping import target_compatibility

    return {t.name: target_compatibility(graph, t) for t in targets}


REPORT_FILES = ("report.html", "report.json")


def _report(a: argparse.Namespace) -> int:
    from kdsnn.outputs import check_folder

    graph_file = _graph_or_checkpoint(a)
    inputs = {"the model": a.model, "--checkpoint": a.checkpoint, "--inputs": a.inputs, "--labels": a.labels,
              "--config": a.config, **{f"--profile {p}": p for p in a.profile or []}}
    check_folder(a.out, "--out", REPORT_FILES, inputs, a.force)
    if graph_file:
        from kdsnn.export.graph_view import GraphView

        from .graph_inputs import graph_batch, read_graph
        from .report.graph import build_graph_report

        graph = read_graph(a)
        view = GraphView.of(graph)
        x, y, source = graph_batch(view, a, a.limit or 256)
        rep = build_graph_report(graph, a.model, a.out, x, y, source, a.slow_samples, a.profile or None)
        if a.json:
            print(json.dumps({"report": f"{a.out}/report.html", "accuracy": rep["accuracy"]}, default=float))
        else:
            print(f"report written to {a.out}/report.html (and report.json, *.png)")
        return 0

    from kdsnn.export.student import load_student_graphs

    from .report import build_report

    dep = load_student_graphs(a.checkpoint, a.bits, dataset=a.dataset, data_root=a.data_root)
    profiles = a.profile or None
    rep = build_report(dep, a.out, a.data_root, a.limit, a.slow_samples, profiles,
                       inputs=_checkpoint_inputs(a, dep, need_labels=True))
    if a.json:
        print(json.dumps({"report": f"{a.out}/report.html", "accuracy": rep["accuracy"]}, default=float))
    else:
        print(f"report written to {a.out}/report.html (and report.json, *.png)")
    return 0


def _demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(a.out, a.teacher_epochs, a.student_epochs, a.kd)


def check_netx_file(path, graph, x, ref_logits) -> dict:
    """Run a written netx file on Lava and compare its logits with the PyTorch graph's
    (installed as the netx format's checker: only this layer can run netx files)."""
    import torch

    from .lava import lava_available, run_lava

    ok, why = lava_available()
    if not ok:
        return {"passed": None, "max_abs_diff": None, "summary": f"skipped: Lava is not importable ({why})"}
    x = x[:2]  # Lava starts slowly and runs one sample at a time
    got = run_lava(graph, x, netx_path=path, progress=False).logits
    diff = float((torch.as_tensor(got, dtype=torch.float64) - ref_logits[:2].double()).abs().max())
    return {"passed": diff == 0, "max_abs_diff": diff,
            "summary": f"Lava (Loihi 2 fixed-point simulation) vs PyTorch graph on {len(x)} test inputs: "
                       + ("identical logits" if diff == 0 else f"max |Δlogit| {diff:.3g}: FAILED")}


def backend_lines(view) -> list[str]:
    """``inspect``'s section: which backends run the graph, and for the others the node and why not."""
    from .backends import BACKENDS

    lines = ["backends:"]
    for b in BACKENDS.values():
        ok, why = b.supports(view)
        if ok:
            usable, missing = b.available()
            why = "runs every node" + ("" if usable else f" (not usable here: {missing.split(';')[0]})")
        lines.append(f"  {b.name:10s} {'yes' if ok else 'no '}  {why}")
    return lines


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    from kdsnn.export.formats import set_checker

    set_checker("netx", check_netx_file)
    from kdsnn.export.inspect import add_section

    add_section(backend_lines)
    from .backends import names_text
    from .graph_inputs import add_input_options, add_reading_options

    p = add("simulate", "run a NIR graph on one backend (default: the reference simulator)", _simulate)
    p.add_argument("model", help="a .nir file (ours, or another tool's with the same node types)")
    p.add_argument("--backend", default="simulator", help=f"one of: {names_text()}")
    p.add_argument("--dataset", default=None, help="data set of the inputs (default: the one the graph records)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--samples", type=int, default=64, help="number of test inputs")
    p.add_argument("--timesteps", type=positive_int, default=None, help="T, for graphs that do not record it")
    p.add_argument("--save", default=None, help="write OUT.npz: the output sequence ('output', [T, B, ...]) and "
                                                "every population's spikes under its node name")
    p.add_argument("--force", action="store_true", help="replace the --save file if it exists")
    add_reading_options(p)
    add_input_options(p)

    add("doctor", "report which backends are usable, and why not", _doctor)

    p = add("verify",
            "run a NIR file, or a student exported from its checkpoint, on every backend and check they agree",
            _verify)
    p.add_argument("model", nargs="?", default=None, help="a .nir file (ours or another tool's); or give --checkpoint")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--timesteps", type=positive_int, default=None, help="T, for NIR files that do not record it")
    add_reading_options(p)
    add_input_options(p)
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--samples", type=int, default=8, help="test inputs every backend is compared on")
    p.add_argument("--slow-samples", "--lava-samples", type=int, default=None,
                   help=f"compare the slow backends ({names_text(slow_only=True)}) on only the first N of them "
                        "(default: all)")
    p.add_argument("--target", action="append", default=None,
                   help="hardware target (built-in name or file; repeatable; default for --checkpoint: all "
                        "built-ins): say whether it runs the checked graph as it is")
    p.add_argument("--dataset", default=None)
    p.add_argument("--data-root", default=None)

    p = add("report", "accuracy per backend, firing, SynOps and energy as HTML/JSON/PNG", _report)
    p.add_argument("model", nargs="?", default=None, help="a .nir file (ours or another tool's); or give --checkpoint")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--timesteps", type=positive_int, default=None, help="T, for NIR files that do not record it")
    add_reading_options(p)
    add_input_options(p)
    p.add_argument("--out", required=True, help="folder of report.html, report.json and the PNGs")
    p.add_argument("--force", action="store_true", help="replace an earlier report in --out")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--dataset", default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N test samples")
    p.add_argument("--slow-samples", "--lava-samples", type=int, default=32,
                   help=f"test samples run on the slow backends ({names_text(slow_only=True)})")
    p.add_argument("--profile", action="append", default=None,
                   help="energy profile: a built-in name or a TOML/JSON file (repeatable; default: all built-ins)")

    p = add("demo", "the whole road on digits: train, distill, quantize, export, simulate, verify, report", _demo)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--teacher-epochs", type=int, default=15)
    p.add_argument("--student-epochs", type=int, default=15)
    from kdsnn.distill import DEFAULT_METHOD, DEMO_METHOD

    p.add_argument("--kd", default=DEMO_METHOD,
                   help=f"distillation method of the demo's student (default {DEMO_METHOD}; "
                        f"`kdsnn distill` defaults to {DEFAULT_METHOD})")
