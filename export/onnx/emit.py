"""ONNX operators for a NIR graph, one small group of standard operators per node.

See :mod:`kdsnn.export.onnx.writer` for the two forms and the numerics. Written directly
with ``onnx.helper`` (opset 17). Each population's operators are written by its neuron model
(:meth:`~kdsnn.neuron_models.NeuronModel.onnx_step`, through :class:`_PopulationOps`), which also
says whether ONNX can state it exactly (:func:`onnx_supports`).
"""
from __future__ import annotations

import json
from typing import Any

import nir
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from kdsnn.errors import KdsnnError

from ..graph_view import POOLS, GraphView
from ..node_shapes import conv1d_as_2d, conv_pads, pair
from .range_proof import check_integer_range, node_params

FORMS = ("unrolled", "step")
OPSET = 17
IR_VERSION = 8  # the IR version of opset 17; readable by onnxruntime >= 1.11


def _onnx_pads(node: nir.Conv2d, name: str) -> list[int]:
    """ONNX's pads order (top, left, bottom, right): the graph view's."""
    return list(conv_pads(node, name))


def _neuron_params(view: GraphView, name: str) -> list[tuple[str, np.ndarray]]:
    """A population's step parameters (its model's :meth:`onnx_params`) shaped like the population."""
    shape = view.shape[name]
    return [(k, a.reshape(shape) if a.size > 1 else a.reshape(()))
            for k, a in ((k, np.asarray(a, dtype=np.float64)) for k, a in view.models[name].onnx_params())]


def onnx_supports(view: GraphView) -> tuple[bool, str]:
    """Whether both ONNX forms state every population of ``view`` exactly, naming the node and why not
    (each neuron model answers for itself)."""
    for name, m in view.models.items():
        if not callable(getattr(m, "onnx_step", None)):
            return False, f"{m.kind} node {name!r}: the {m.kind} model states no ONNX operators"
        why = m.onnx_problem()
        if why:
            return False, f"{m.kind} node {name!r}: {why}"
    return True, ""


def _state_key(name: str, var: str) -> str:
    """How the emitter keys state ``var`` of population ``name``: the membrane by the node's name."""
    return name if var == "v" else f"{name}:{var}"


def fed_back(view: GraphView) -> list[str]:
    """The populations whose output a recurrent edge carries to the next step, in graph order."""
    sources = {s for s, _ in view.recurrent}
    return [n for n in view.order if n in sources]


def state_names(view: GraphView) -> dict[str, str]:
    """Each state of the step form (population membranes ``v_<node>``, and a model's other state variables
    ``<var>_<node>``, e.g. CubaLIF currents ``i_<node>``; the previous step's output ``out_<node>`` of a
    population a recurrent edge leaves; a Delay's input ``k`` steps ago ``d<k>_<node>``, k = 1 … its longest delay),
    keyed as the emitter keys them (``node``, ``node:i``, ``node:out``, ``node:d1``)."""
    names = {_state_key(n, var): f"{var}_{n}" for n in view.populations for var in view.models[n].state_vars}
    held = {_state_key(n, f"d{k}"): f"d{k}_{n}" for n, d in view.delays.items() for k in range(1, int(d.max()) + 1)}
    return names | {_state_key(n, "out"): f"out_{n}" for n in fed_back(view)} | held


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

    def __init__(self, view: GraphView, b: _Builder) -> None:
        self.view, self.b = view, b
        self.weights: dict[str, dict[str, str]] = {}  # node → initializer names, shared by all steps

    def params(self, name: str) -> dict[str, str]:
        if name not in self.weights:
            node = self.view.nodes[name]
            w: dict[str, str] = {}
            matmul = isinstance(node, nir.Linear) or (isinstance(node, nir.Affine) and len(self.view.shape[name]) != 1)
            items = _neuron_params(self.view, name) if name in self.view.models else node_params(node).items()
            for key, a in items:
                if matmul and key == "weight":  # MatMul takes Wᵀ
                    key, a = "weight_t", a.T
                if isinstance(node, (nir.Affine, nir.Conv2d, nir.Conv1d)) and key == "bias":
                    a = a.reshape(-1)
                w[key] = self.b.const(f"{name}.{key}", a)
            if isinstance(node, nir.SumPool2d):
                c = self.view.shape[name][0]
                k = pair(node.kernel_size, "kernel_size", name)
                w["ones"] = self.b.const(f"{name}.ones", np.ones((c, 1, *k)))
            if isinstance(node, nir.Flatten):
                w["shape"] = self.b.const(f"{name}.shape", [-1, *self.view.shape[name]], np.int64)
            self.weights[name] = w
        return self.weights[name]

    def synaptic(self, name: str, x: str, t: int) -> str:
        node, p, b, hint = self.view.nodes[name], self.params(name), self.b, f"{name}@t{t}"
        if isinstance(node, nir.Conv1d):  # the geometry of its 1×K Conv2d, as a 1-D ONNX Conv
            c2 = conv1d_as_2d(node)
            _, left, _, right = conv_pads(c2, name)
            return b.op("Conv", [x, p["weight"], p["bias"]], hint, kernel_shape=[int(np.asarray(node.weight).shape[2])],
                        strides=[pair(c2.stride)[1]], pads=[left, right], dilations=[pair(c2.dilation)[1]],
                        group=int(node.groups))
        if isinstance(node, nir.Conv2d):
            k = tuple(np.asarray(node.weight).shape[2:])
            d = pair(node.dilation, "dilation", name)
            return b.op("Conv", [x, p["weight"], p["bias"]], hint, kernel_shape=list(k),
                        strides=list(pair(node.stride, "stride", name)), pads=_onnx_pads(node, name),
                        dilations=list(d), group=int(node.groups))
        if isinstance(node, nir.Affine):
            if "weight" in p:  # inputs of one axis: the canonical fully connected Gemm
                return b.op("Gemm", [x, p["weight"], p["bias"]], hint, transB=1)
            return b.op("Add", [b.op("MatMul", [x, p["weight_t"]], hint), p["bias"]], hint)
        if isinstance(node, nir.Linear):
            return b.op("MatMul", [x, p["weight_t"]], hint)
        if isinstance(node, nir.Scale):
            return b.op("Mul", [x, p["scale"]], hint)
        if isinstance(node, POOLS):
            k, s = pair(node.kernel_size, "kernel_size", name), pair(node.stride, "stride", name)
            pd = pair(node.padding, "padding", name)
            pads = [pd[0], pd[1], pd[0], pd[1]]
            if isinstance(node, nir.SumPool2d):
                return b.op("Conv", [x, p["ones"]], hint, kernel_shape=list(k), strides=list(s), pads=pads,
                            group=self.view.shape[name][0])
            return b.op("AveragePool", [x], hint, kernel_shape=list(k), strides=list(s), pads=pads, count_include_pad=1)
        if isinstance(node, nir.Flatten):
            return b.op("Reshape", [x, p["shape"]], hint)
        raise KdsnnError(f"NIR node {name!r} of type {type(node).__name__} "  # pragma: no cover
                         "cannot be exported to ONNX")

    def neuron(self, name: str, x: str, state: dict[str, str | None], t: int) -> tuple[str, dict[str, str]]:
        """One population's step, written by its :mod:`kdsnn.neuron_models` model (the same operations in
        the same order as its torch step): (output, new states keyed as :func:`state_names`)."""
        model = self.view.models[name]
        local = {var: state.get(_state_key(name, var)) for var in model.state_vars}
        out, new = model.onnx_step(_PopulationOps(self, name, t), x, local)
        return out, {_state_key(name, var): v for var, v in new.items()}

    def step(self, x: str, v: dict[str, str | None], t: int,
             static: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """One step: returns (output tensor, new membranes). ``static`` caches time-invariant values."""
        view, vals, new_v = self.view, {}, {}
        for name in view.order:
            node = view.nodes[name]
            if isinstance(node, nir.Input):
                vals[name] = x
                continue
            if static is not None and name in static:
                vals[name] = static[name]
                continue
            srcs = view.preds[name]
            ins = [self._previous(s, x, v, t) if view.is_recurrent(s, name) else vals[s] for s in srcs]
            inp = ins[0]
            for other in ins[1:]:
                inp = self.b.op("Add", [inp, other], f"{name}@t{t}.sum")
            if isinstance(node, nir.Output):
                vals[name] = inp
            elif name in view.models:
                vals[name], upd = self.neuron(name, inp, v, t)
                new_v.update(upd)
            elif name in view.delays:  # never static: zeros for its first steps
                vals[name], upd = self.delay(name, inp, v, x, t)
                new_v.update(upd)
            else:
                vals[name] = self.synaptic(name, inp, t)
                if static is not None and all(s in static or s == view.input for s in srcs):
                    static[name] = vals[name]
        for n in fed_back(view):
            new_v[_state_key(n, "out")] = vals[n]
        return vals[view.output], new_v

    def delay(self, name: str, inp: str, v: dict[str, str | None], x: str, t: int) -> tuple[str, dict[str, str]]:
        """A Delay's step: element ``i`` reads the input of ``d_i`` steps ago (states ``d1`` … ``dD``, the inputs
        of the last D steps; zeros before the first), selected by constant 0/1 masks (exact in float32)."""
        steps, b = self.view.delays[name], self.b
        depth = int(steps.max())
        held = [inp] + [v.get(_state_key(name, f"d{k}")) or self._zeros(name, x, t, f"d{k}")
                        for k in range(1, depth + 1)]
        shape = self.view.shape[name]
        out = None
        for d in np.unique(steps).tolist():
            part = held[d]
            if not np.all(steps == d):
                mask = b.const(f"{name}.mask{d}", (steps == d).astype(np.float64).reshape(shape))
                part = b.op("Mul", [part, mask], f"{name}@t{t}.d{d}")
            out = part if out is None else b.op("Add", [out, part], f"{name}@t{t}.sum{d}")
        return out, {_state_key(name, f"d{k}"): held[k - 1] for k in range(1, depth + 1)}

    def _zeros(self, source: str, x: str, t: int, what: str = "rest") -> str:
        """Zeros shaped like ``source``'s output for the batch of ``x``."""
        b = self.b
        batch = b.op("Shape", [x], f"{source}@t{t}.{what}.batch", start=0, end=1)
        dims = b.op("Concat", [batch, b.const(f"{source}.dims", list(self.view.shape[source]), np.int64)],
                    f"{source}@t{t}.{what}.shape", axis=0)
        return b.op("ConstantOfShape", [dims], f"{source}@t{t}.{what}",
                    value=numpy_helper.from_array(np.zeros(1, dtype=np.float32)))

    def _previous(self, source: str, x: str, v: dict[str, str | None], t: int) -> str:
        """``source``'s output of the step before (a recurrent edge): a state, zeros at the first step."""
        held = v.get(_state_key(source, "out"))
        return held if held is not None else self._zeros(source, x, t)

    def quantized_input(self, x: str) -> str:
        """``round(x / input_scale)`` in float64, as GraphSNN does, back to float32 (direct integer mode)."""
        view, b = self.view, self.b
        if not (view.integer and view.input_scale and view.encoding == "direct"):
            return x
        xd = b.op("Cast", [x], "input_f64", to=TensorProto.DOUBLE)
        q = b.op("Round", [b.op("Div", [xd, b.const("input_scale", view.input_scale, np.float64)], "input_scaled")],
                 "input_q")
        return b.op("Cast", [q], "input_int", to=TensorProto.FLOAT)


class _PopulationOps:
    """The :class:`~kdsnn.neuron_models.OnnxOps` of one population at step ``t``."""

    def __init__(self, emitter: _Emitter, name: str, t: int) -> None:
        self.emitter, self.name, self.hint = emitter, name, f"{name}@t{t}"

    def param(self, key: str) -> str:
        return self.emitter.params(self.name)[key]

    def op(self, op_type: str, inputs: list[str], suffix: str = "") -> str:
        return self.emitter.b.op(op_type, inputs, self.hint + suffix)

    def as_float(self, x: str, suffix: str = "") -> str:
        return self.emitter.b.op("Cast", [x], self.hint + suffix, to=TensorProto.FLOAT)

    def const(self, value: float, dtype: str = "float32", suffix: str = "") -> str:
        return self.emitter.b.const(self.hint + suffix, value, _DTYPES[dtype][0])

    def cast(self, x: str, dtype: str, suffix: str = "") -> str:
        return self.emitter.b.op("Cast", [x], self.hint + suffix, to=_DTYPES[dtype][1])


_DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "int64": (np.int64, TensorProto.INT64)}


def _value_info(name: str, shape: list[Any]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _unrolled(view: GraphView, timesteps: int) -> onnx.GraphProto:
    b = _Builder()
    e = _Emitter(view, b)
    b.used.add("input")
    in_shape = list(view.input_shape)
    spike_input = view.spike_input
    x = e.quantized_input("input")
    static: dict[str, str] | None = None if spike_input else {}
    v: dict[str, str | None] = {k: None for k in state_names(view)}
    acc = None
    for t in range(timesteps):
        xt = b.op("Gather", ["input", b.const(f"t{t}", t, np.int64)], f"input@t{t}", axis=0) if spike_input else x
        out, v = e.step(xt, v, t, static)
        acc = out if acc is None else b.op("Add", [acc, out], f"output_sum@t{t}")
    assert acc is not None
    logits = _logits(view, timesteps, b, acc)
    b.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits/Identity"))
    x_shape = ([timesteps] if spike_input else []) + ["batch", *in_shape]
    return helper.make_graph(b.nodes, "kdsnn_unrolled", [_value_info("input", x_shape)],
                             [_value_info("logits", ["batch", *view.shape[view.output]])], b.inits)


def _logits(view: GraphView, timesteps: int, b: _Builder, acc: str) -> str:
    """Sum over T → logits as GraphSNN: counts (spike readout) or mean (membrane), times output_scale."""
    t = timesteps
    if view.integer:  # exact integers in float32; the scaling in float64 like GraphSNN, then float32
        y = b.op("Cast", [acc], "output_sum_f64", to=TensorProto.DOUBLE)
        if not view.spiking_output:
            y = b.op("Div", [y, b.const("timesteps_f64", float(t), np.float64)], "output_mean_f64")
        if view.output_scale != 1.0:
            y = b.op("Mul", [y, b.const("output_scale", view.output_scale, np.float64)], "logits_f64")
        return b.op("Cast", [y], "logits_f32", to=TensorProto.FLOAT)
    y = acc if view.spiking_output else b.op("Div", [acc, b.const("timesteps", float(t))], "output_mean")
    if view.output_scale != 1.0:
        y = b.op("Mul", [y, b.const("output_scale", view.output_scale)], "logits_scaled")
    return y


def _step(view: GraphView) -> onnx.GraphProto:
    b = _Builder()
    e = _Emitter(view, b)
    b.used.update({"input", "output", "acc", "acc_next"})
    states = state_names(view)
    b.used.update(states.values())
    b.used.update(f"{s}_next" for s in states.values())
    out, v = e.step(e.quantized_input("input"), dict(states), 0)
    inputs = [_value_info("input", ["batch", *view.input_shape])]
    outputs = [_value_info("output", ["batch", *view.shape[view.output]])]
    b.nodes.append(helper.make_node("Identity", [out], ["output"], name="output/Identity"))
    for n, s in states.items():
        shape = ["batch", *view.shape[n.split(":")[0]]]
        inputs.append(_value_info(s, shape))
        outputs.append(_value_info(f"{s}_next", shape))
        b.nodes.append(helper.make_node("Identity", [v[n]], [f"{s}_next"], name=f"{s}_next/Identity"))
    if not view.spiking_output:
        inputs.append(_value_info("acc", ["batch", *view.shape[view.output]]))
        outputs.append(_value_info("acc_next", ["batch", *view.shape[view.output]]))
        b.nodes.append(helper.make_node("Add", ["acc", out], ["acc_next"], name="acc_next/Add"))
    return helper.make_graph(b.nodes, "kdsnn_step", inputs, outputs, b.inits)


def build_onnx(graph: nir.NIRGraph | GraphView, form: str = "unrolled") -> onnx.ModelProto:
    """The ONNX model of ``graph`` in memory (see the module docstring for the two forms)."""
    if form not in FORMS:
        raise KdsnnError(f"unknown ONNX form {form!r}; choose one of {', '.join(FORMS)}")
    view = GraphView.of(graph, purpose="cannot be exported to ONNX")
    ok, why = onnx_supports(view)
    if not ok:
        raise KdsnnError(f"cannot export to ONNX: {why}")
    timesteps = view.timesteps or 4  # a graph without kdsnn metadata is unrolled over 4 steps unless told
    if view.integer:
        check_integer_range(view, timesteps)
    g = _unrolled(view, timesteps) if form == "unrolled" else _step(view)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kdsnn",
                              doc_string=f"kdsnn SNN, {form} form, T={timesteps}")
    model.ir_version = IR_VERSION
    info = {"form": form, "timesteps": timesteps, "encoding": view.encoding, "integer": view.integer,
            "readout": view.readout, "input_scale": view.input_scale,
            "output_scale": view.output_scale, "states": state_names(view),
            "nir_metadata": view.meta}
    helper.set_model_props(model, {"kdsnn": json.dumps(info)})
    return model
