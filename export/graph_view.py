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

from .delay import delay_steps
from .graph import get_meta
from .graph_checks import check_real, check_size, check_values
from .nested import flatten
from .node_shapes import POOLS, SYNAPTIC, node_shape, type_shape
from .reading import Reading, resolve
from .recurrence import recurrent_edges
from .view_cache import cache_of, fingerprint

NEURONS = tuple(MODELS)
SUPPORTED = (nir.Input, nir.Output, nir.Flatten, nir.Delay, *SYNAPTIC, *POOLS, *NEURONS)
ENCODINGS = ("direct", "bernoulli", "events")
SPIKE_ENCODINGS = ("bernoulli", "events")  # the Input receives spikes: sampled here, or event frames given as such


@dataclass(frozen=True)
class SourcePath:
    """A chain of linear nodes (synapses, pools, Flatten) fed by one population or the Input: ``source``
    → ``nodes[0]`` → … → ``nodes[-1]`` (``nodes`` empty: a direct edge from ``source``)."""

    source: str
    nodes: tuple[str, ...]
    delayed: bool = False  # its first edge closes a cycle: it carries ``source``'s output of the previous step


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
        by default it says the node "is not supported". A graph with subgraph nodes is read flattened
        (:mod:`~kdsnn.export.nested`): ``graph`` is then the flat graph."""
        graph = flatten(graph)
        self.graph = graph
        self._paths: dict[str, tuple[SourcePath, ...]] = {}
        self.nodes: dict[str, nir.NIRNode] = dict(graph.nodes)
        self.meta: dict[str, Any] = get_meta(graph)
        for name, node in self.nodes.items():
            if not isinstance(node, SUPPORTED):
                raise KdsnnError(f"NIR node {name!r} of type {type(node).__name__} {purpose or 'is not supported'} "
                                 f"(supported: {', '.join(sorted({t.__name__ for t in SUPPORTED}))})")
        check_real(self.nodes)
        self.preds: dict[str, list[str]] = {n: [] for n in self.nodes}
        self.succs: dict[str, list[str]] = {n: [] for n in self.nodes}
        for s, d in graph.edges:
            if s not in self.nodes or d not in self.nodes:
                raise KdsnnError(f"NIR graph has an edge {s} → {d} to a node that does not exist")
            self.preds[d].append(s)
            self.succs[s].append(d)
        inputs = [n for n, node in self.nodes.items() if isinstance(node, nir.Input)]
        outputs = [n for n, node in self.nodes.items() if isinstance(node, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise KdsnnError(f"NIR graph must have exactly one Input and one Output node "
                             f"(has {len(inputs)} and {len(outputs)})")
        self.input, self.output = inputs[0], outputs[0]
        if self.input in self.preds[self.output]:
            raise KdsnnError(f"NIR graph connects its Input {self.input!r} straight to its Output {self.output!r}: "
                             "the output would be the input itself, not a network's answer")
        # edges out of a population that close a cycle carry its previous step's output (export/recurrence.py)
        self.recurrent: frozenset[tuple[str, str]] = recurrent_edges(
            self.nodes, self.input, self.succs, lambda n: isinstance(self.nodes[n], NEURONS))
        self.order: list[str] = self._topological()
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
        self.decays: str = self.meta.get("decays", "loihi")  # an integer graph's leaky decays: Loihi's, or Xylo's
        # each Delay node's delays in whole steps of dt, per element (export/delay.py)
        self.delays: dict[str, np.ndarray] = {n: delay_steps(node, self.dt, self.size(n), n)
                                              for n, node in self.nodes.items() if isinstance(node, nir.Delay)}
        check_values(self)
        self.models: dict[str, NeuronModel] = {n: self._model(n) for n in self.order
                                               if isinstance(self.nodes[n], NEURONS)}
        self.populations: list[str] = list(self.models)
        for n, m in self.models.items():
            if m.kind == "IF" and not m.unit_gain:
                r = float(m.r.max())
                meant = (f"a writer that sets r = 1/dt, as SpikingJelly does, meant --dt {1 / r:g}" if r > 0
                         else "r = 0: the neuron never receives its input")
                self.notes.append(f"IF node {n!r}: r·dt = {float(m.gain.max()):g} ≠ 1 multiplies its input "
                                  f"at every step (dt = {self.dt:g}; {meant})")
                break
        self.synaptic: list[str] = [n for n in self.order if isinstance(self.nodes[n], SYNAPTIC)]
        t = timesteps or self.meta.get("timesteps")
        self.timesteps: int | None = int(t) if t else None
        self.encoding: str = self.meta.get("encoding", "direct")
        if self.encoding not in ENCODINGS:
            raise KdsnnError(f"unknown input encoding {self.encoding!r} in the graph's metadata "
                             f"(known: {', '.join(ENCODINGS)})")
        self.spike_input = self.encoding in SPIKE_ENCODINGS
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
        """The nodes in an order where every node follows what feeds it within a step (recurrent edges aside)."""
        order: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done
        same_step = {n: [p for p in ps if (p, n) not in self.recurrent] for n, ps in self.preds.items()}
        for root in self.nodes:
            stack = [(root, iter(same_step[root]))]
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
                elif state.get(p) == 1:  # recurrent_edges cut every cycle; kept as a guard
                    raise KdsnnError(f"NIR graph has a cycle through node {p!r} that no population breaks")
                elif state.get(p) is None:
                    state[p] = 1
                    stack.append((p, iter(same_step[p])))
        return order

    def is_recurrent(self, source: str, target: str) -> bool:
        """Whether the edge ``source`` → ``target`` carries ``source``'s output of the previous step."""
        return (source, target) in self.recurrent

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
                found.append(SourcePath(p, (), (p, name) in self.recurrent))
            else:
                found += [SourcePath(t.source, t.nodes + (p,), t.delayed) for t in self.paths_into(p)]
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
        """Every node's shape, in order; a node fed only by recurrent edges (a feedback synapse) waits for the
        pass after its source's shape is known."""
        left = list(self.order)
        while left:
            waiting = []
            for name in left:
                node = self.nodes[name]
                if isinstance(node, nir.Input):
                    self.in_shape[name] = self.shape[name] = self.input_shape
                    continue
                if not self.preds[name]:
                    raise KdsnnError(f"NIR node {name!r} has no incoming edge")
                known = [p for p in self.preds[name] if p in self.shape]
                if not known:
                    waiting.append(name)
                    continue
                shape = self.shape[known[0]]
                self.in_shape[name] = shape
                self.shape[name] = node_shape(name, node, shape)
            if len(waiting) == len(left):
                raise KdsnnError(f"NIR node {waiting[0]!r} is reached from no Input")
            left = waiting
        for name in self.order:
            ins = {self.shape[p] for p in self.preds[name]}
            if len(ins) > 1 and len({int(np.prod(s)) for s in ins}) != 1:
                raise KdsnnError(f"NIR node {name!r} sums inputs of different shapes {sorted(ins)}")

    def _input_shape(self) -> tuple[int, ...]:
        """The Input's type, without a leading batch axis of 1 where its consumers declare the rest
        (Norse writes ``[1, 64]`` before an ``Affine`` of 64 inputs): accepted with a note."""
        shape = type_shape(self.nodes[self.input].input_type["input"])
        if len(shape) >= 2 and shape[0] == 1:
            declared = []
            for s in self.succs[self.input]:
                t = (getattr(self.nodes[s], "input_type", None) or {}).get("input")
                if t is not None and np.asarray(t).size:
                    declared.append(type_shape(t))
            if declared and all(d == shape[1:] for d in declared):
                self.notes.append(f"the Input type {list(shape)} has a batch axis (its consumers take "
                                  f"{list(shape[1:])}): read as {list(shape[1:])}")
                return shape[1:]
        return shape

    def _model(self, name: str) -> NeuronModel:
        node = self.nodes[name]
        rule = {}
        if self.integer and self.decays != "loihi":  # Xylo's bit-shift decays: stated for LIF (kdsnn quantize)
            if not isinstance(node, nir.LIF):
                raise KdsnnError(f"{type(node).__name__} node {name!r}: the graph states {self.decays!r} decays, "
                                 "which kdsnn defines for LIF populations only")
            rule = {"decays": self.decays}
        try:
            model = MODELS[type(node)](node, dt=self.dt, reset=self.reset, integer=self.integer, **rule)
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
