"""``kdsnn inspect``: a readable summary of a NIR, ONNX or netx file.

The format is recognised by content, never by extension: HDF5 holding ``node`` and
``version`` is NIR; HDF5 holding ``layer`` is a lava-dl netx network (summarised by
:func:`kdsnn.export.netx.describe`); a protobuf ``ModelProto`` that passes onnx's checker
is ONNX. Anything else (corrupt, truncated, foreign) is a one-line :class:`KdsnnError`.
"""
from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import nir
import numpy as np
import onnx

from kdsnn.errors import KdsnnError
from kdsnn.neuron_models import value_range

from . import nir_io
from .graph_view import POOLS, GraphView
from .metadata import onnx_info
from .quantize import range_problems

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Extra sections of a NIR summary, each a function of the graph view returning lines; the deploy
# layer adds which backends can run the graph (kdsnn.export imports nothing from kdsnn.deploy).
SECTIONS: list[Callable[[GraphView], list[str]]] = []


def add_section(fn: Callable[[GraphView], list[str]]) -> None:
    """Add a section to every NIR summary (once per function)."""
    if fn not in SECTIONS:
        SECTIONS.append(fn)


def detect(path: str | Path) -> str:
    """``'nir'``, ``'netx'`` or ``'onnx'``, from the file's content."""
    path = Path(path)
    if not path.is_file():
        raise KdsnnError(f"{path} does not exist")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise KdsnnError(f"{path} is empty; expected a NIR, ONNX or netx file")
    if head == HDF5_MAGIC or h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                keys = set(f.keys())
        except OSError as exc:
            raise KdsnnError(f"{path} is a damaged HDF5 file ({str(exc).splitlines()[0][:120]})") from None
        if {"node", "version"} <= keys:
            return "nir"
        if "layer" in keys:
            return "netx"
        raise KdsnnError(f"{path} is HDF5 but neither NIR (no 'node'/'version') nor netx (no 'layer'); "
                         f"it holds {', '.join(sorted(keys)) or 'nothing'}")
    _load_onnx(path)
    return "onnx"


def _load_onnx(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path), load_external_data=False)
        if not model.graph.node or not model.opset_import:
            raise ValueError("no graph")
        onnx.checker.check_model(model)
    except Exception:  # protobuf's DecodeError, onnx's ValidationError, ...: all mean "not a usable ONNX file"
        raise KdsnnError(f"{path} is not a NIR, ONNX or netx file (corrupt, truncated or another format)") from None
    return model


def describe(path: str | Path, dt: float | None = None, legacy_if_reset: str | None = None,
             timesteps: int | None = None) -> str:
    """A multi-line summary: nodes or layers in order, shapes, parameter counts, quantization; for NIR
    also how the file is read (dt, IF reset, notes), each neuron model, T and the backends that run it."""
    kind = detect(path)
    if kind == "nir":
        return describe_nir(nir_io.read(path, dt, legacy_if_reset), str(path), timesteps)
    if kind == "onnx":
        return describe_onnx(_load_onnx(Path(path)), str(path))
    from . import netx

    return netx.describe(path)


def _shape(s: Any) -> str:
    """``3×32×32``; "?" where a foreign file declares no (or an unreadable) shape."""
    a = np.atleast_1d(np.asarray(s if s is not None else [])).ravel()
    if not a.size or a.dtype.kind not in "iuf" or not np.isfinite(a).all():
        return "?"
    return "×".join(str(int(v)) for v in a)


def _count(node: nir.NIRNode) -> int:
    keys = {nir.Conv2d: ("weight", "bias"), nir.Conv1d: ("weight", "bias"), nir.Affine: ("weight", "bias"),
            nir.Linear: ("weight",), nir.Scale: ("scale",)}.get(type(node), ())
    return int(sum(np.asarray(getattr(node, k)).size for k in keys))


def _details(node: nir.NIRNode, q: dict[str, Any]) -> str:
    parts = []
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight)
        parts.append(f"{w.shape[2]}×{w.shape[3]} stride {_shape(np.atleast_1d(node.stride))} "
                     f"pad {node.padding if isinstance(node.padding, str) else _shape(np.atleast_1d(node.padding))}")
    if isinstance(node, POOLS):
        parts.append(f"{type(node).__name__[:3].lower()} {_shape(np.atleast_1d(node.kernel_size))} "
                     f"stride {_shape(np.atleast_1d(node.stride))}")
    if isinstance(node, (nir.Conv2d, nir.Affine, nir.Linear)):
        parts.append(f"W {value_range(node.weight)}")
    if isinstance(node, nir.Scale):
        parts.append(f"scale {value_range(node.scale)}")
    if isinstance(node, nir.IF):
        parts.append(f"θ {value_range(node.v_threshold)}, reset to {value_range(node.v_reset)}")
    if "weight_scale" in q:
        parts.append(f"{q['weight_bits']}-bit, step {q['weight_scale']:.3g}")
    if "current_scale" in q and "weight_scale" not in q:
        parts.append(f"current step {q['current_scale']:.3g}")
    return "; ".join(parts)


def describe_nir(graph: nir.NIRGraph, name: str = "graph", timesteps: int | None = None) -> str:
    try:
        view: GraphView | None = GraphView.of(graph, timesteps)
        shapes: dict[str, Any] = dict(view.shape)
        order = view.order
        meta = view.meta
        refusal = ""
    except KdsnnError as exc:  # a foreign graph kdsnn cannot run: show what it declares, and why
        view, refusal = None, str(exc)
        shapes = {n: np.asarray(v.output_type.get("output")) if getattr(v, "output_type", None) else None
                  for n, v in graph.nodes.items()}
        order = list(graph.nodes)
        from .graph import get_meta
        meta = get_meta(graph)
    if meta:
        mode = f"integer {meta.get('bits')}-bit" if meta.get("integer") else (
            f"float, {meta.get('bits')}-bit grid" if meta.get("quantization") else "float")
        head = (f"NIR graph {name}: {meta.get('producer', 'kdsnn')}, {mode}, T={meta.get('timesteps')}, "
                f"{meta.get('encoding')} encoding, {meta.get('readout')} readout")
    else:
        head = f"NIR graph {name}: no kdsnn metadata (written by another tool)"
    lines = [head]
    if refusal:
        lines.append(f"kdsnn cannot run it: {refusal}")
    if view is not None:
        lines += _reading_lines(view, timesteps)
    if meta.get("integer"):
        step = meta.get("input_scale")
        lines.append(f"input step {'none (inputs are fed as they are)' if step is None else format(step, '.6g')}, "
                     f"output scale {meta.get('output_scale', 1.0):.6g}")
    quant = meta.get("quantization", {})
    rows = [("node", "type", "shape", "params", "details")]
    total = 0
    for n in order:
        node = graph.nodes[n]
        count = _count(node)
        total += count
        details = _details(node, quant.get(n, {}))
        if view is not None and n in view.models:
            details = view.models[n].summary()
        elif view is not None and n in view.delays:
            d = view.delays[n]
            details = (f"delay {int(d.min())}" if d.min() == d.max() else f"delay {int(d.min())}..{int(d.max())}") \
                + f" step(s) of dt = {view.dt:g}"
        rows.append((n, type(node).__name__, _shape(shapes.get(n)), str(count) if count else "", details))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
                     + ("  " + r[4] if r[4] else ""))
    lines.append(f"{len(graph.nodes)} nodes, {len(graph.edges)} edges, {total:,} synaptic parameters")
    if quant:
        problems = range_problems(graph)
        lines.append("Loihi ranges: "
                     + ("all weights, biases and thresholds fit" if not problems else "; ".join(problems)))
    if view is not None:
        for section in SECTIONS:
            lines += section(view)
    return "\n".join(lines)


def _reading_lines(view: GraphView, timesteps: int | None) -> list[str]:
    """How the file is read: nir version, dt, IF reset rule (with reasons), readout, T, notes."""
    r = view.reading
    lines = [f"written by nir {r.nir_version or '?'}; dt = {view.dt:g} ({r.dt_why})"]
    kinds = [k for k in ("IF", "LIF", "CubaLIF") if any(m.kind == k for m in view.models.values())]
    if kinds:
        lines.append(f"{', '.join(kinds)} reset: {'to v_reset' if view.reset == 'hard' else 'subtract θ'} "
                     f"({r.reset_why})")
    if view.recurrent:
        lines.append("recurrent: " + ", ".join(f"{s} → {d}" for s, d in sorted(view.recurrent))
                     + " (carries the previous step's output)")
    lines.append(f"readout: {view.readout_text()}")
    if timesteps:
        lines.append(f"T = {timesteps} (given)")
    elif view.meta.get("timesteps"):
        lines.append(f"T = {view.meta['timesteps']} (recorded in the file)")
    else:
        lines.append("T is not recorded: simulate, verify and report take --timesteps T "
                     "(or a [T, N, ...] --inputs array)")
    lines += [f"note: {n}" for n in view.notes]
    return lines


def _dims(t: onnx.TypeProto) -> str:
    dims = [d.dim_param or str(d.dim_value) for d in t.tensor_type.shape.dim]
    return f"[{', '.join(dims)}] {onnx.TensorProto.DataType.Name(t.tensor_type.elem_type).lower()}"


def describe_onnx(model: onnx.ModelProto, name: str = "model") -> str:
    g = model.graph
    props = {p.key: p.value for p in model.metadata_props}
    info = onnx_info(props["kdsnn"], f"{name}'s kdsnn metadata") if "kdsnn" in props else {}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), "?")
    lines = [f"ONNX model {name}: opset {opset}, IR {model.ir_version}, producer {model.producer_name or '?'}"]
    if info:
        nm = info.get("nir_metadata", {})
        mode = f"integer {nm.get('bits')}-bit" if info.get("integer") else "float"
        lines.append(f"kdsnn {info['form']} form: T={info['timesteps']}, {info['encoding']} encoding, {mode}, "
                     f"{info['readout']} readout, output scale {info.get('output_scale', 1.0):.6g}")
    for label, items in (("inputs", g.input), ("outputs", g.output)):
        lines.append(f"{label}:")
        lines += [f"  {v.name} {_dims(v.type)}" for v in items]
    ops = collections.Counter(n.op_type for n in g.node)
    lines.append(f"{len(g.node)} operators: " + ", ".join(f"{k} ×{v}" for k, v in ops.most_common()))
    values = sum(int(np.prod(t.dims)) for t in g.initializer)
    lines.append(f"{len(g.initializer)} initializers, {values:,} values")
    quant = info.get("nir_metadata", {}).get("quantization", {}) if info else {}
    steps = [v["weight_scale"] for v in quant.values() if "weight_scale" in v]
    if steps:
        bits = info["nir_metadata"].get("bits")
        lines.append(f"quantization: {bits}-bit weights in {len(steps)} synaptic layers, "
                     f"weight steps {min(steps):.3g}..{max(steps):.3g}")
    return "\n".join(lines)
