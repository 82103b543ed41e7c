"""ONNX export of the deployable graph, and running the exported file with onnxruntime.

Two forms:

- ``unrolled``: the whole network over T steps in one model. Input ``input``: ``[B, C, H, W]``
  (direct encoding: the analog input, fed at every step) or ``[T, B, C, H, W]`` (``bernoulli``
  encoding: the caller's input spikes; sampling stays outside the model). Output ``logits``:
  exactly what :class:`~kdsnn.export.runtime.GraphSNN` computes (spike counts for a spike
  readout, the mean over T for a membrane readout, times ``output_scale`` in integer mode).
- ``step``: one time step for streaming runtimes. Inputs ``input`` (this step's input) and one
  membrane ``v_<node>`` per IF node (plus ``acc``, the readout accumulator, for a membrane
  readout); outputs ``output`` (this step's output: spikes or readout current, before
  ``output_scale``) and the new states ``v_<node>_next`` (``acc_next``). States start at 0.
  :func:`run_steps` loops it over T.

The model is written directly with ``onnx.helper`` (opset 17), one small group of standard
operators per NIR node, rather than through ``torch.onnx.export``: in torch 2.14 the default
(dynamo) exporter needs ``onnxscript``, which kdsnn does not depend on, and the TorchScript
exporter (``dynamo=False``) still works but is deprecated. IF is ``Add`` → ``Greater`` →
``Where`` (hard reset); ``SumPool2d`` is a depthwise ``Conv`` with a kernel of ones (exact,
unlike ``AveragePool`` followed by a multiply); ``Affine`` is ``Gemm``; the batch axis is dynamic.

Numerics. All tensors are float32. In an integer graph the weights, biases, thresholds and all
values the network computes are integers; the export bounds each of them from the weights
(``Σ|W|·max|input| + |b|`` per layer, membranes ``max(|θ|, |v_reset|) + T·max|current|``) and
refuses when a bound exceeds 2^24, beyond which float32 no longer holds every integer. The
input quantization ``round(x / input_scale)`` and the final scaling of the logits run in
float64 inside the model, as in GraphSNN, so an integer model's logits equal
``GraphSNN(graph).run(x).logits`` cast to float32, bit for bit. Float graphs: onnxruntime
sums in another order than PyTorch; logits agree within :data:`FLOAT_ATOL` (measured up to
1.4e-6; a spike can flip when a membrane lies within rounding of its threshold, which none
does on our test inputs).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import nir
import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from kdsnn.atomic import atomic_path
from kdsnn.errors import KdsnnError

from .graph import get_meta, predecessors, topological_order

FORMS = ("unrolled", "step")
OPSET = 17
IR_VERSION = 8  # the IR version of opset 17; readable by onnxruntime >= 1.11
EXACT_FLOAT32 = 2 ** 24  # float32 holds every integer of magnitude <= 2^24
FLOAT_ATOL = 1e-4  # float graphs: |logits(onnxruntime) - logits(GraphSNN)|, see the module docstring
SUPPORTED = (nir.Input, nir.Output, nir.Conv2d, nir.Affine, nir.Linear, nir.Scale, nir.SumPool2d, nir.AvgPool2d,
             nir.Flatten, nir.IF)


# --------------------------------------------------------------------------- graph analysis

def _pair(v: Any, what: str, node: str) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v))
    if a.size not in (1, 2) or not np.all(a == np.round(a)):
        raise KdsnnError(f"NIR node {node!r}: {what} {v!r} is not one or two integers")
    a = a.astype(int).tolist()
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def _out_hw(h: int, w: int, k: tuple[int, int], s: tuple[int, int], pads: tuple[int, int, int, int],
            d: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Output size of a convolution or pooling window (pads: top, left, bottom, right)."""
    return ((h + pads[0] + pads[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1,
            (w + pads[1] + pads[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1)


def _conv_pads(node: nir.Conv2d, name: str, k: tuple[int, int], d: tuple[int, int]) -> tuple[int, int, int, int]:
    if isinstance(node.padding, str):
        if node.padding == "valid":
            return (0, 0, 0, 0)
        if node.padding == "same":  # PyTorch's 'same': the extra pixel goes bottom/right
            tot = (d[0] * (k[0] - 1), d[1] * (k[1] - 1))
            return (tot[0] // 2, tot[1] // 2, tot[0] - tot[0] // 2, tot[1] - tot[1] // 2)
        raise KdsnnError(f"NIR node {name!r}: unknown padding {node.padding!r} (use 'same', 'valid' or integers)")
    p = _pair(node.padding, "padding", name)
    return (p[0], p[1], p[0], p[1])


def infer_shapes(graph: nir.NIRGraph) -> dict[str, tuple[int, ...]]:
    """Per-sample output shape of every node (no batch axis), checking that the layers fit together."""
    for name, node in graph.nodes.items():
        if not isinstance(node, SUPPORTED):
            raise KdsnnError(f"NIR node {name!r} of type {type(node).__name__} cannot be exported to ONNX "
                             f"(supported: {', '.join(t.__name__ for t in SUPPORTED)})")
    preds = predecessors(graph)
    shapes: dict[str, tuple[int, ...]] = {}
    for name in topological_order(graph):
        node = graph.nodes[name]
        if isinstance(node, nir.Input):
            shapes[name] = tuple(int(v) for v in np.asarray(node.input_type["input"]).tolist())
            continue
        if not preds[name]:
            raise KdsnnError(f"NIR node {name!r} has no incoming edge")
        ins = {shapes[p] for p in preds[name]}
        if len(ins) != 1:
            raise KdsnnError(f"NIR node {name!r} sums inputs of different shapes {sorted(ins)}")
        shape = ins.pop()
        shapes[name] = _node_shape(name, node, shape)
    return shapes


def _node_shape(name: str, node: nir.NIRNode, shape: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight)
        if w.ndim != 4 or len(shape) != 3:
            raise KdsnnError(f"NIR node {name!r}: Conv2d needs a 4-D weight and a [C, H, W] input, "
                             f"got weight {w.shape} and input {shape}")
        groups = int(node.groups)
        if w.shape[1] * groups != shape[0]:
            raise KdsnnError(f"NIR node {name!r}: Conv2d expects {w.shape[1] * groups} input channels, gets {shape[0]}")
        k, d = (w.shape[2], w.shape[3]), _pair(node.dilation, "dilation", name)
        hw = _out_hw(shape[1], shape[2], k, _pair(node.stride, "stride", name), _conv_pads(node, name, k, d), d)
        return (w.shape[0], *hw)
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        if w.ndim != 2 or not shape or w.shape[1] != shape[-1]:
            raise KdsnnError(f"NIR node {name!r}: weight {w.shape} does not fit input of shape {shape}")
        return (*shape[:-1], w.shape[0])
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        if len(shape) != 3:
            raise KdsnnError(f"NIR node {name!r}: pooling needs a [C, H, W] input, gets {shape}")
        k, s = _pair(node.kernel_size, "kernel_size", name), _pair(node.stride, "stride", name)
        p = _pair(node.padding, "padding", name)
        return (shape[0], *_out_hw(shape[1], shape[2], k, s, (p[0], p[1], p[0], p[1])))
    if isinstance(node, nir.Flatten):
        out = node.output_type.get("output") if node.output_type else None
        if out is not None and np.asarray(out).size:
            new = tuple(int(v) for v in np.asarray(out).tolist())
        else:
            start, end = int(node.start_dim), int(node.end_dim)
            end = end if end >= 0 else len(shape) + end
            new = (*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:])
        if int(np.prod(new)) != int(np.prod(shape)):
            raise KdsnnError(f"NIR node {name!r}: Flatten from {shape} to {new} changes the number of elements")
        return new
    if isinstance(node, (nir.Scale, nir.IF)):
        for attr in ("scale",) if isinstance(node, nir.Scale) else ("r", "v_threshold", "v_reset"):
            a = np.asarray(getattr(node, attr))
            if a.size != 1 and tuple(a.shape) != shape:
                raise KdsnnError(f"NIR node {name!r}: {attr} of shape {a.shape} does not match its input {shape}")
    return shape


class _Plan(NamedTuple):
    """What the ONNX builder needs to know about a graph."""

    graph: nir.NIRGraph
    order: list[str]
    preds: dict[str, list[str]]
    shapes: dict[str, tuple[int, ...]]
    input: str
    output: str
    timesteps: int
    encoding: str
    integer: bool
    input_scale: float | None
    output_scale: float
    spiking_output: bool
    if_nodes: list[str]


def _plan(graph: nir.NIRGraph) -> _Plan:
    shapes = infer_shapes(graph)
    meta = get_meta(graph)
    inputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise KdsnnError(f"NIR graph must have exactly one Input and one Output node (has {len(inputs)} and {len(outputs)})")
    preds = predecessors(graph)
    order = topological_order(graph)
    encoding = meta.get("encoding", "direct")
    if encoding not in ("direct", "bernoulli"):
        raise KdsnnError(f"unknown input encoding {encoding!r} in the graph's metadata")
    integer = bool(meta.get("integer", False))
    plan = _Plan(graph, order, preds, shapes, inputs[0], outputs[0], int(meta.get("timesteps", 4)), encoding, integer,
                 meta.get("input_scale"), float(meta.get("output_scale", 1.0)),
                 bool(preds[outputs[0]]) and all(isinstance(graph.nodes[p], nir.IF) for p in preds[outputs[0]]),
                 [n for n in order if isinstance(graph.nodes[n], nir.IF)])
    if integer:
        _check_integer_range(plan, meta)
    return plan


def _params(node: nir.NIRNode) -> dict[str, np.ndarray]:
    names = {nir.Conv2d: ("weight", "bias"), nir.Affine: ("weight", "bias"), nir.Linear: ("weight",),
             nir.Scale: ("scale",), nir.IF: ("r", "v_threshold", "v_reset")}.get(type(node), ())
    return {k: np.asarray(getattr(node, k), dtype=np.float64) for k in names}


def _input_bound(plan: _Plan, meta: dict[str, Any]) -> float:
    """Largest |value| the model's (quantized) input can take for data in the source range [0, 1]."""
    if plan.encoding == "bernoulli":
        return 1.0
    pre = meta.get("preprocessing") or {}
    mean, std = pre.get("mean"), pre.get("std")
    if mean is not None and std and plan.input_scale:
        top = max(max(abs(0 - m), abs(1 - m)) / s for m, s in zip(mean, std))
        return float(np.round(top / plan.input_scale))
    return float(2 ** (int(meta.get("bits", 8)) - 1) - 1)  # calibrated input step: |x_int| <= 2^(b-1) - 1


def _check_integer_range(plan: _Plan, meta: dict[str, Any]) -> None:
    """Refuse an integer graph whose values float32 cannot hold exactly (see the module docstring)."""
    t = plan.timesteps
    bound: dict[str, float] = {}
    for name in plan.order:
        node = plan.graph.nodes[name]
        for key, a in _params(node).items():
            if not np.all(a == np.round(a)):
                raise KdsnnError(f"NIR node {name!r}: {key} is not integer although the graph is marked integer; "
                                 "re-quantize it with `kdsnn quantize`")
            if a.size and np.abs(a).max() > EXACT_FLOAT32:
                raise KdsnnError(f"NIR node {name!r}: {key} up to {np.abs(a).max():.0f} exceeds 2^24, beyond float32's "
                                 "exact integers; quantize with fewer bits")
        if isinstance(node, nir.AvgPool2d):
            raise KdsnnError(f"NIR node {name!r}: AvgPool2d makes an integer graph non-integer; "
                             "fold it into the next layer (kdsnn's exporter writes SumPool2d)")
        if isinstance(node, nir.Input):
            bound[name] = _input_bound(plan, meta)
            continue
        x = sum(bound[p] for p in plan.preds[name])
        p = _params(node)
        if isinstance(node, nir.Conv2d):
            w = np.abs(p["weight"]).reshape(p["weight"].shape[0], -1).sum(1)
            b = float((w * x + np.abs(p["bias"]).reshape(-1)).max())
        elif isinstance(node, nir.Affine):
            b = float((np.abs(p["weight"]).sum(1) * x + np.abs(p["bias"])).max())
        elif isinstance(node, nir.Linear):
            b = float(np.abs(p["weight"]).sum(1).max() * x)
        elif isinstance(node, nir.Scale):
            b = float(np.abs(p["scale"]).max() * x)
        elif isinstance(node, nir.SumPool2d):
            k = _pair(node.kernel_size, "kernel_size", name)
            b = x * k[0] * k[1]
        elif isinstance(node, nir.IF):
            membrane = max(np.abs(p["v_threshold"]).max(), np.abs(p["v_reset"]).max()) + t * np.abs(p["r"]).max() * x
            _limit(name, "membrane", membrane)
            b = 1.0
        elif isinstance(node, nir.Output):
            _limit(name, "accumulated output", t * x)
            b = x
        else:  # Flatten
            b = x
        _limit(name, "value", b)
        bound[name] = b


def _limit(name: str, what: str, value: float) -> None:
    if value > EXACT_FLOAT32:
        raise KdsnnError(f"NIR node {name!r}: its {what} can reach {value:.3g} > 2^24, beyond float32's exact integers, "
                         "so ONNX could not reproduce the integer network; quantize with fewer bits")


# --------------------------------------------------------------------------- ONNX building

class _Builder:
    """Collects ONNX nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.used: set[str] = set()

    def fresh(self, hint: str) -> str:
        name, i = hint, 1
        while name in self.used:
            i += 1
            name = f"{hint}_{i}"
        self.used.add(name)
        return name

    def const(self, hint: str, value: Any, dtype: Any = np.float32) -> str:
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.fresh(f"{hint}/{op_type}"), **attrs))
        return out


class _Emitter:
    """Writes the ONNX operators of one time step of a planned graph."""

    def __init__(self, plan: _Plan, b: _Builder) -> None:
        self.plan, self.b = plan, b
        self.weights: dict[str, dict[str, str]] = {}  # node → initializer names, shared by all steps

    def params(self, name: str) -> dict[str, str]:
        if name not in self.weights:
            node = self.plan.graph.nodes[name]
            w: dict[str, str] = {}
            matmul = isinstance(node, nir.Linear) or (isinstance(node, nir.Affine) and len(self.plan.shapes[name]) != 1)
            for key, a in _params(node).items():
                if isinstance(node, nir.IF) and key == "r" and np.all(a == 1):
                    continue
                if matmul and key == "weight":  # MatMul takes Wᵀ
                    key, a = "weight_t", a.T
                if isinstance(node, (nir.Affine, nir.Conv2d)) and key == "bias":
                    a = a.reshape(-1)
                w[key] = self.b.const(f"{name}.{key}", a)
            if isinstance(node, nir.SumPool2d):
                c = self.plan.shapes[name][0]
                k = _pair(node.kernel_size, "kernel_size", name)
                w["ones"] = self.b.const(f"{name}.ones", np.ones((c, 1, *k)))
            if isinstance(node, nir.Flatten):
                w["shape"] = self.b.const(f"{name}.shape", [-1, *self.plan.shapes[name]], np.int64)
            self.weights[name] = w
        return self.weights[name]

    def synaptic(self, name: str, x: str, t: int) -> str:
        node, p, b, hint = self.plan.graph.nodes[name], self.params(name), self.b, f"{name}@t{t}"
        if isinstance(node, nir.Conv2d):
            k = tuple(np.asarray(node.weight).shape[2:])
            d = _pair(node.dilation, "dilation", name)
            return b.op("Conv", [x, p["weight"], p["bias"]], hint, kernel_shape=list(k), strides=list(_pair(node.stride, "stride", name)),
                        pads=list(_conv_pads(node, name, k, d)), dilations=list(d), group=int(node.groups))
        if isinstance(node, nir.Affine):
            if "weight" in p:  # inputs of one axis: the canonical fully connected Gemm
                return b.op("Gemm", [x, p["weight"], p["bias"]], hint, transB=1)
            return b.op("Add", [b.op("MatMul", [x, p["weight_t"]], hint), p["bias"]], hint)
        if isinstance(node, nir.Linear):
            return b.op("MatMul", [x, p["weight_t"]], hint)
        if isinstance(node, nir.Scale):
            return b.op("Mul", [x, p["scale"]], hint)
        if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            k, s = _pair(node.kernel_size, "kernel_size", name), _pair(node.stride, "stride", name)
            pd = _pair(node.padding, "padding", name)
            pads = [pd[0], pd[1], pd[0], pd[1]]
            if isinstance(node, nir.SumPool2d):
                return b.op("Conv", [x, p["ones"]], hint, kernel_shape=list(k), strides=list(s), pads=pads,
                            group=self.plan.shapes[name][0])
            return b.op("AveragePool", [x], hint, kernel_shape=list(k), strides=list(s), pads=pads, count_include_pad=1)
        if isinstance(node, nir.Flatten):
            return b.op("Reshape", [x, p["shape"]], hint)
        raise KdsnnError(f"NIR node {name!r} of type {type(node).__name__} cannot be exported to ONNX")  # pragma: no cover

    def neuron(self, name: str, x: str, v: str | None, t: int) -> tuple[str, str]:
        """IF step (DESIGN.md): ``h = v + r·x``; spike iff ``h > θ``; reset to ``v_reset``."""
        p, b, hint = self.params(name), self.b, f"{name}@t{t}"
        if "r" in p:
            x = b.op("Mul", [x, p["r"]], hint)
        h = x if v is None else b.op("Add", [v, x], f"{hint}.h")  # v = 0 at the first step
        fired = b.op("Greater", [h, p["v_threshold"]], f"{hint}.fired")
        spikes = b.op("Cast", [fired], f"{hint}.spikes", to=TensorProto.FLOAT)
        return spikes, b.op("Where", [fired, p["v_reset"], h], f"{hint}.v")

    def step(self, x: str, v: dict[str, str | None], t: int, static: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """One step: returns (output tensor, new membranes). ``static`` caches time-invariant values."""
        plan, vals, new_v = self.plan, {}, {}
        for name in plan.order:
            node = plan.graph.nodes[name]
            if isinstance(node, nir.Input):
                vals[name] = x
                continue
            if static is not None and name in static:
                vals[name] = static[name]
                continue
            srcs = plan.preds[name]
            inp = vals[srcs[0]]
            for s in srcs[1:]:
                inp = self.b.op("Add", [inp, vals[s]], f"{name}@t{t}.sum")
            if isinstance(node, nir.Output):
                vals[name] = inp
            elif isinstance(node, nir.IF):
                vals[name], new_v[name] = self.neuron(name, inp, v.get(name), t)
            else:
                vals[name] = self.synaptic(name, inp, t)
                if static is not None and all(s in static or s == plan.input for s in srcs):
                    static[name] = vals[name]
        return vals[plan.output], new_v

    def quantized_input(self, x: str) -> str:
        """``round(x / input_scale)`` in float64, as GraphSNN does, back to float32 (direct integer mode)."""
        plan, b = self.plan, self.b
        if not (plan.integer and plan.input_scale and plan.encoding == "direct"):
            return x
        xd = b.op("Cast", [x], "input_f64", to=TensorProto.DOUBLE)
        q = b.op("Round", [b.op("Div", [xd, b.const("input_scale", plan.input_scale, np.float64)], "input_scaled")], "input_q")
        return b.op("Cast", [q], "input_int", to=TensorProto.FLOAT)


def _value_info(name: str, shape: list[Any]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _unrolled(plan: _Plan) -> onnx.GraphProto:
    b = _Builder()
    e = _Emitter(plan, b)
    b.used.add("input")
    in_shape = list(plan.shapes[plan.input])
    spike_input = plan.encoding == "bernoulli"
    x = e.quantized_input("input")
    static: dict[str, str] | None = None if spike_input else {}
    v: dict[str, str | None] = {n: None for n in plan.if_nodes}
    acc = None
    for t in range(plan.timesteps):
        xt = b.op("Gather", ["input", b.const(f"t{t}", t, np.int64)], f"input@t{t}", axis=0) if spike_input else x
        out, v = e.step(xt, v, t, static)
        acc = out if acc is None else b.op("Add", [acc, out], f"output_sum@t{t}")
    assert acc is not None
    logits = _logits(plan, b, acc)
    b.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits/Identity"))
    x_shape = ([plan.timesteps] if spike_input else []) + ["batch", *in_shape]
    return helper.make_graph(b.nodes, "kdsnn_unrolled", [_value_info("input", x_shape)],
                             [_value_info("logits", ["batch", *plan.shapes[plan.output]])], b.inits)


def _logits(plan: _Plan, b: _Builder, acc: str) -> str:
    """Sum over T → logits as GraphSNN: counts (spike readout) or mean (membrane), times output_scale."""
    t = plan.timesteps
    if plan.integer:  # exact integers in float32; the scaling in float64 like GraphSNN, then float32
        y = b.op("Cast", [acc], "output_sum_f64", to=TensorProto.DOUBLE)
        if not plan.spiking_output:
            y = b.op("Div", [y, b.const("timesteps_f64", float(t), np.float64)], "output_mean_f64")
        if plan.output_scale != 1.0:
            y = b.op("Mul", [y, b.const("output_scale", plan.output_scale, np.float64)], "logits_f64")
        return b.op("Cast", [y], "logits_f32", to=TensorProto.FLOAT)
    y = acc if plan.spiking_output else b.op("Div", [acc, b.const("timesteps", float(t))], "output_mean")
    if plan.output_scale != 1.0:
        y = b.op("Mul", [y, b.const("output_scale", plan.output_scale)], "logits_scaled")
    return y


def _step(plan: _Plan) -> onnx.GraphProto:
    b = _Builder()
    e = _Emitter(plan, b)
    b.used.update({"input", "output", "acc", "acc_next"})
    states = {n: f"v_{n}" for n in plan.if_nodes}
    b.used.update(states.values())
    b.used.update(f"{s}_next" for s in states.values())
    out, v = e.step(e.quantized_input("input"), dict(states), 0)
    inputs = [_value_info("input", ["batch", *plan.shapes[plan.input]])]
    outputs = [_value_info("output", ["batch", *plan.shapes[plan.output]])]
    b.nodes.append(helper.make_node("Identity", [out], ["output"], name="output/Identity"))
    for n, s in states.items():
        inputs.append(_value_info(s, ["batch", *plan.shapes[n]]))
        outputs.append(_value_info(f"{s}_next", ["batch", *plan.shapes[n]]))
        b.nodes.append(helper.make_node("Identity", [v[n]], [f"{s}_next"], name=f"{s}_next/Identity"))
    if not plan.spiking_output:
        inputs.append(_value_info("acc", ["batch", *plan.shapes[plan.output]]))
        outputs.append(_value_info("acc_next", ["batch", *plan.shapes[plan.output]]))
        b.nodes.append(helper.make_node("Add", ["acc", out], ["acc_next"], name="acc_next/Add"))
    return helper.make_graph(b.nodes, "kdsnn_step", inputs, outputs, b.inits)


def build_onnx(graph: nir.NIRGraph, form: str = "unrolled") -> onnx.ModelProto:
    """The ONNX model of ``graph`` in memory (see the module docstring for the two forms)."""
    if form not in FORMS:
        raise KdsnnError(f"unknown ONNX form {form!r}; choose one of {', '.join(FORMS)}")
    plan = _plan(graph)
    g = _unrolled(plan) if form == "unrolled" else _step(plan)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kdsnn",
                              doc_string=f"kdsnn SNN, {form} form, T={plan.timesteps}")
    model.ir_version = IR_VERSION
    info = {"form": form, "timesteps": plan.timesteps, "encoding": plan.encoding, "integer": plan.integer,
            "readout": "spike" if plan.spiking_output else "membrane", "input_scale": plan.input_scale,
            "output_scale": plan.output_scale, "states": {n: f"v_{n}" for n in plan.if_nodes},
            "nir_metadata": get_meta(graph)}
    helper.set_model_props(model, {"kdsnn": json.dumps(info)})
    return model


def export_onnx(graph: nir.NIRGraph, path: str | Path, form: str = "unrolled") -> Path:
    """Write ``graph`` as ONNX (``unrolled`` or ``step``) atomically; the file passes onnx's full check."""
    model = build_onnx(graph, form)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as exc:  # a bug in this module, never the user's input
            raise KdsnnError(f"the ONNX model failed onnx's check: {str(exc).splitlines()[0][:160]}") from None
    return Path(path)


# --------------------------------------------------------------------------- running with onnxruntime

class StepRun(NamedTuple):
    """A step model looped over T: logits, per-step outputs ``[T, B, ...]`` and the final states."""

    logits: np.ndarray
    outputs: np.ndarray
    states: dict[str, np.ndarray]


class OnnxModel:
    """An exported file opened with onnxruntime, with kdsnn's metadata."""

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise KdsnnError(f"ONNX file {path} does not exist")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise KdsnnError(f"{path} could not be loaded by onnxruntime ({first})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get("kdsnn")
        if raw is None:
            raise KdsnnError(f"{path} is an ONNX model, but not one kdsnn exported (no 'kdsnn' metadata)")
        self.info: dict[str, Any] = json.loads(raw)
        self.form: str = self.info["form"]
        self.inputs = {i.name: i.shape for i in self.session.get_inputs()}

    def array(self, x: np.ndarray | torch.Tensor, name: str = "input") -> np.ndarray:
        """``x`` as the float32 array input ``name`` takes; a wrong shape is a :class:`KdsnnError`."""
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        want = list(self.inputs[name])
        if a.ndim != len(want) or any(isinstance(d, int) and d != s for d, s in zip(want, a.shape)):
            raise KdsnnError(f"input {name!r} has shape {tuple(a.shape)}; the ONNX model expects "
                             f"{tuple(d if isinstance(d, int) else 'B' for d in want)}")
        return np.ascontiguousarray(a, dtype=np.float32)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One onnxruntime call; a feed onnxruntime rejects (shape, type) is a :class:`KdsnnError`."""
        try:
            return self.session.run(None, feeds)
        except Exception as exc:  # onnxruntime's InvalidArgument/Fail carry the reason in their text
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise KdsnnError(f"onnxruntime refused the inputs: {first}") from None


def run_onnx(path: str | Path, x: np.ndarray | torch.Tensor, states: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Logits of an exported model on ``x`` (an unrolled model, or a step model looped over T)."""
    m = OnnxModel(path)
    if m.form == "step":
        return run_steps(m, x, states).logits
    if states is not None:
        raise KdsnnError("states are only accepted by a step-form ONNX model; this one is unrolled")
    return m.run({"input": m.array(x)})[0]


def initial_states(model: OnnxModel, batch: int) -> dict[str, np.ndarray]:
    """Zero membranes (and accumulator) for a step model: the state before the first step."""
    return {name: np.zeros([batch, *shape[1:]], dtype=np.float32) for name, shape in model.inputs.items() if name != "input"}


def run_steps(model: OnnxModel | str | Path, x: np.ndarray | torch.Tensor,
              states: dict[str, np.ndarray] | None = None) -> StepRun:
    """Loop a step model over T, feeding its states back; ``x``: ``[B, ...]`` (direct) or ``[T, B, ...]``."""
    m = model if isinstance(model, OnnxModel) else OnnxModel(model)
    if m.form != "step":
        raise KdsnnError("run_steps needs a step-form ONNX model (kdsnn export --format onnx-step)")
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    t_total = int(m.info["timesteps"])
    per_step = a.ndim == len(m.inputs["input"]) + 1  # [T', B, ...]: a stream of any length T'
    if not per_step and m.info["encoding"] == "bernoulli":
        raise KdsnnError("a bernoulli-encoded model takes input spikes [T, B, ...]; sample them before running")
    seq = [a[t] for t in range(a.shape[0])] if per_step else [a] * t_total
    xs = [m.array(s) for s in seq]
    cur = dict(states) if states is not None else initial_states(m, xs[0].shape[0])
    expected = set(m.inputs) - {"input"}
    if set(cur) != expected:
        raise KdsnnError(f"the step model's states are {sorted(expected)}; got {sorted(cur)}")
    names = [o.name for o in m.session.get_outputs()]
    outs = []
    for xt in xs:
        res = dict(zip(names, m.run({"input": xt, **{k: np.asarray(v, dtype=np.float32) for k, v in cur.items()}})))
        outs.append(res["output"])
        cur = {k: res[f"{k}_next"] for k in cur}
    seq_out = np.stack(outs)
    logits = _step_logits(m.info, seq_out, cur, len(xs))
    return StepRun(logits, seq_out, cur)


def _step_logits(info: dict[str, Any], outs: np.ndarray, states: dict[str, np.ndarray], steps: int) -> np.ndarray:
    """Logits from a stepped run, computed as the unrolled model does (same order and precision)."""
    spiking = info["readout"] == "spike"
    if spiking:
        acc = outs[0].copy()
        for o in outs[1:]:
            acc = acc + o
    else:
        acc = states["acc"]
    scale = float(info.get("output_scale", 1.0))
    if info["integer"]:
        y = acc.astype(np.float64)
        if not spiking:
            y = y / float(steps)
        return (y * scale if scale != 1.0 else y).astype(np.float32)
    y = acc if spiking else acc / np.float32(steps)
    return (y * np.float32(scale) if scale != 1.0 else y).astype(np.float32)


def onnx_summary(path: str | Path) -> dict[str, Any]:
    """kdsnn metadata of an exported model (form, T, readout, integer mode, ...)."""
    return OnnxModel(path).info


__all__ = ["FORMS", "FLOAT_ATOL", "OnnxModel", "StepRun", "build_onnx", "export_onnx", "infer_shapes",
           "initial_states", "onnx_summary", "run_onnx", "run_steps"]
