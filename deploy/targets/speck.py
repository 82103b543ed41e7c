"""Speck (DYNAP-CNN): a graph lowered to the layers Sinabs puts on the chip, and what they compute.

Each neuron population becomes one DYNAP-CNN layer (a core): the convolution feeding it, its IAF
neurons, and, per destination, the sum pooling between it and the next convolution (Sinabs docs
``docs/speck/overview.md``: a layer is conv → spiking activation → sum pooling, 1–2 destinations).
A linear layer becomes a convolution whose kernel covers its input map, as Sinabs converts it.
Several layers may feed one convolution: their events merge (``faqs/available_network_arch.md``:
cores may share a destination; Sinabs' ``Merge``); a population that sums several convolutions
cannot run, because a core applies one kernel to every event it receives.

Integer values follow Sinabs' discretization (``backend/dynapcnn/discretize.py``), one factor per
layer: ``s = min(s(W, 8 bit), s(b, 8 bit), s((−θ, θ), 16 bit))`` where ``s(t, k)`` scales the
extreme of ``t`` onto the signed k-bit range (``2^(k−1) − 1`` for a positive extreme, ``2^(k−1)``
for a negative one); then ``round(W·s)``, ``round(b·s)``, ``round(θ·s)``. Integers made this way
are a fixed point of that rule, so ``DynapcnnNetwork(discretize=True)`` keeps them as they are:
the integers kdsnn checks are the ones on the chip. ``(−θ, θ)`` because Sinabs' ``from_nir`` gives
every IAF ``min_v_mem = −θ``.

:func:`run` computes what Sinabs simulates for those layers (``IAFSqueeze`` as ``from_nir`` builds
it): ``v += input``; ``n = trunc(v/θ)`` spikes where ``v > 0`` (``MultiSpike``, Sinabs' default and
the one its docs recommend to match the chip: ``docs/speck/dangers.md``); ``v −= n·θ``; ``v =
max(v, −θ)``. kdsnn's own IF (one spike at ``v > θ``, no floor) agrees with it wherever no
membrane reaches exactly θ or 2θ and none falls below −θ; ``kdsnn export --for speck`` measures
how often that holds on real inputs.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import torch

from kdsnn.export.node_shapes import pair

WEIGHT_BITS, STATE_BITS = 8, 16  # Sinabs discretize.py: DYNAPCNN_WEIGHT_PRECISION_BITS, ..._STATE_...
Problem = tuple[str, str, str]  # (node, rule, what to change)


@dataclass
class Layer:
    """One DYNAP-CNN layer: the convolution into ``population``, its IAF neurons, its memory."""

    population: str
    synaptic: str
    sources: dict[str, int]          # source population (or the Input) → the sum pooling it applies first
    in_shape: tuple[int, int, int]   # (c, h, w) the convolution reads (after pooling)
    out_shape: tuple[int, int, int]  # (f, h, w) of the neurons
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    weight: np.ndarray               # [f, c, kh, kw]
    bias: np.ndarray                 # [f]
    threshold: float
    scale: float = 1.0               # Sinabs' discretization factor that made the integers
    pool_nodes: dict[str, str] = field(default_factory=dict)  # source → the pooling node on its way (if any)
    memory: dict[str, int] = field(default_factory=dict)
    destinations: list[str] = field(default_factory=list)


@dataclass
class SpeckNet:
    """The layers in topological order (Sinabs' layer indices), and what could not be lowered."""

    layers: list[Layer]
    problems: list[Problem]
    input: str
    input_shape: tuple[int, ...]

    def layer(self, population: str) -> Layer:
        return next(lay for lay in self.layers if lay.population == population)


def memory(c: int, f: int, kernel: tuple[int, int], out_hw: tuple[int, int]) -> dict[str, int]:
    """Memory entries a layer needs (Sinabs ``DynapcnnLayer.memory_summary``; SynSense's docs):
    kernel ``c · 2^(⌈log2(kx·ky)⌉ + ⌈log2 f⌉)``, neuron ``f · 2^(⌈log2 fy⌉ + ⌈log2 fx⌉)``, bias ``f``."""
    def clog2(n: int) -> int:
        return int(math.ceil(math.log2(n))) if n > 1 else 0

    return {"kernel_memory": c * 2 ** (clog2(kernel[0] * kernel[1]) + clog2(f)),
            "neuron_memory": f * 2 ** (clog2(out_hw[0]) + clog2(out_hw[1])), "bias_memory": f}


def discretization_scale(values: np.ndarray, bits: int) -> float:
    """Sinabs' ``determine_discretization_scale``: the factor putting the extreme of ``values`` on the
    signed ``bits`` range (negative extremes use the larger negative range); ∞ for all zeros."""
    lo_d, hi_d = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    lo, hi = float(np.min(values)), float(np.max(values))
    with np.errstate(divide="ignore"):
        if abs(lo) <= abs(hi) * abs(lo_d / hi_d):
            return abs(hi_d / hi) if hi else math.inf
        return abs(lo_d / lo)


def _in_shape(view: Any, node: str) -> tuple[int, ...]:
    """The shape ``node`` receives (its first predecessor's output)."""
    return tuple(int(v) for v in view.shape[view.preds[node][0]])


def _trace(view: Any, node: str) -> tuple[str, list[str]]:
    """From a synaptic node's input back to the population (or Input) it reads: (source, nodes between)."""
    between, src = [], node
    while src not in view.populations and src != view.input:
        between.append(src)
        if len(view.preds[src]) != 1:
            break
        src = view.preds[src][0]
    return src, between


def _pooling(view: Any, between: list[str], problems: list[Problem]) -> int:
    """The square sum pooling of a chain of pool/flatten nodes (product of sizes; 1: none)."""
    size = 1
    for b in between:
        node = view.nodes[b]
        if isinstance(node, nir.AvgPool2d):
            problems.append((b, "pooling", "average pooling; Speck sums: export with sum pooling "
                                            "(kdsnn's exporter does)"))
        elif isinstance(node, nir.SumPool2d):
            k, s, p = pair(node.kernel_size), pair(node.stride), pair(node.padding)
            if k[0] != k[1] or s != k or p != (0, 0):
                problems.append((b, "pooling", f"pooling {k[0]}×{k[1]} stride {s[0]}×{s[1]} padding {p[0]}; "
                                               "Speck pools square windows with stride = size, no padding"))
            size *= k[0]
    return size


def _layer(view: Any, pop: str, problems: list[Problem]) -> Layer | None:
    syns = view.preds[pop]
    if len(syns) != 1:
        problems.append((pop, "residual", f"sums {len(syns)} inputs ({', '.join(syns)}); a Speck layer applies one "
                                          "convolution to every event it receives: merge the branches before one "
                                          "convolution, or use a network without residual sums"))
        return None
    syn = syns[0]
    node = view.nodes[syn]
    if not isinstance(node, (nir.Conv2d, nir.Affine, nir.Linear)):
        problems.append((syn, "layer_type", f"{type(node).__name__} feeding {pop}; a Speck layer starts with a "
                                            "convolution or a linear layer"))
        return None
    sources: dict[str, int] = {}
    pool_nodes: dict[str, str] = {}
    for p in view.preds[syn]:
        src, between = _trace(view, p)
        sources[src] = _pooling(view, between, problems)
        pools = [b for b in between if isinstance(view.nodes[b], (nir.SumPool2d, nir.AvgPool2d))]
        if pools:
            pool_nodes[src] = pools[-1]
    w = np.asarray(node.weight, dtype=np.float64)
    bias = np.broadcast_to(np.asarray(getattr(node, "bias", 0.0), dtype=np.float64).ravel(), (w.shape[0],))
    f = int(w.shape[0])
    in_shape = _in_shape(view, syn)
    if isinstance(node, nir.Conv2d):
        kernel = (int(w.shape[2]), int(w.shape[3]))
        stride = pair(node.stride)
        padding = (0, 0) if isinstance(node.padding, str) else pair(node.padding)
        if int(getattr(node, "groups", 1)) != 1 or pair(node.dilation) != (1, 1):
            problems.append((syn, "conv", "grouped or dilated convolution; Speck runs plain convolutions"))
        c = int(in_shape[0])
        in_chw = (c, int(in_shape[1]), int(in_shape[2]))
    else:  # a linear layer: a convolution whose kernel covers its input map (Sinabs converts it so)
        src, between = _trace(view, view.preds[syn][0])
        flat = [b for b in between if isinstance(view.nodes[b], nir.Flatten)]
        chw = _in_shape(view, flat[-1]) if flat else _in_shape(view, syn)
        chw = tuple(int(v) for v in chw) if len(chw) == 3 else (int(np.prod(chw)), 1, 1)
        in_chw, kernel, stride, padding = chw, (chw[1], chw[2]), (1, 1), (0, 0)
        w = w.reshape(f, *chw)
    out = tuple(int(v) for v in view.shape[pop])
    out_chw = (f, out[1], out[2]) if len(out) == 3 else (f, 1, 1)
    th = np.asarray(getattr(view.nodes[pop], "v_threshold", 1.0), dtype=np.float64)
    if th.size > 1 and not np.all(th == th.ravel()[0]):
        problems.append((pop, "threshold", "thresholds differ between neurons; a Speck layer has one threshold"))
    lay = Layer(pop, syn, sources, in_chw, out_chw, kernel, stride, padding, w.reshape(f, in_chw[0], *kernel),
                bias.copy(), float(th.ravel()[0]), pool_nodes=pool_nodes)
    lay.memory = memory(in_chw[0], f, kernel, out_chw[1:])
    return lay


def discretize(layer: Layer) -> Layer:
    """The layer with Sinabs' discretization applied (module docstring); the factor in ``scale``."""
    s = min(discretization_scale(layer.weight, WEIGHT_BITS), discretization_scale(layer.bias, WEIGHT_BITS),
            discretization_scale(np.array([-layer.threshold, layer.threshold]), STATE_BITS))
    if not math.isfinite(s):
        s = 1.0
    layer.weight, layer.bias = np.round(layer.weight * s), np.round(layer.bias * s)
    layer.threshold, layer.scale = float(np.round(layer.threshold * s)), float(s)
    return layer


def lower(view: Any, discretized: bool = True) -> SpeckNet:
    """The Speck layers of a graph (``view``: :class:`kdsnn.export.graph_view.GraphView` or the map view),
    with Sinabs' integers when ``discretized``, and every part that cannot be lowered."""
    problems: list[Problem] = [
        (src, "recurrence", f"feeds back to {dst!r} (a recurrent edge); Speck's DYNAP-CNN layers form an acyclic "
                            "graph (Sinabs' dynapcnn backend refuses cycles): train a feed-forward network")
        for src, dst in sorted(getattr(view, "recurrent", ()))]
    layers = [lay for lay in (_layer(view, p, problems) for p in view.populations) if lay is not None]
    by_pop = {lay.population: lay for lay in layers}
    for lay in layers:
        for src in lay.sources:
            if src in by_pop:
                by_pop[src].destinations.append(lay.population)
        if discretized:
            discretize(lay)
    return SpeckNet(layers, problems, view.input, tuple(int(v) for v in view.shape[view.input]))


# ----------------------------------------------------------------------------- layer → core

def core_mapping(layers: list[Layer], kernel: list[int], neuron: list[int], bias: list[int]) -> dict[str, int]:
    """Each layer's core, by the bipartite max-flow Sinabs solves (``backend/dynapcnn/mapping.py``:
    Edmonds–Karp, breadth-first augmenting paths, layers in order, cores by index), so the assignment is
    the one Sinabs makes. A layer missing from the answer has no core (Sinabs: "No valid mapping found")."""
    n, m = len(layers), len(kernel)
    fits = [[k for k in range(m) if lay.memory["kernel_memory"] <= kernel[k] and lay.memory["neuron_memory"]
             <= neuron[k] and lay.memory["bias_memory"] <= bias[k]] for lay in layers]
    src, sink = 0, n + m + 1
    adj: list[list[list[int]]] = [[] for _ in range(n + m + 2)]  # edge: [to, capacity, flow, index of reverse]

    def edge(a: int, b: int) -> None:
        adj[a].append([b, 1, 0, len(adj[b])])
        adj[b].append([a, 0, 0, len(adj[a]) - 1])

    for i in range(n):
        edge(src, i + 1)
    for i, ks in enumerate(fits):
        for k in ks:
            edge(i + 1, n + 1 + k)
    for k in range(m):
        edge(n + 1 + k, sink)
    while True:
        pred: list[tuple[int, int] | None] = [None] * len(adj)
        queue = deque([src])
        while queue:
            cur = queue.popleft()
            for j, (to, cap, flow, _) in enumerate(adj[cur]):
                if pred[to] is None and to != src and cap > flow:
                    pred[to] = (cur, j)
                    queue.append(to)
        if pred[sink] is None:
            break
        node = sink
        while node != src:
            cur, j = pred[node]  # type: ignore[misc]
            e = adj[cur][j]
            e[2] += 1
            adj[node][e[3]][2] -= 1
            node = cur
    out = {}
    for i, lay in enumerate(layers):
        for to, _, flow, _ in adj[i + 1]:
            if flow == 1 and to > n:
                out[lay.population] = to - n - 1
    return out


# ----------------------------------------------------------------------------- what Sinabs computes

def run(net: SpeckNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spike counts ``[T, B, f, h, w]`` of every layer for input events ``x`` ``[T, B, c, h, w]`` (module docstring)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    out: dict[str, torch.Tensor] = {net.input: x}
    for lay in net.layers:
        total = None
        for src, k in lay.sources.items():
            s = out[src]
            flat = s.reshape(-1, *s.shape[2:])
            if k > 1:
                flat = torch.nn.functional.avg_pool2d(flat, k, k) * (k * k)
            flat = flat.reshape(flat.shape[0], *lay.in_shape)
            total = flat if total is None else total + flat
        cur = torch.nn.functional.conv2d(total, torch.as_tensor(lay.weight), torch.as_tensor(lay.bias),
                                         stride=lay.stride, padding=lay.padding)
        cur = cur.reshape(x.shape[0], x.shape[1], *cur.shape[1:])
        th = lay.threshold
        v = torch.zeros_like(cur[0])
        spikes = torch.zeros_like(cur)
        for t in range(cur.shape[0]):
            v = v + cur[t]
            n = torch.where(v > 0, torch.div(v, th, rounding_mode="trunc"), torch.zeros_like(v))
            v = torch.clamp(v - n * th, min=-th)
            spikes[t] = n
        out[lay.population] = spikes
    return {lay.population: out[lay.population] for lay in net.layers}
