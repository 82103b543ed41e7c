"""Plan an integer graph for Loihi: compose synapses, split host and netx layers, check ranges.

What netx can express, and the choices made where it cannot (docs/lava.md says the same):

- **Neuron.** Our IF is netx's CUBA neuron with ``iDecay = 4096`` (the current lives one step)
  and ``vDecay = 0`` (no leak). Lava's fixed point shifts currents, bias and threshold left by
  6 bits: ``v·64 += a·64 + bias·64`` and a spike iff ``v·64 > vThMant·64``. With integer
  weights, biases and θ this is ``v > θ`` exactly, so ``vThMant = θ``. Spikes reset ``v`` to 0,
  hence ``v_reset`` must be 0. Weights and biases are written as the graph's integers.
- **Bias.** netx gives CUBA a per-neuron bias (``bias_mant``, exponent fixed at 6: 13-bit
  signed mantissa). Lava adds it at every step, also while a layer waits for its first input
  in the pipeline; loading with ``reset_interval = T, reset_offset = 1`` (stored in the file's
  ``kdsnn`` attribute) zeroes each layer when its first real input arrives.
- **First layer on the host.** Our input is analog (direct encoding): the first synaptic
  layer and its IF run on the host, and its spikes are the input of the netx file.
- **Readout.** A spiking readout (``Affine → IF``) is the last netx layer; a membrane readout
  (``Affine → Output``) is computed on the host from the last spiking layer's Lava spikes.
- **Pooling.** A ``SumPool2d`` (kernel = stride = k, no padding) is composed into the next
  synapse (:func:`compose_sumpool_conv`, :func:`compose_sumpool_dense`); exact when the map's
  size is a multiple of k (checked).
- **Refused.** Float graphs, soft reset, ``v_reset ≠ 0``, residual graphs (they take Lava's
  process-graph route, :mod:`kdsnn.deploy.lava.plan`), values outside Loihi's ranges
  (:mod:`kdsnn.export.loihi`).

:func:`compose` (one synapse with the pools and flatten before it) and :func:`check_population`
(a population's ranges) are shared with the process-graph route.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np
import torch
import torch.nn.functional as F

from kdsnn.errors import KdsnnError

from ..graph_view import POOLS, SYNAPTIC, GraphView
from ..loihi import BIAS_MAX, BIAS_MIN, STATE_MAX, VTH_MAX, WEIGHT_EXP_MAX, WEIGHT_MAX, weight_fits
from ..node_shapes import pair

RESET_OFFSET = 1  # netx gives layer j the reset phase RESET_OFFSET + j (Lava time starts at 1)
_SYNAPSES = tuple(t for t in SYNAPTIC if t not in (nir.Scale, nir.Conv1d))  # a netx layer's synapse (Scale: residual
# only; Conv1d: netx has no 1-D convolution)
_RESIDUAL = ("netx files hold sequential layers only, so residual students (ResNet/WRN) cannot be exported to netx; "
             "use NIR or ONNX (run_lava runs them as a Lava process graph)")


@dataclass
class Synapse:
    """One synapse with the pools and flatten before it composed in, over the unpooled input."""

    kind: str  # "conv", "dense" or "scale" (elementwise)
    sources: list[str]  # the graph nodes composed (pools, flatten, synapse), in order
    in_shape: tuple[int, ...]  # shape of the spikes it receives (C, H, W) or (N,)
    out_shape: tuple[int, ...]
    weight: np.ndarray  # conv: [Cout, Cin, kH, kW]; dense: [out, in]; scale: like out_shape
    bias: np.ndarray  # per output channel (conv) or neuron (dense); zeros for scale
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    flatten_before: bool = False


@dataclass
class NetxLayer(Synapse):
    """One netx Dense/Conv layer: a composed synapse plus the IF population it feeds."""

    neuron: str = ""  # our IF node name
    threshold: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class NetxPlan:
    """How a graph splits between the host and netx (see the module docstring)."""

    host_nodes: list[str]  # Input → … → first IF, run on the host
    host_neuron: str
    layers: list[NetxLayer]
    readout_nodes: list[str]  # nodes after the last IF (before Output), run on the host
    timesteps: int

    @property
    def neurons(self) -> list[str]:
        return [self.host_neuron] + [layer.neuron for layer in self.layers]


def compose_sumpool_conv(weight: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
                         pool: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Conv (kernel K, stride s, padding P) after a k×k sum pool of stride k, as one conv.

    ``y[o] = Σ_j w[j]·Σ_a x[(o·s − P + j)·k + a]`` is a conv of ``x`` with kernel
    ``w'[j·k + a] = w[j]`` (size k·K), stride k·s and padding k·P (zero padding of the
    pooled map is k zero pixels per padded pixel). Exact when H and W are multiples of k.
    """
    kh, kw = pool
    w = np.repeat(np.repeat(np.asarray(weight), kh, axis=2), kw, axis=3)
    return w, (stride[0] * kh, stride[1] * kw), (padding[0] * kh, padding[1] * kw)


def compose_sumpool_dense(weight: np.ndarray, pooled_shape: tuple[int, int, int], pool: tuple[int, int]) -> np.ndarray:
    """Dense weights over a flattened k×k sum-pooled map, as weights over the unpooled map."""
    c, hp, wp = pooled_shape
    kh, kw = pool
    w = np.asarray(weight).reshape(weight.shape[0], c, hp, wp)
    w = np.repeat(np.repeat(w, kh, axis=2), kw, axis=3)
    return w.reshape(weight.shape[0], c * hp * kh * wp * kw)


def integer(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as int64, or a KdsnnError if it holds non-integer values."""
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
        raise KdsnnError(f"{what} holds non-integer values; Lava needs an integer graph (quantize with integer=True)")
    return a.astype(np.int64)


def check_graph(view: GraphView) -> int:
    """Graph-wide conditions of both Lava routes; returns T."""
    if not view.integer:
        raise KdsnnError("netx export needs an integer graph: quantize it first (quantize_graph(graph, integer=True), "
                         "or `kdsnn quantize`)")
    if view.reset != "hard" and any(isinstance(view.nodes[n], (nir.IF, nir.LIF, nir.CubaLIF)) for n in view.models):
        raise KdsnnError(f"reset mode {view.reset!r} cannot be expressed by Lava's CUBA neuron (reset to 0); "
                         "train with --reset hard")
    if not view.timesteps:
        raise KdsnnError("the graph's metadata has no number of time steps; re-export it with kdsnn")
    return view.timesteps


def if_threshold(view: GraphView, name: str) -> int:
    """The one integer threshold of IF node ``name``, checked against what Lava's LIF holds."""
    node = view.nodes[name]
    if not isinstance(node, nir.IF):
        raise KdsnnError(f"node {name!r} of type {type(node).__name__} cannot be a Lava neuron (IF only)")
    model = view.models[name]
    th = integer(model.threshold, f"IF node {name!r} threshold")
    if not np.all(model.r == 1):
        raise KdsnnError(f"IF node {name!r} has r ≠ 1; netx's CUBA neuron integrates with weight 1")
    if np.any(model.v_reset != 0):
        raise KdsnnError(f"IF node {name!r} resets to {float(model.v_reset[0])}; Lava's CUBA resets to 0, "
                         "so v_reset must be 0")
    if th.size == 0 or np.any(th != th.flat[0]):
        raise KdsnnError(f"IF node {name!r} has per-neuron thresholds; netx holds one vThMant per layer")
    theta = int(th.flat[0])
    if not 0 <= theta <= VTH_MAX:
        raise KdsnnError(f"IF node {name!r}: threshold {theta} outside netx's vThMant range [0, {VTH_MAX}] "
                         "(17-bit unsigned); quantize with fewer bits")
    return theta


def _pooled(view: GraphView, name: str, shape: tuple[int, ...],
            factor: tuple[int, int]) -> tuple[tuple[int, ...], tuple[int, int]]:
    """Shape after sum pool ``name`` and the accumulated pool factor (checked to compose exactly)."""
    node = view.nodes[name]
    if isinstance(node, nir.AvgPool2d):
        raise KdsnnError(f"node {name!r} of type AvgPool2d cannot be exported to netx "
                         "(fold it into the next layer: kdsnn writes SumPool2d)")
    k, s, p = (pair(node.kernel_size, "kernel", name), pair(node.stride, "stride", name),
               pair(node.padding, "padding", name))
    if k != s or p != (0, 0):
        raise KdsnnError(f"pool {name!r}: only non-overlapping pools (stride = kernel, no padding) compose "
                         f"into a netx layer (kernel {k}, stride {s}, padding {p})")
    if len(shape) != 3 or shape[1] % k[0] or shape[2] % k[1]:
        raise KdsnnError(f"pool {name!r}: map {shape} is not a multiple of the {k[0]}×{k[1]} pool; the pool cannot "
                         "be composed exactly into the next netx layer")
    return (shape[0], shape[1] // k[0], shape[2] // k[1]), (factor[0] * k[0], factor[1] * k[1])


def compose(view: GraphView, nodes: list[str], in_shape: tuple[int, ...]) -> Synapse:
    """Compose ``pools… [flatten] synapse`` (in order, ending in the synapse) over spikes of ``in_shape``."""
    shape, factor, flatten = in_shape, (1, 1), False
    *before, synapse = nodes
    for name in before:
        node = view.nodes[name]
        if isinstance(node, POOLS):
            if flatten:
                raise KdsnnError(f"pool {name!r} after a flatten cannot be exported to netx")
            shape, factor = _pooled(view, name, shape, factor)
        elif isinstance(node, nir.Flatten):
            flatten = True
        else:
            raise KdsnnError(f"node {name!r} ({type(node).__name__}) sits between a population and synapse "
                             f"{synapse!r}; Lava layers are one synapse followed by neurons")
    node = view.nodes[synapse]
    full = (shape[0], shape[1] * factor[0], shape[2] * factor[1]) if len(shape) == 3 else shape
    if isinstance(node, nir.Scale):
        if before:
            raise KdsnnError(f"Scale {synapse!r} after {before[-1]!r}: only a Scale straight from a population "
                             "runs on Lava")
        scale = np.asarray(node.scale, dtype=np.float64)
        w = integer(np.full(shape, scale.item()) if scale.size == 1 else scale.reshape(shape), f"scale of {synapse!r}")
        return Synapse("scale", list(nodes), shape, shape, w, np.zeros(1, dtype=np.int64))
    if not isinstance(node, _SYNAPSES):
        raise KdsnnError(f"node {synapse!r} of type {type(node).__name__} cannot be exported to netx")
    w = integer(node.weight, f"weights of {synapse!r}")
    b = integer(getattr(node, "bias", np.zeros(w.shape[0])), f"bias of {synapse!r}")
    if isinstance(node, nir.Conv2d):
        if flatten or len(shape) != 3:
            raise KdsnnError(f"conv {synapse!r} must receive a C×H×W map")
        if int(node.groups) != 1 or pair(node.dilation, "dilation", synapse) != (1, 1):
            raise KdsnnError(f"conv {synapse!r}: groups/dilation other than 1 cannot be exported to netx")
        if isinstance(node.padding, str):
            raise KdsnnError(f"node {synapse!r}: padding {node.padding!r} is not supported by netx; "
                             "use explicit integer padding")
        stride, padding = pair(node.stride, "stride", synapse), pair(node.padding, "padding", synapse)
        w, stride, padding = compose_sumpool_conv(w, stride, padding, factor)
        size = tuple((full[i + 1] + 2 * padding[i] - w.shape[2 + i]) // stride[i] + 1 for i in range(2))
        return Synapse("conv", list(nodes), full, (w.shape[0], *size), w, b, stride, padding)
    if len(shape) == 3 and not flatten:
        raise KdsnnError(f"{type(node).__name__} {synapse!r} receives a C×H×W map without a Flatten")
    if len(shape) == 3:
        w = compose_sumpool_dense(w, shape, factor)
    return Synapse("dense", list(nodes), full, (w.shape[0],), w, b, flatten_before=len(shape) == 3)


def current_bounds(syn: Synapse) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron extreme synaptic currents (without bias) when every input spikes: (positive, negative)."""
    w = torch.as_tensor(syn.weight, dtype=torch.float64)
    if syn.kind == "dense":
        return w.clamp(min=0).sum(1).numpy(), w.clamp(max=0).sum(1).numpy()
    if syn.kind == "scale":
        return w.clamp(min=0).numpy(), w.clamp(max=0).numpy()
    ones = torch.ones(1, *syn.in_shape, dtype=torch.float64)
    pos = F.conv2d(ones, w.clamp(min=0), stride=syn.stride, padding=syn.padding)[0]
    neg = F.conv2d(ones, w.clamp(max=0), stride=syn.stride, padding=syn.padding)[0]
    return pos.numpy(), neg.numpy()


def bias_map(syn: Synapse) -> np.ndarray:
    """The synapse's bias broadcast over its output (per channel for conv)."""
    b = np.asarray(syn.bias, dtype=np.int64)
    if syn.kind == "conv":
        return np.broadcast_to(b.reshape(-1, 1, 1), syn.out_shape)
    return np.broadcast_to(b if b.size > 1 else b.reshape(-1)[:1], syn.out_shape)


def check_population(name: str, synapses: list[Synapse], threshold: int, timesteps: int,
                     exponents: bool = False) -> list[str]:
    """Refuse what Loihi cannot hold for the population ``name`` fed by ``synapses``; return membrane warnings.

    ``exponents``: the route states a layer's shared weight exponent itself (Lava's process graph: weights
    ``m·2^e``, :func:`~kdsnn.export.loihi.weight_exponent`); netx's loader picks its own from the largest weight
    and clips beyond ±254, so a netx file keeps ``|w| ≤ 127``."""
    for syn in synapses:
        if exponents and syn.kind != "conv":
            if not weight_fits(syn.weight):
                raise KdsnnError(f"layer feeding {name!r}: weights up to {int(np.abs(syn.weight).max())} are no "
                                 f"8-bit mantissa |m| ≤ {WEIGHT_MAX} times one 2^e (e ≤ {WEIGHT_EXP_MAX}), Loihi's "
                                 "synapse; quantize with bits ≤ 8")
        elif int(np.abs(syn.weight).max(initial=0)) > WEIGHT_MAX:
            wmax = int(np.abs(syn.weight).max())
            raise KdsnnError(f"layer feeding {name!r}: weight {wmax} outside netx's 8-bit range [-{WEIGHT_MAX}, "
                             f"{WEIGHT_MAX}]; quantize with bits ≤ 8")
    if all(int(np.abs(syn.weight).max(initial=0)) == 0 for syn in synapses):
        raise KdsnnError(f"all weights feeding {name!r} are zero; netx cannot scale an all-zero layer")
    bias = sum(bias_map(syn) for syn in synapses)
    if bias.min() < BIAS_MIN or bias.max() > BIAS_MAX:
        raise KdsnnError(f"layer feeding {name!r}: bias range [{bias.min()}, {bias.max()}] outside netx's "
                         f"13-bit bias mantissa [{BIAS_MIN}, {BIAS_MAX}]; quantize with fewer bits")
    bounds = [current_bounds(syn) for syn in synapses]
    pos, neg = sum(b[0] for b in bounds), sum(b[1] for b in bounds)
    peak = max(float(pos.max()), -float(neg.min()))
    if peak > STATE_MAX:
        raise KdsnnError(f"layer feeding {name!r}: a step's synaptic current can reach {peak:.0f}, "
                         f"beyond Loihi's 24-bit current (|a| ≤ {STATE_MAX}); quantize with fewer bits")
    hi = threshold + float(np.maximum(pos + bias, 0).max())
    lo = timesteps * float(np.minimum(neg + bias, 0).min())
    if hi > STATE_MAX or lo < -STATE_MAX:
        return [f"worst-case membrane [{lo:.0f}, {hi:.0f}] over T={timesteps} exceeds Loihi's 24-bit "
                f"membrane (|v| ≤ {STATE_MAX}); run_lava checks the actual membranes"]
    return []


def _chain(view: GraphView) -> list[str]:
    """The graph as one sequential chain Input → … → Output, or a KdsnnError naming the node."""
    for src, dst in sorted(view.recurrent):
        raise KdsnnError(f"the edge {src!r} → {dst!r} feeds back (a recurrent graph); netx files hold sequential "
                         "layers only (Lava runs it by the process-graph route)")
    for name, node in view.nodes.items():  # most telling problem first: shortcuts, sums, branches
        if isinstance(node, nir.Scale):
            raise KdsnnError(f"node {name!r} is a residual shortcut (Scale): {_RESIDUAL}")
    for name in view.order:
        if len(view.preds[name]) > 1:
            raise KdsnnError(f"node {name!r} sums {len(view.preds[name])} inputs (a residual connection): {_RESIDUAL}")
    for name in view.order:
        if len(view.succs[name]) > 1:
            raise KdsnnError(f"node {name!r} feeds {len(view.succs[name])} nodes (a residual branch): {_RESIDUAL}")
    allowed = (nir.Input, nir.Output, nir.IF, nir.Flatten, nir.SumPool2d) + _SYNAPSES
    for name, node in view.nodes.items():
        if not isinstance(node, allowed):
            hint = " (fold it into the next layer: kdsnn writes SumPool2d)" if isinstance(node, nir.AvgPool2d) else ""
            raise KdsnnError(f"node {name!r} of type {type(node).__name__} cannot be exported to netx{hint}")
    chain = [view.input]
    while view.succs[chain[-1]]:
        chain.append(view.succs[chain[-1]][0])
    if chain[-1] != view.output or len(chain) != len(view.nodes):
        raise KdsnnError("netx export needs one chain of nodes from Input to Output; this graph has others")
    return chain


def check_pools(graph: nir.NIRGraph) -> None:
    """Refuse overlapping or padded pools (node by node, before shapes are inferred)."""
    for name, node in graph.nodes.items():
        if isinstance(node, POOLS):
            k, s, p = (pair(node.kernel_size, "kernel", name), pair(node.stride, "stride", name),
                       pair(node.padding, "padding", name))
            if k != s or p != (0, 0):
                raise KdsnnError(f"pool {name!r}: only non-overlapping pools (stride = kernel, no padding) compose "
                                 f"into a netx layer (kernel {k}, stride {s}, padding {p})")


def lava_view(graph: nir.NIRGraph | GraphView) -> GraphView:
    """The graph's view, after the node-local checks whose message is clearer than a shape error."""
    if isinstance(graph, GraphView):
        return graph
    check_pools(graph)
    return GraphView.of(graph)


def netx_plan(graph: nir.NIRGraph | GraphView) -> NetxPlan:
    """Check that ``graph`` can run on netx and split it into host and netx layers."""
    view = lava_view(graph)
    timesteps = check_graph(view)
    chain = _chain(view)
    ifs = [i for i, n in enumerate(chain) if isinstance(view.nodes[n], nir.IF)]
    if len(ifs) < 2:
        raise KdsnnError("the graph has fewer than two IF layers: the first runs on the host, so nothing would be "
                         "left for Lava")
    host_neuron = chain[ifs[0]]
    if_threshold(view, host_neuron)
    shape = view.shape[host_neuron]
    layers = []
    for start, end in zip(ifs[:-1], ifs[1:], strict=True):
        neuron, segment = chain[end], chain[start + 1:end]
        for name in segment:
            if isinstance(view.nodes[name], nir.IF):  # pragma: no cover - segments end at the next IF
                raise KdsnnError(f"IF node {name!r} feeds an IF directly")
        if not segment or not isinstance(view.nodes[segment[-1]], _SYNAPSES):
            raise KdsnnError(f"IF node {neuron!r} has no synaptic layer right before it; "
                             "netx layers start with a synapse")
        syn = compose(view, segment, shape)
        theta = if_threshold(view, neuron)
        if tuple(syn.out_shape) != tuple(view.shape[neuron]):
            raise KdsnnError(f"{segment[-1]!r} produces {syn.out_shape} "
                             f"but IF {neuron!r} has shape {view.shape[neuron]}")
        warnings = check_population(neuron, [syn], theta, timesteps)
        layers.append(NetxLayer(**vars(syn), neuron=neuron, threshold=theta, warnings=warnings))
        shape = syn.out_shape
    return NetxPlan(chain[:ifs[0] + 1], host_neuron, layers, chain[ifs[-1] + 1:-1], timesteps)
