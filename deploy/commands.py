"""Deploy sub-commands: simulate, doctor, verify, report, demo."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from kdsnn.arg_types import positive_int
from kdsnn.errors import KdsnnError
from kdsnn.human import plain


def _simulate(a: argparse.Namespace) -> int:
    from kdsnn.export.graph_view import GraphView
    from kdsnn.human import count

    from .backends import get
    from .batched import is_sequence, run_batches
    from .graph_inputs import accuracy, check_save, graph_batch, read_graph, save_run

    backend = get(a.backend)
    if a.save is not None:
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
        print(f"  {name:10s} firing rate {st['firing_rate'] * 100:6.2f} %   spikes {st['spikes']:,}")
    if "per_inference" in summary:
        p = summary["per_inference"]
        print(f"  per inference ({run.samples:,} samples): {count(p['synops'])} SynOps, {count(p['macs_effective'])} "
              f"effective first-layer MACs ({count(p['macs_dense'])} dense), {count(p['neuron_updates'])} neuron "
              f"updates, {count(p['overflow'])} 24-bit overflows")
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


def _no_reading_options(a: argparse.Namespace) -> None:
    """A checkpoint records its own T, dt and reset: the options that say how to read a NIR file are refused with
    one (they were ignored before, so a user's --timesteps silently did not apply)."""
    given = [f for f, v in (("--timesteps", a.timesteps), ("--dt", a.dt), ("--legacy-reset", a.legacy_if_reset))
             if v is not None]
    if given:
        raise KdsnnError(f"{given[0]} says how to read a NIR file; {a.checkpoint} is a checkpoint, whose student "
                         "records its own T, dt and reset (drop it, or give the NIR file)")


def _checkpoint_inputs(a: argparse.Namespace, dep, need_labels: bool = False):
    """``--inputs``/``--labels`` for a student checkpoint: ``(x, y or None)`` shaped like its input, or None."""
    if getattr(a, "spike_rate", None) is not None:
        raise KdsnnError("--spike-rate feeds NIR files that expect spikes; a student checkpoint encodes its own input")
    if getattr(a, "inputs", None) is None:  # "" (an unset variable) is refused by the reader
        if getattr(a, "labels", None) is not None:
            raise KdsnnError("--labels goes with --inputs (the labels of your own samples)")
        return None
    from kdsnn import checkpoint, data

    spec = checkpoint.model_spec(dep.ckpt)
    x, y = data.load_inputs(a.inputs, a.labels, shape=tuple(spec["input_shape"]), classes=int(spec["classes"]))
    if need_labels and y is None:
        raise KdsnnError("report measures accuracy: give --labels FILE.npy with --inputs")
    return x, y


def _graph_or_checkpoint(a: argparse.Namespace) -> bool:
    """Whether the command runs on a NIR file (True) or a checkpoint (False); one-line error if neither or both.

    MODEL may be either: a file that is not ``.nir`` is taken as a checkpoint (``a.checkpoint``), as ``kdsnn map``
    takes it."""
    if (a.model is None) == (a.checkpoint is None):
        raise KdsnnError(f"give a NIR file or a student checkpoint (kdsnn {a.command} MODEL), "
                         + ("not both" if a.model else "one of them"))
    if a.model is not None and not str(a.model).lower().endswith(".nir"):
        from pathlib import Path

        if Path(a.model).is_file() and not _is_hdf5(a.model):
            a.checkpoint, a.model = a.model, None
    return a.model is not None


def _is_hdf5(path: str) -> bool:
    """A NIR file (HDF5) whatever its name: its first bytes are HDF5's signature."""
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


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
        print(f"{a.model} on {source}; dt {plain(view.dt)} ({view.reading.dt_why}); IF reset: {view.reset}")
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
    targets = [load_target(t) for t in (a.target or builtin_targets())]  # a wrong name fails before the work
    if graph_file:
        return _verify_graph(a, targets)
    _no_reading_options(a)

    from kdsnn.export.student import load_student_graphs

    from .verify import as_json, format_table, verify

    dep = load_student_graphs(a.checkpoint, a.bits, dataset=a.dataset, data_root=a.data_root)
    user = _checkpoint_inputs(a, dep)
    x = user[0] if user is not None else data.sample_batch(dep.dataset, a.samples, a.data_root,
                                                                   timesteps=dep.timesteps)[0]
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
    if graph_file and a.target:
        raise KdsnnError("--target maps a checkpoint's integer graph in its report; for a NIR file run "
                         f"`kdsnn map {a.model} --target {a.target[0]}`")
    if not graph_file:
        _no_reading_options(a)
    check_folder(a.out, "--out", REPORT_FILES, inputs, a.force)
    if graph_file:
        from kdsnn.export.graph_view import GraphView

        from .graph_inputs import graph_batch, read_graph
        from .report.graph import build_graph_report

        graph = read_graph(a)
        view = GraphView.of(graph)
        x, y, source = graph_batch(view, a, a.samples or 256)
        rep = build_graph_report(graph, a.model, a.out, x, y, source, a.slow_samples, a.profile or None)
        _report_done(a, rep)
        return 0

    from kdsnn.export.student import load_student_graphs

    from .report import build_report

    dep = load_student_graphs(a.checkpoint, a.bits, dataset=a.dataset, data_root=a.data_root)
    profiles = a.profile or None
    rep = build_report(dep, a.out, a.data_root, a.samples, a.slow_samples, profiles,
                       inputs=_checkpoint_inputs(a, dep, need_labels=True), targets=a.target)
    _report_done(a, rep)
    return 0


def _report_done(a: argparse.Namespace, rep: dict) -> None:
    """The report's last words: one JSON line, or the summary the page opens with."""
    from .report.summary import summary_text

    if a.json:
        print(json.dumps({"report": f"{a.out}/report.html", "accuracy": rep["accuracy"]}, default=float))
    else:
        print(summary_text(rep))
        print(f"report written to {a.out}/report.html (and report.json, *.png)")


def _demo(a: argparse.Namespace) -> int:
    from kdsnn.distill import check_method
    from kdsnn.outputs import require_path

    from .demo import run_demo

    require_path(a.out, "--out", "folder to write")
    check_method(a.kd)  # before the teacher trains: a wrong name fails now, not after the first stage
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
                       + ("identical logits" if diff == 0 else f"max |Δlogit| {plain(diff, 3)}: FAILED")}


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


def _model_args(p: argparse.ArgumentParser) -> None:
    """MODEL as a positional argument, a .nir file or a student checkpoint, as in ``kdsnn map`` (``--checkpoint``
    stays as the earlier spelling)."""
    p.add_argument("model", nargs="?", default=None,
                   help="a .nir file (ours or another tool's) or a student checkpoint (kdsnn distill)")
    p.add_argument("--checkpoint", default=None, help="a student checkpoint (the same as giving it as MODEL)")


def _target_arg(p: argparse.ArgumentParser, what: str) -> None:
    from .targets.spec import builtin_targets

    p.add_argument("--target", action="append", default=None,
                   help=f"hardware target: {', '.join(builtin_targets())} or a TOML/JSON target file; repeatable "
                        f"(default: every built-in target): {what}")


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
    _model_args(p)
    p.add_argument("--timesteps", type=positive_int, default=None, help="T, for NIR files that do not record it")
    add_reading_options(p)
    add_input_options(p)
    p.add_argument("--bits", type=int, default=8, help="weight bits when MODEL is a checkpoint")
    p.add_argument("--samples", type=positive_int, default=8, help="test inputs every backend is compared on")
    p.add_argument("--slow-samples", "--lava-samples", type=int, default=None,
                   help=f"compare the slow backends ({names_text(slow_only=True)}) on only the first N of them "
                        "(default: all)")
    _target_arg(p, "say whether it runs the checked graph as it is")
    p.add_argument("--dataset", default=None, help="data set of the inputs (default: the one the model records)")
    p.add_argument("--data-root", default=None, help="folder in torchvision's layout (mnist/cifar)")

    p = add("report", "accuracy per backend, firing, SynOps and energy as HTML/JSON/PNG", _report)
    _model_args(p)
    p.add_argument("--timesteps", type=positive_int, default=None, help="T, for NIR files that do not record it")
    add_reading_options(p)
    add_input_options(p)
    p.add_argument("--out", required=True, help="folder of report.html, report.json and the PNGs")
    p.add_argument("--force", action="store_true", help="replace an earlier report in --out")
    p.add_argument("--bits", type=int, default=8, help="weight bits when MODEL is a checkpoint")
    p.add_argument("--dataset", default=None, help="data set of the inputs (default: the one the model records)")
    p.add_argument("--data-root", default=None, help="folder in torchvision's layout (mnist/cifar)")
    p.add_argument("--samples", type=positive_int, default=None,
                   help="use only the first N test samples (default: the whole test split of a checkpoint's data "
                        "set; 256 inputs for a NIR file)")
    p.add_argument("--limit", dest="samples", type=positive_int, help=argparse.SUPPRESS)  # its earlier name
    p.add_argument("--slow-samples", "--lava-samples", type=positive_int, default=32,
                   help=f"test samples run on the slow backends ({names_text(slow_only=True)})")
    _target_arg(p, "map the integer graph onto it (a checkpoint's report; the same answer as kdsnn map)")
    p.add_argument("--profile", action="append", default=None,
                   help="energy profile: a built-in name or a TOML/JSON file (repeatable; default: all built-ins)")

    p = add("demo", "the whole road on digits: train, distill, quantize, export, simulate, verify, report", _demo)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--teacher-epochs", type=positive_int, default=15)
    p.add_argument("--student-epochs", type=positive_int, default=15)
    from kdsnn.distill import DEFAULT_METHOD, DEMO_METHOD

    p.add_argument("--kd", default=DEMO_METHOD,
                   help=f"distillation method of the demo's student (default {DEMO_METHOD}; "
                        f"`kdsnn distill` defaults to {DEFAULT_METHOD})")
