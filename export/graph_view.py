"""One validated view of a NIR graph, built once, read by every consumer.

The simulator, the PyTorch graph runtime, the ONNX and netx exporters, Lava, Norse, the
SynOps counter and ``inspect`` all need the same facts about a graph: its order, who feeds
whom, every node's shape, the Input and Output, how the output is read, the encoding, T, dt,
integer mode, each population's neuron model and the paths of linear nodes between
populations. :class:`GraphView` derives them once per graph (:meth:`GraphView.of` keeps the view
on the graph and hands it to every later caller) and is the one place that refuses what kdsnn
cannot run, naming the node and why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from kdsnn.errors import KdsnnError
from kdsnn.neuron_models import MODELS, NeuronModel

from .graph import get_meta
from .graph_checks import check_size, check_values
from .reading import Reading, resolve
from .view_cache import cache_of, fingerprint

SYNAPTIC = (nir.Conv2d, nir.Affine, nir.Linear, nir.Scale)
POOLS = (nir.SumPool2d, nir.AvgPool2d)
NEURONS = tuple(MODELS)
SUPPORTED = (nir.Input, nir.Output, nir.Flatten, *SYNAPTIC, *POOLS, *NEURONS)
ENCODINGS = ("direct", "bernoulli")


def pair(v: Any, what: str = "size", node: str = "?") -> tuple[int, int]:
    """A NIR size/stride/padding field (one or two integers) as ``(h, w)``."""
    a = np.atleast_1d(np.asarray(v))
    if a.size not in (1, 2) or not np.all(a == np.round(a)):
        raise KdsnnError(f"NIR node {node!r}: {what} {v!r} is not one or two integers")
    a = a.astype(int).tolist()
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def conv_pads(node: nir.Conv2d, name: str = "?") -> tuple[int, int, int, int]:
    """Zero padding of a Conv2d as ``(top, left, bottom, right)``; strings resolved as PyTorch does
    ('same': the extra pixel goes bottom/right, stride 1 only)."""
    w = np.asarray(node.weight)
    k = (int(w.shape[-2]), int(w.shape[-1])) if w.ndim == 4 else (1, 1)
    d = pair(node.dilation, "dilation", name)
    if isinstance(node.padding, str):
        if node.padding == "valid":
            return (0, 0, 0, 0)
        if node.padding == "same":
            if pair(node.stride, "stride", name) != (1, 1):
                raise KdsnnError(f"NIR node {name!r}: Conv2d padding 'same' needs stride 1 (as in PyTorch)")
            tot = (d[0] * (k[0] - 1), d[1] * (k[1] - 1))
            return (tot[0] // 2, tot[1] // 2, tot[0] - tot[0] // 2, tot[1] - tot[1] // 2)
        raise KdsnnError(f"NIR node {name!r}: unknown padding {node.padding!r} (use 'same', 'valid' or integers)")
    p = pair(node.padding, "padding", name)
    return (p[0], p[1], p[0], p[1])


def window_out(size: tuple[int, int], k: tuple[int, int], s: tuple[int, int], pads: tuple[int, int, int, int],
               d: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Output size of a convolution or pooling window over ``size`` (pads: top, left, bottom, right)."""
    return ((size[0] + pads[0] + pads[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1,
            (size[1] + pads[1] + pads[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1)


def _type_shape(t: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(t).ravel().tolist())


@dataclass(frozen=True)
class SourcePath:
    """A chain of linear nodes (synapses, pools, Flatten) fed by one population or the Input: ``source``
    → ``nodes[0]`` → … → ``nodes[-1]`` (``nodes`` empty: a direct edge from ``source``)."""

    source: str
    nodes: tuple[str, ...]


class GraphView:
    """A NIR graph checked once and described: order, neighbours, shapes, I/O, readout, models.

    ``timesteps`` overrides the T the graph records; a graph that records none and is given
    none has ``timesteps = None`` (commands then ask for ``--timesteps``).

    Get a graph's view with :meth:`GraphView.of`: it validates a graph once and hands every later
    caller the same view, until the graph changes. A view is read-only.
    """

    @classmethod
    def of(cls, graph: nir.NIRGraph | GraphView, timesteps: int | None = None, purpose: str = "") -> GraphView:
        """The view of ``graph`` (a view is returned as it is, unless ``timesteps`` asks for another T).

        Built once per graph object and ``timesteps``, kept on the graph, and built again when the graph
        changed since (nodes added, replaced or edited, edges, metadata:
        :func:`~kdsnn.export.view_cache.fingerprint`)."""
        if isinstance(graph, GraphView):
            if timesteps is None or timesteps == graph.timesteps:
                return graph
            graph = graph.graph
        views, key = cache_of(graph), fingerprint(graph, by_identity=SYNAPTIC)
        for asked in dict.fromkeys((None, timesteps)):  # a T equal to the one the graph records: the same view
            hit = views.get(asked)
            if hit is not None and hit[0] == key and (asked == timesteps or hit[1].timesteps == timesteps):
                return hit[1]
        view = cls(graph, timesteps, purpose)
        views[timesteps] = (key, view)
        return view

    def __init__(self, graph: nir.NIRGraph, timesteps: int | None = None, purpose: str = "") -> None:
        """``purpose`` ends the refusal of an unsupported node (e.g. "cannot be exported to ONNX");
        by default it says the node "is not supported"."""
        self.graph = graph
        self._paths: dict[str, tuple[SourcePath, ...]] = {}
        self.nodes: dict[str, nir.NIRNode] = dict(graph.nodes)
        self.meta: dict[str, Any] = get_meta(graph)
        for name, node in self.nodes.items():
            if not isinstance(node, SUPPORTED):
                raise KdsnnError(f"NIR node {name!r} of type {type(node).__name__} {purpose or 'is not supported'} "
                                 f"(supported: {', '.join(sorted({t.__name__ for t in SUPPORTED}))})")
        self.preds: dict[str, list[str]] = {n: [] for n in self.nodes}
        self.succs: dict[str, list[str]] = {n: [] for n in self.nodes}
        for s, d in graph.edges:
            if s not in self.nodes or d not in self.nodes:
                raise KdsnnError(f"NIR graph has an edge {s} → {d} to a node that does not exist")
            self.preds[d].append(s)
            self.succs[s].append(d)
        self.order: list[str] = self._topological()
        inputs = [n for n in self.order if isinstance(self.nodes[n], nir.Input)]
        outputs = [n for n in self.order if isinstance(self.nodes[n], nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise KdsnnError(f"NIR graph must have exactly one Input and one Output node "
                             f"(has {len(inputs)} and {len(outputs)})")
        self.input, self.output = inputs[0], outputs[0]
        self.reading: Reading = resolve(graph, self.meta)
        self.notes: list[str] = list(self.reading.notes)
        self.input_shape: tuple[int, ...] = self._input_shape()
        self.in_shape: dict[str, tuple[int, ...]] = {}
        self.shape: dict[str, tuple[int, ...]] = {}
        self._infer_shapes()
        check_size(self)  # before anything is sized by these shapes
        self.dt = self.reading.dt
        self.reset = self.reading.if_reset
        self.integer = bool(self.meta.get("integer", False))
        check_values(self)
        self.models: dict[str, NeuronModel] = {n: self._model(n) for n in self.order
                                               if isinstance(self.nodes[n], NEURONS)}
        self.populations: list[str] = list(self.models)
        for n, m in self.models.items():
            if m.kind == "IF" and not m.unit_gain:
                self.notes.append(f"IF node {n!r}: r·dt = {float(m.gain.max()):g} ≠ 1 multiplies its input "
                                  f"at every step (dt = {self.dt:g}; a writer that sets r = 1/dt, "
                                  f"as SpikingJelly does, meant --dt {1 / float(m.r.max()):g})")
                break
        self.synaptic: list[str] = [n for n in self.order if isinstance(self.nodes[n], SYNAPTIC)]
        t = timesteps or self.meta.get("timesteps")
        self.timesteps: int | None = int(t) if t else None
        self.encoding: str = self.meta.get("encoding", "direct")
        if self.encoding not in ENCODINGS:
            raise KdsnnError(f"unknown input encoding {self.encoding!r} in the graph's metadata "
                             f"(known: {', '.join(ENCODINGS)})")
        self.input_scale: float | None = self.meta.get("input_scale")
        self.output_scale = float(self.meta.get("output_scale", 1.0))
        last = self.preds[self.output]
        self.spiking_output = bool(last) and all(self.models.get(p) is not None and self.models[p].spiking
                                                 for p in last)
        self.readout = "spike" if self.spiking_output else "membrane"
        # a non-spiking neuron (LI, Integrator) feeding the Output: its membrane is the readout
        self.readout_node: str | None = next((p for p in last if p in self.models and not self.models[p].spiking), None)

    # ------------------------------------------------------------------ structure
    def _topological(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done
        for root in self.nodes:
            stack = [(root, iter(self.preds[root]))]
            if state.get(root) == 2:
                continue
            state[root] = 1
            while stack:
                n, it = stack[-1]
                p = next(it, None)
                if p is None:
                    stack.pop()
                    state[n] = 2
                    order.append(n)
                elif state.get(p) == 1:
                    raise KdsnnError(f"NIR graph has a cycle through node {p!r}; "
                                     "only feed-forward graphs are supported")
                elif state.get(p) is None:
                    state[p] = 1
                    stack.append((p, iter(self.preds[p])))
        return order

    def is_population(self, name: str) -> bool:
        """Whether ``name`` is a population (a neuron node) or the Input: where a walk back from a synapse stops."""
        return name == self.input or name in self.models

    def paths_into(self, name: str) -> list[SourcePath]:
        """Every path of linear nodes that ends at ``name``'s input, from the population (or Input) feeding it:
        one per incoming edge where the nodes before ``name`` sum nothing (the common case)."""
        if name in self._paths:
            return list(self._paths[name])
        found: list[SourcePath] = []
        for p in self.preds[name]:
            if self.is_population(p):
                found.append(SourcePath(p, ()))
            else:
                found += [SourcePath(t.source, t.nodes + (p,)) for t in self.paths_into(p)]
        self._paths[name] = tuple(found)
        return found

    def source_of(self, name: str, why: str = "") -> SourcePath:
        """The one path into ``name`` (the walk from a synapse back to the population feeding it, through the
        pools and Flatten in between), or a one-line refusal naming the node that sums inputs (``why`` ends it)."""
        cur = name
        while True:
            preds = self.preds[cur]
            if len(preds) != 1:
                raise KdsnnError(f"node {cur!r} sums {len(preds)} inputs" + (f"; {why}" if why else ""))
            if self.is_population(preds[0]):
                return self.paths_into(name)[0]
            cur = preds[0]

    def size(self, name: str) -> int:
        """Number of elements of node ``name``'s output."""
        return int(np.prod(self.shape[name]))

    # ------------------------------------------------------------------ shapes
    def _infer_shapes(self) -> None:
        for name in self.order:
            node = self.nodes[name]
            if isinstance(node, nir.Input):
                self.in_shape[name] = self.shape[name] = self.input_shape
                continue
            if not self.preds[name]:
                raise KdsnnError(f"NIR node {name!r} has no incoming edge")
            ins = {self.shape[p] for p in self.preds[name]}
            if len(ins) != 1:
                sizes = {int(np.prod(s)) for s in ins}
                if len(sizes) != 1:
                    raise KdsnnError(f"NIR node {name!r} sums inputs of different shapes {sorted(ins)}")
            shape = self.shape[self.preds[name][0]]
            self.in_shape[name] = shape
            self.shape[name] = _node_shape(name, node, shape)

    def _input_shape(self) -> tuple[int, ...]:
        """The Input's type, without a leading batch axis of 1 where its consumers declare the rest
        (Norse writes ``[1, 64]`` before an ``Affine`` of 64 inputs): accepted with a note."""
        shape = _type_shape(self.nodes[self.input].input_type["input"])
        if len(shape) >= 2 and shape[0] == 1:
            declared = []
            for s in self.succs[self.input]:
                t = (getattr(self.nodes[s], "input_type", None) or {}).get("input")
                if t is not None and np.asarray(t).size:
                    declared.append(_type_shape(t))
            if declared and all(d == shape[1:] for d in declared):
                self.notes.append(f"the Input type {list(shape)} has a batch axis (its consumers take "
                                  f"{list(shape[1:])}): read as {list(shape[1:])}")
                return shape[1:]
        return shape

    def _model(self, name: str) -> NeuronModel:
        node = self.nodes[name]
        try:
            model = MODELS[type(node)](node, dt=self.dt, reset=self.reset, integer=self.integer)
        except KdsnnError as exc:
            raise KdsnnError(f"{type(node).__name__} node {name!r}: {exc}") from None
        why = model.size_ok(self.size(name))
        if why:
            raise KdsnnError(f"{type(node).__name__} node {name!r}: {why} (shape {self.shape[name]})")
        return model

    # ------------------------------------------------------------------ readout
    def logits(self, out_seq: Any) -> Any:
        """Logits from the Output's sequence ``[T, B, ...]``: spike counts, or the mean over T, times
        ``output_scale``."""
        return (out_seq.sum(0) if self.spiking_output else out_seq.mean(0)) * self.output_scale

    def readout_text(self) -> str:
        """How the Output is read, in words."""
        if self.spiking_output:
            return "spike counts over T"
        if self.readout_node:
            return f"the membrane of {self.models[self.readout_node].kind} node {self.readout_node!r}, mean over T"
        return "the Output's input (membrane current), mean over T"

    def require_timesteps(self) -> int:
        """T, or a one-line error saying how to give it."""
        if not self.timesteps:
            raise KdsnnError("the graph does not record its number of time steps (no kdsnn metadata): "
                             "give it (timesteps=T / --timesteps T, or a [T, B, ...] --inputs array)")
        return self.timesteps


def _node_shape(name: str, node: nir.NIRNode, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of ``node`` on an input of ``shape``, checking that they fit."""
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight)
        if w.ndim != 4 or len(shape) != 3:
            raise KdsnnError(f"NIR node {name!r}: Conv2d needs a 4-D weight and a [C, H, W] input, "
                             f"got weight {w.shape} and input {shape}")
        groups = int(node.groups)
        if w.shape[1] * groups != shape[0] or w.shape[0] % groups:
            raise KdsnnError(f"NIR node {name!r}: Conv2d expects {w.shape[1] * groups} input channels, gets {shape[0]}")
        if node.input_shape is not None and np.asarray(node.input_shape).size == 2 \
                and pair(node.input_shape, "input_shape", name) != tuple(shape[1:]):
            raise KdsnnError(f"NIR node {name!r}: Conv2d declares input {pair(node.input_shape)} "
                             f"but receives {shape[1:]}")
        k, d = (int(w.shape[2]), int(w.shape[3])), pair(node.dilation, "dilation", name)
        hw = window_out(shape[1:], k, pair(node.stride, "stride", name), conv_pads(node, name), d)
        if hw[0] < 1 or hw[1] < 1:
            raise KdsnnError(f"NIR node {name!r}: Conv2d kernel {k[0]}×{k[1]} "
                             f"does not fit its {shape[1]}×{shape[2]} input")
        b = np.asarray(node.bias).ravel()
        if b.size not in (1, w.shape[0]):
            raise KdsnnError(f"NIR node {name!r}: bias has {b.size} values, expected {w.shape[0]}")
        return (int(w.shape[0]), *hw)
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        n_in = int(np.prod(shape))
        if w.ndim != 2 or (not shape or w.shape[1] != shape[-1]) and w.shape[1] != n_in:
            raise KdsnnError(f"NIR node {name!r}: {type(node).__name__} weight {w.shape} does not fit an input of "
                             f"shape {shape}")
        if isinstance(node, nir.Affine):
            b = np.asarray(node.bias).ravel()
            if b.size not in (1, w.shape[0]):
                raise KdsnnError(f"NIR node {name!r}: bias has {b.size} values, expected {w.shape[0]}")
        # NIR applies an affine map to the last axis; a [C, H, W] map fed without Flatten is read flattened
        return (*shape[:-1], int(w.shape[0])) if shape and w.shape[1] == shape[-1] else (int(w.shape[0]),)
    if isinstance(node, POOLS):
        if len(shape) != 3:
            raise KdsnnError(f"NIR node {name!r}: pooling needs a [C, H, W] input, gets {shape}")
        k, s = pair(node.kernel_size, "kernel_size", name), pair(node.stride, "stride", name)
        p = pair(node.padding, "padding", name)
        hw = window_out(shape[1:], k, s, (p[0], p[1], p[0], p[1]))
        if hw[0] < 1 or hw[1] < 1:
            raise KdsnnError(f"NIR node {name!r}: pooling kernel {k[0]}×{k[1]} "
                             f"does not fit its {shape[1]}×{shape[2]} input")
        return (shape[0], *hw)
    if isinstance(node, nir.Flatten):
        out = node.output_type.get("output") if node.output_type else None
        if out is not None and np.asarray(out).size:
            new = _type_shape(out)
            if int(np.prod(new)) != int(np.prod(shape)):
                raise KdsnnError(f"NIR node {name!r}: Flatten from {shape} to {new} changes the number of elements")
            return new
        nd = len(shape)
        start, end = int(node.start_dim) % max(nd, 1), int(node.end_dim) % max(nd, 1)
        return (*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:])
    if isinstance(node, nir.Scale):
        a = np.asarray(node.scale)
        if a.size != 1 and a.size != int(np.prod(shape)):
            raise KdsnnError(f"NIR node {name!r}: scale of shape {a.shape} does not match its input {shape}")
    return shape
