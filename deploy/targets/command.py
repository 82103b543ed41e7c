"""``kdsnn map``: will a network fit a neuromorphic chip, on how many cores, at what energy and latency.

The answer for a terminal: a verdict line per target first, then each target's problems (each once), energy
and latency, the per-core detail only with ``--cores``, and a closing line. Exit status 0 when every target
asked for fits, 1 when one does not, 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdsnn import human
from kdsnn.arg_types import positive_int
from kdsnn.errors import KdsnnError
from kdsnn.human import seconds as human_seconds

from .mapping import MAP_SAMPLES


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
    from .mapping import map_onto
    from .spec import builtin_targets, load_target, with_graded_input
    from .view import mapping_plan

    targets = [load_target(t) for t in (a.target or builtin_targets())]  # bad names fail before the long work
    if a.graded_input:
        targets = [with_graded_input(t) for t in targets]
    if a.samples < 1:
        raise KdsnnError(f"--samples must be at least 1, got {a.samples}")
    graph, float_graph, dataset = _load_model(a)
    plan = mapping_plan(graph)
    x = None
    if dataset or a.inputs is not None:  # --inputs "" (an unset variable) is refused by the reader, not ignored
        from ..graph_inputs import graph_batch

        source = argparse.Namespace(inputs=a.inputs, labels=None, spike_rate=None, seed=0, model=a.model,
                                    dataset=None if a.inputs is not None else dataset, data_root=a.data_root)
        x = graph_batch(plan.view, source, a.samples)[0]
    results, samples = map_onto(graph, targets, x, ann_graph=float_graph, plan=plan)
    if a.json:
        print(json.dumps({"model": a.model, "dataset": None if a.inputs is not None else dataset, "inputs": a.inputs,
                          "samples": samples, "fits": all(r["fits"] for r in results), "targets": results},
                         default=float))
    else:
        if x is None:
            print(f"{a.model} does not record its data set: rules and placement only "
                  "(pass --dataset or --inputs for load, energy and latency)")
        print(format_answer(results, cores=a.cores))
    return 0 if all(r["fits"] for r in results) else 1


def verdict(r: dict[str, Any]) -> tuple[str, str | None]:
    """A target's verdict: ``loihi2: fits: 12 cores on 1 chip; 66.4 µJ per inference, latency 4.92 µs (64
    samples)``, and its first broken rule with what to change (None when it fits). The report's summary and
    ``kdsnn map`` print the same words."""
    p = r["placement"]
    unit = "layer" if r["kind"] == "layers" else "core"
    placed = f"{p['cores_used']:,} {unit}{'s' if p['cores_used'] != 1 else ''} on {p['chips']:,} " \
             f"chip{'s' if p['chips'] != 1 else ''}"
    unplaced = sum(1 for c in p["cores"] if c["label"] == "unplaced")
    placed += f" ({unplaced} population{'s' if unplaced != 1 else ''} unplaced)" if unplaced else ""
    head = f"{r['target']}: {'fits' if r['fits'] else 'does NOT fit'}: {placed}"
    if r.get("load"):
        lat = r["latency"].get("inference_seconds")
        head += "; if it fit: " if not r["fits"] else "; "  # the figures of a network the chip cannot hold as it is
        head += f"{r['human']['energy']} per inference" if r["energy"].get("joules") is not None \
            else "energy not published"
        head += f", latency {human_seconds(lat)}" if lat is not None else ", latency not published"
        head += f" ({r['load']['samples']:,} sample{'s' if r['load']['samples'] != 1 else ''})"
    else:
        head += "; no inputs: no load, energy or latency"
    if not r["violations"]:
        return head, None
    v = r["violations"][0]
    more = len(r["violations"]) - 1
    return head, f"{v['node']}: {v['message']}" + (f" (and {more} more)" if more else "")


def verdict_line(r: dict[str, Any]) -> str:
    """:func:`verdict` as terminal lines: the first broken rule indented below the verdict."""
    head, problem = verdict(r)
    return head + (f"\n    first problem: {problem}" if problem else "")


def other_notes(r: dict[str, Any]) -> list[str]:
    """The target's compatibility notes that are not already stated as broken rules (each problem once)."""
    stated = {f"{v['node']}: {v['message']}" for v in r["violations"]}
    return [n for n in r["compatibility"] if n not in stated]


def format_text(r: dict[str, Any], cores: bool = False) -> str:
    """The details of ``kdsnn map`` for one target; the per-core lines only with ``cores``."""
    lines = [f"{r['target']}: {r['description']}"]
    for v in r["violations"]:
        lines.append(f"  ✗ {v['node']}: {v['message']}")
    for note in other_notes(r):
        lines.append(f"  • {note}")
    p = r["placement"]
    unplaced = [c for c in p["cores"] if c["label"] == "unplaced"]
    lines.append(f"  placement: {p['cores_used']} {'layer' if r['kind'] == 'layers' else 'core'}(s) on "
                 f"{p['chips']} chip(s)" + (f", {len(unplaced)} population(s) unplaced" if unplaced else "")
                 + f"; {p['algorithm']}")
    if cores:
        lines += _core_lines(r)
    if r.get("load"):
        if not r["fits"]:
            lines.append("  the figures below are what it would cost if it fit (it does not, as it is)")
        lines.append(f"  energy per inference: {r['human']['energy']}" + (
            f" (not published: {', '.join(r['energy']['missing'])})" if r["energy"]["missing"] else ""))
        lat = r["latency"]
        if lat.get("step_seconds") is None:
            lines.append("  latency: not available (not published: "
                         f"{', '.join(lat.get('missing') or ['a time per operation'])})")
        else:
            lines.append(f"  latency: {r['human']['step_latency']} per step, {r['human']['inference_latency']} per "
                         "inference" + (f" ({lat['model']}, busiest core {lat['busiest_core']})"
                                        if lat.get("model") else ""))
        lines.append(f"  {r['sentence']}")
        for n in dict.fromkeys(r["load"]["notes"] + r["energy"]["notes"]):
            lines.append(f"  note: {n}")
    prov = r.get("provenance") or {}
    if prov:
        lines.append(f"  published: {', '.join(prov['published']) or 'none'}")
        for key, how in prov["derived"].items():
            lines.append(f"  derived: {key} = {how}")
        lines.append(f"  assumed (not published by the vendor): {', '.join(prov['assumed']) or 'none'}")
    return "\n".join(lines)


def _core_lines(r: dict[str, Any]) -> list[str]:
    """Per core: what it holds, its memory and its load per step (``kdsnn map --cores``)."""
    lines = []
    for c in r["placement"]["cores"]:
        segs = ", ".join(f"{s[0]}[{s[1]}:{s[2]}]" for s in c["segments"])
        mem = (", ".join(f"{k} {human.count(v)}" for k, v in c["memory"].items()) if c["memory"]
               else f"{human.count(c.get('weights', 0))} stored weights")
        load = ""
        if "per_step" in c:
            ps = c["per_step"]
            load = f"; per step {human.count(ps['synops'])} SynOps, {human.count(ps['spikes'])} spikes"
        axons = (f", fan-in axons {human.count(c['fan_in_axons'])}, fan-out axons {human.count(c['fan_out_axons'])}"
                 if r["kind"] == "cores" else "")
        where = "" if c["label"] == "unplaced" else f" chip {c['chip']}"
        lines.append(f"    {c['label']:>9}{where}: {segs}: {human.count(c['neurons'])} neurons, "
                     f"{human.count(c['synapses'])} synapses, {mem}{axons}{load}")
    return lines


def closing_line(results: list[dict[str, Any]]) -> str:
    """``2 of 3 targets fit (loihi2, xylo); speck does not``: the answer across every target asked for."""
    fit = [r["target"] for r in results if r["fits"]]
    miss = [r["target"] for r in results if not r["fits"]]
    if not miss:
        return f"every target fits ({', '.join(fit)})" if len(fit) > 1 else f"{fit[0]} fits"
    if not fit:
        return f"no target fits ({', '.join(miss)})" if len(miss) > 1 else f"{miss[0]} does not fit"
    return f"{len(fit)} of {len(results)} targets fit ({', '.join(fit)}); {', '.join(miss)} " \
           f"do{'es' if len(miss) == 1 else ''} not"


def format_answer(results: list[dict[str, Any]], cores: bool = False) -> str:
    """The whole terminal answer: a verdict line per target, each target's details, one closing line."""
    parts = ["\n".join(verdict_line(r) for r in results)]
    parts += [format_text(r, cores) for r in results]
    if not cores and any(r["placement"]["cores"] for r in results):
        parts.append("(per-core detail: --cores)")
    parts.append(closing_line(results))
    return "\n\n".join(parts)


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    from kdsnn.export.commands import set_handoff

    from .handoff import export_for
    from .spec import builtin_targets

    set_handoff(export_for)  # `kdsnn export --for CHIP` writes what the chip's toolchain reads

    p = add("map", "will it fit a chip: rules, cores, per-core load, energy and latency per target", _map)
    p.add_argument("model", help="a .nir file or a student checkpoint (kdsnn distill)")
    p.add_argument("--target", action="append", default=None,
                   help=f"built-in target ({', '.join(builtin_targets())}) or a TOML/JSON target file; repeatable "
                        "(default: every built-in target)")
    p.add_argument("--dataset", default=None, help="data set of the inputs (default: the one the model records)")
    p.add_argument("--data-root", default=None, help="folder in torchvision's layout (mnist/cifar)")
    p.add_argument("--samples", type=positive_int, default=MAP_SAMPLES,
                   help="test inputs simulated for the per-core load, energy and latency (kdsnn report maps the "
                        "same number)")
    p.add_argument("--inputs", default=None, help="your own inputs instead of the data set's: .npy [N, ...] (analog) "
                                                  "or [T, N, ...] (spikes), all of them simulated")
    p.add_argument("--bits", type=int, default=8, help="weight bits when MODEL is a checkpoint")
    p.add_argument("--graded-input", action="store_true",
                   help="run the analog first layer on the chip, fed graded spikes (Loihi 2: Lava's num_message_bits), "
                        "instead of on the host: priced as the chip's SynOps, not host MACs")
    p.add_argument("--cores", action="store_true", help="list every core: what it holds, its memory and load")
