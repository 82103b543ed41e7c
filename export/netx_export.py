"""lava-dl netx export: an integer NIR graph as the ``.net`` HDF5 file ``netx.hdf5.Network`` loads.

What netx can express, and the choices made where it cannot (docs/lava.md says the same):

- **Neuron.** Our IF is netx's CUBA neuron with ``iDecay = 4096`` (the current lives one step)
  and ``vDecay = 0`` (no leak). Lava's fixed point shifts currents, bias and threshold left by
  6 bits: ``v·64 += a·64 + bias·64`` and a spike iff ``v·64 > vThMant·64``. With integer
  weights, biases and θ this is ``v > θ`` exactly, so ``vThMant = θ``. Spikes reset ``v`` to 0,
  hence ``v_reset`` must be 0. Weights and biases are written as the graph's integers.
- **Bias.** netx gives CUBA a per-neuron bias (``bias_mant``, exponent fixed at 6: 13-bit
  signed mantissa). Lava adds it at every step, also while a layer waits for its first input
  in the pipeline; loading with ``reset_interval = T, reset_offset = 1`` (stored in the file's
  ``kdsnn`` attribute) zeroes each layer when its first real input arrives, which makes the
  bias exact and lets samples follow each other every T steps.
- **First layer on the host.** Our input is analog (direct encoding): the first synaptic
  layer and its IF run on the host (as :class:`GraphSNN` does), and its spikes are the input
  of the netx file, which holds layers 2..L. This keeps netx's input binary (analog input
  would need graded spikes whose 16-bit sums overflow for real images).
- **Readout.** A spiking readout (``Affine → IF``) is the last netx layer. A membrane
  readout (``Affine → Output``) cannot be read as spikes: it is computed on the host from
  the last spiking layer's Lava spikes (``logits = mean_t(W·s + b)·output_scale``).
- **Pooling.** netx loads no pooling layer. A ``SumPool2d`` (kernel = stride = k, no padding)
  before a conv with kernel K, stride s, padding P is composed into one conv with kernel
  k·K (each weight repeated over a k×k block), stride k·s and padding k·P; before
  ``Flatten → Affine`` it is composed into the dense weights the same way. Both are exact
  when the map's size is a multiple of k (checked, refused otherwise).
- **Refused.** Float graphs, soft reset, ``v_reset ≠ 0``, residual graphs (several edges
  into one node, ``Scale`` shortcuts, fan-out), weights outside [−127, 127], biases outside
  [−4096, 4095], thresholds outside [0, 131071], and per-step currents whose worst case
  (every input spiking) leaves Loihi's 24-bit current (|a| ≤ 131071).
- **Membrane range.** Lava clips ``v·64`` to 24 bits. When the worst case over T steps can
  leave that range, the file records a warning for the layer (``describe`` shows it) and
  :func:`kdsnn.deploy.lava_backend.run_lava` checks the actual membranes of the run.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import nir
import numpy as np
import torch
import torch.nn.functional as F

from kdsnn.atomic import atomic_path
from kdsnn.errors import KdsnnError

from .graph import get_meta, predecessors

I_DECAY = 4096  # current decays fully each step: u[t] = a[t]
V_DECAY = 0  # no membrane leak
WEIGHT_MAX = 127  # 8-bit symmetric mantissa (netx rescales dense weights into Loihi's 8 bits)
BIAS_MIN, BIAS_MAX = -(2 ** 12), 2 ** 12 - 1  # 13-bit signed bias mantissa, exponent 6
VTH_MAX = 2 ** 17 - 1  # 17-bit unsigned vThMant
STATE_MAX = 2 ** 17 - 1  # 24-bit current/membrane holds value·64: |value| ≤ 2^17 − 1
RESET_OFFSET = 1  # netx gives layer j the reset phase RESET_OFFSET + j (Lava time starts at 1)
FORMAT_VERSION = 1

_POOLS = (nir.SumPool2d,)
_SYNAPSES = (nir.Conv2d, nir.Affine, nir.Linear)


@dataclass
class NetxLayer:
    """One netx Dense/Conv layer: composed synapse plus the IF population it feeds."""

    kind: str  # "conv" or "dense"
    neuron: str  # our IF node name
    sources: list[str]  # the graph nodes composed into this layer (pools, flatten, synapse)
    in_shape: tuple[int, ...]  # shape of the spikes it receives (C, H, W) or (N,)
    out_shape: tuple[int, ...]
    weight: np.ndarray  # conv: [Cout, Cin, kH, kW]; dense: [out, in]
    bias: np.ndarray  # per output channel (conv) or neuron (dense)
    threshold: int
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    flatten_before: bool = False
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


def _pair(v: Any, name: str, node: str) -> tuple[int, int]:
    if isinstance(v, str):
        raise KdsnnError(f"node {node!r}: {name} {v!r} is not supported by netx; use explicit integer padding")
    a = np.atleast_1d(np.asarray(v)).astype(np.int64).tolist()
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def _integer(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
        raise KdsnnError(f"{what} holds non-integer values; netx needs an integer graph (quantize with integer=True)")
    return a.astype(np.int64)


def _chain(graph: nir.NIRGraph) -> list[str]:
    """The graph as one sequential chain Input → … → Output, or a KdsnnError naming the node."""
    preds = predecessors(graph)
    succs: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for s, d in graph.edges:
        succs[s].append(d)
    allowed = (nir.Input, nir.Output, nir.IF, nir.Flatten) + _POOLS + _SYNAPSES
    residual = "netx files hold sequential layers only, so residual students (ResNet/WRN) cannot be exported to netx; " \
               "use NIR or ONNX"
    for name, node in graph.nodes.items():  # most telling problem first: shortcuts, sums, branches
        if isinstance(node, nir.Scale):
            raise KdsnnError(f"node {name!r} is a residual shortcut (Scale): {residual}")
    for name in graph.nodes:
        if len(preds[name]) > 1:
            raise KdsnnError(f"node {name!r} sums {len(preds[name])} inputs (a residual connection): {residual}")
    for name in graph.nodes:
        if len(succs[name]) > 1:
            raise KdsnnError(f"node {name!r} feeds {len(succs[name])} nodes (a residual branch): {residual}")
    for name, node in graph.nodes.items():
        if not isinstance(node, allowed):
            hint = " (fold it into the next layer: kdsnn writes SumPool2d)" if isinstance(node, nir.AvgPool2d) else ""
            raise KdsnnError(f"node {name!r} of type {type(node).__name__} cannot be exported to netx{hint}")
    inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise KdsnnError(f"netx export needs exactly one Input node (the graph has {len(inputs)})")
    chain = [inputs[0]]
    while succs[chain[-1]]:
        chain.append(succs[chain[-1]][0])
    if not isinstance(graph.nodes[chain[-1]], nir.Output) or len(chain) != len(graph.nodes):
        raise KdsnnError("netx export needs one chain of nodes from Input to Output; this graph has others")
    return chain


def _if_params(graph: nir.NIRGraph, name: str) -> tuple[tuple[int, ...], int]:
    node = graph.nodes[name]
    r = np.asarray(node.r, dtype=np.float64)
    th = _integer(node.v_threshold, f"IF node {name!r} threshold")
    vr = np.asarray(node.v_reset, dtype=np.float64)
    if not np.all(r == 1):
        raise KdsnnError(f"IF node {name!r} has r ≠ 1; netx's CUBA neuron integrates with weight 1")
    if np.any(vr != 0):
        raise KdsnnError(f"IF node {name!r} resets to {float(vr.flat[0])}; Lava's CUBA resets to 0, so v_reset must be 0")
    if th.size == 0 or np.any(th != th.flat[0]):
        raise KdsnnError(f"IF node {name!r} has per-neuron thresholds; netx holds one vThMant per layer")
    theta = int(th.flat[0])
    if not 0 <= theta <= VTH_MAX:
        raise KdsnnError(f"IF node {name!r}: threshold {theta} outside netx's vThMant range [0, {VTH_MAX}] "
                         "(17-bit unsigned); quantize with fewer bits")
    return tuple(int(v) for v in th.shape), theta


def _pooled(graph: nir.NIRGraph, name: str, shape: tuple[int, ...],
            factor: tuple[int, int]) -> tuple[tuple[int, ...], tuple[int, int]]:
    """Shape after sum pool ``name`` and the accumulated pool factor (checked to compose exactly)."""
    node = graph.nodes[name]
    k, s, p = (_pair(node.kernel_size, "kernel", name), _pair(node.stride, "stride", name),
               _pair(node.padding, "padding", name))
    if k != s or p != (0, 0):
        raise KdsnnError(f"pool {name!r}: only non-overlapping pools (stride = kernel, no padding) compose "
                         f"into a netx layer (kernel {k}, stride {s}, padding {p})")
    if len(shape) != 3 or shape[1] % k[0] or shape[2] % k[1]:
        raise KdsnnError(f"pool {name!r}: map {shape} is not a multiple of the {k[0]}×{k[1]} pool; the pool cannot "
                         "be composed exactly into the next netx layer")
    return (shape[0], shape[1] // k[0], shape[2] // k[1]), (factor[0] * k[0], factor[1] * k[1])


def _layer(graph: nir.NIRGraph, segment: list[str], in_shape: tuple[int, ...], timesteps: int) -> NetxLayer:
    """Compose ``pools… [flatten] synapse`` feeding IF ``segment[-1]`` into one netx layer."""
    neuron = segment[-1]
    shape, factor, flatten, synapse = in_shape, (1, 1), False, None
    for name in segment[:-1]:
        node = graph.nodes[name]
        if synapse is not None:
            raise KdsnnError(f"node {name!r} follows synapse {synapse!r} before an IF; netx layers are one synapse "
                             "followed by neurons")
        if isinstance(node, _POOLS):
            if flatten:
                raise KdsnnError(f"pool {name!r} after a flatten cannot be exported to netx")
            shape, factor = _pooled(graph, name, shape, factor)
        elif isinstance(node, nir.Flatten):
            flatten = True
        elif isinstance(node, nir.IF):
            raise KdsnnError(f"IF node {name!r} feeds an IF directly")
        else:
            synapse = name
    if synapse is None:
        raise KdsnnError(f"IF node {neuron!r} has no synaptic layer before it; netx layers start with a synapse")
    out_shape, theta = _if_params(graph, neuron)
    node = graph.nodes[synapse]
    w = _integer(node.weight, f"weights of {synapse!r}")
    b = _integer(getattr(node, "bias", np.zeros(w.shape[0])), f"bias of {synapse!r}")
    if isinstance(node, nir.Conv2d):
        if flatten or len(shape) != 3:
            raise KdsnnError(f"conv {synapse!r} must receive a C×H×W map")
        if int(node.groups) != 1 or _pair(node.dilation, "dilation", synapse) != (1, 1):
            raise KdsnnError(f"conv {synapse!r}: groups/dilation other than 1 cannot be exported to netx")
        if w.shape[1] != shape[0]:
            raise KdsnnError(f"conv {synapse!r} expects {w.shape[1]} input channels, receives {shape[0]}")
        stride, padding = _pair(node.stride, "stride", synapse), _pair(node.padding, "padding", synapse)
        w, stride, padding = compose_sumpool_conv(w, stride, padding, factor)
        full_in = (shape[0], shape[1] * factor[0], shape[2] * factor[1])
        size = tuple((full_in[i + 1] + 2 * padding[i] - w.shape[2 + i]) // stride[i] + 1 for i in range(2))
        layer = NetxLayer("conv", neuron, segment[:-1], full_in, (w.shape[0], *size), w, b, theta, stride, padding)
    else:
        if len(shape) == 3 and not flatten:
            raise KdsnnError(f"{type(node).__name__} {synapse!r} receives a C×H×W map without a Flatten")
        n_in = int(np.prod(shape))
        if w.ndim != 2 or w.shape[1] != n_in:
            raise KdsnnError(f"{type(node).__name__} {synapse!r} expects {w.shape[-1]} inputs, receives {n_in}")
        if len(shape) == 3:
            w = compose_sumpool_dense(w, shape, factor)
        full_in = (shape[0], shape[1] * factor[0], shape[2] * factor[1]) if len(shape) == 3 else shape
        layer = NetxLayer("dense", neuron, segment[:-1], full_in, (w.shape[0],), w, b, theta,
                          flatten_before=len(shape) == 3)
    if tuple(layer.out_shape) != tuple(out_shape):
        raise KdsnnError(f"{synapse!r} produces {layer.out_shape} but IF {neuron!r} has shape {out_shape}")
    _check_ranges(layer, timesteps)
    return layer


def _current_bounds(layer: NetxLayer) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron extreme synaptic currents when every input spikes (positive part, negative part)."""
    w = torch.as_tensor(layer.weight, dtype=torch.float64)
    if layer.kind == "dense":
        return w.clamp(min=0).sum(1).numpy(), w.clamp(max=0).sum(1).numpy()
    ones = torch.ones(1, *layer.in_shape, dtype=torch.float64)
    pos = F.conv2d(ones, w.clamp(min=0), stride=layer.stride, padding=layer.padding)[0]
    neg = F.conv2d(ones, w.clamp(max=0), stride=layer.stride, padding=layer.padding)[0]
    return pos.numpy(), neg.numpy()


def _check_ranges(layer: NetxLayer, timesteps: int) -> None:
    """Refuse what Loihi cannot hold; note membranes whose worst case may be clipped."""
    name = layer.neuron
    wmax = int(np.abs(layer.weight).max())
    if wmax > WEIGHT_MAX:
        raise KdsnnError(f"layer feeding {name!r}: weight {wmax} outside netx's 8-bit range [-{WEIGHT_MAX}, {WEIGHT_MAX}]; "
                         "quantize with bits ≤ 8")
    if wmax == 0:
        raise KdsnnError(f"all weights feeding {name!r} are zero; netx cannot scale an all-zero layer")
    if layer.bias.min() < BIAS_MIN or layer.bias.max() > BIAS_MAX:
        raise KdsnnError(f"layer feeding {name!r}: bias range [{layer.bias.min()}, {layer.bias.max()}] outside netx's "
                         f"13-bit bias mantissa [{BIAS_MIN}, {BIAS_MAX}]; quantize with fewer bits")
    pos, neg = _current_bounds(layer)
    peak = max(float(pos.max()), -float(neg.min()))
    if peak > STATE_MAX:
        raise KdsnnError(f"layer feeding {name!r}: a step's synaptic current can reach {peak:.0f}, beyond Loihi's 24-bit "
                         f"current (|a| ≤ {STATE_MAX}); quantize with fewer bits")
    bias = layer.bias.reshape(-1, *([1] * (pos.ndim - 1)))
    hi = layer.threshold + float(np.maximum(pos + bias, 0).max())
    lo = timesteps * float(np.minimum(neg + bias, 0).min())
    if hi > STATE_MAX or lo < -STATE_MAX:
        layer.warnings.append(f"worst-case membrane [{lo:.0f}, {hi:.0f}] over T={timesteps} exceeds Loihi's 24-bit "
                              f"membrane (|v| ≤ {STATE_MAX}); run_lava checks the actual membranes")


def netx_plan(graph: nir.NIRGraph) -> NetxPlan:
    """Check that ``graph`` can run on netx and split it into host and netx layers."""
    meta = get_meta(graph)
    if not meta.get("integer"):
        raise KdsnnError("netx export needs an integer graph: quantize it first (quantize_graph(graph, integer=True), "
                         "or `kdsnn quantize`)")
    if meta.get("reset", "hard") != "hard":
        raise KdsnnError(f"reset mode {meta.get('reset')!r} cannot be expressed by Lava's CUBA neuron (reset to 0); "
                         "train with --reset hard")
    timesteps = int(meta.get("timesteps") or 0)
    if timesteps < 1:
        raise KdsnnError("the graph's metadata has no number of time steps; re-export it with kdsnn")
    chain = _chain(graph)
    ifs = [i for i, n in enumerate(chain) if isinstance(graph.nodes[n], nir.IF)]
    if len(ifs) < 2:
        raise KdsnnError("the graph has fewer than two IF layers: the first runs on the host, so nothing would be "
                         "left for Lava")
    host_neuron = chain[ifs[0]]
    _if_params(graph, host_neuron)
    shape = tuple(int(v) for v in np.asarray(graph.nodes[host_neuron].v_threshold).shape)
    layers = []
    for start, end in zip(ifs[:-1], ifs[1:]):
        layer = _layer(graph, chain[start + 1:end + 1], shape, timesteps)
        layers.append(layer)
        shape = layer.out_shape
    return NetxPlan(chain[:ifs[0] + 1], host_neuron, layers, chain[ifs[-1] + 1:-1], timesteps)


def graph_digest(graph: nir.NIRGraph) -> str:
    """SHA-256 over the graph's edges and numeric parameters: ties a netx file to its graph."""
    h = hashlib.sha256()
    for s, d in sorted(graph.edges):
        h.update(f"{s}>{d};".encode())
    for name in sorted(graph.nodes):
        node = graph.nodes[name]
        h.update(f"{name}:{type(node).__name__};".encode())
        for attr in ("weight", "bias", "scale", "v_threshold", "v_reset", "r", "kernel_size", "stride", "padding"):
            if hasattr(node, attr) and not isinstance(getattr(node, attr), str):
                h.update(attr.encode() + np.ascontiguousarray(np.asarray(getattr(node, attr), dtype=np.float64)).tobytes())
    return h.hexdigest()


def _ascii(group: h5py.Group, key: str, text: str) -> None:
    group.create_dataset(key, (1,), f"S{max(len(text), 1)}", [text.encode("ascii")])


def _write_layer(group: h5py.Group, layer: NetxLayer) -> None:
    _ascii(group, "type", layer.kind)
    group.create_dataset("shape", data=np.asarray(layer.out_shape, dtype=np.int64))
    group.create_dataset("weight", data=layer.weight.astype(np.int64))
    group.create_dataset("bias", data=layer.bias.astype(np.int64))
    if layer.kind == "conv":
        group.create_dataset("stride", data=np.asarray(layer.stride, dtype=np.int64))
        group.create_dataset("padding", data=np.asarray(layer.padding, dtype=np.int64))
        group.create_dataset("dilation", data=np.asarray((1, 1), dtype=np.int64))
        group.create_dataset("groups", data=np.int64(1))
    else:
        group.create_dataset("inFeatures", data=np.int64(layer.weight.shape[1]))
        group.create_dataset("outFeatures", data=np.int64(layer.weight.shape[0]))
    neuron = group.create_group("neuron")
    _ascii(neuron, "type", "CUBA")
    for key, value in (("iDecay", I_DECAY), ("vDecay", V_DECAY), ("vThMant", layer.threshold), ("refDelay", 1)):
        neuron.create_dataset(key, data=np.int64(value))
    neuron.create_dataset("gradedSpike", data=False)


def export_netx(graph: nir.NIRGraph, path: str | Path) -> Path:
    """Write the netx ``.net`` file of an integer graph (layers 2..L; see the module docstring)."""
    plan = netx_plan(graph)
    meta = get_meta(graph)
    info = {"producer": "kdsnn", "format_version": FORMAT_VERSION, "timesteps": plan.timesteps,
            "reset_interval": plan.timesteps, "reset_offset": RESET_OFFSET,
            "host_nodes": plan.host_nodes, "host_neuron": plan.host_neuron,
            "layers": [{"neuron": layer.neuron, "sources": layer.sources, "in_shape": list(layer.in_shape),
                        "warnings": layer.warnings} for layer in plan.layers],
            "readout_nodes": plan.readout_nodes, "readout": "host" if plan.readout_nodes else "spike",
            "input_scale": meta.get("input_scale"), "output_scale": meta.get("output_scale", 1.0),
            "graph_digest": graph_digest(graph)}
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["kdsnn"] = json.dumps(info)
            layers = f.create_group("layer")
            first = layers.create_group("0")
            _ascii(first, "type", "input")
            first.create_dataset("shape", data=np.asarray(plan.layers[0].in_shape, dtype=np.int64))
            index = 1
            for layer in plan.layers:
                if layer.flatten_before:
                    flat = layers.create_group(str(index))
                    _ascii(flat, "type", "flatten")
                    flat.create_dataset("shape", data=np.asarray(layer.in_shape, dtype=np.int64))
                    index += 1
                _write_layer(layers.create_group(str(index)), layer)
                index += 1
    return path


def read_info(path: str | Path) -> dict[str, Any]:
    """The ``kdsnn`` attribute of a netx file we wrote; KdsnnError for missing/foreign files."""
    path = Path(path)
    _open_netx(path).close()
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("kdsnn")
    if raw is None:
        raise KdsnnError(f"{path} is a netx file but not one kdsnn wrote (no 'kdsnn' attribute); export it with kdsnn")
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise KdsnnError(f"{path}: the 'kdsnn' attribute is corrupt; export the file again") from None


def _open_netx(path: Path) -> h5py.File:
    if not path.is_file():
        raise KdsnnError(f"netx file {path} does not exist")
    if not h5py.is_hdf5(path):
        raise KdsnnError(f"{path} is not a netx file (not HDF5; corrupt, truncated or another format)")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise KdsnnError(f"{path} could not be opened as HDF5 ({exc})") from None
    if "layer" not in f or not isinstance(f["layer"], h5py.Group):
        f.close()
        raise KdsnnError(f"{path} is HDF5 but not a netx network (no 'layer' group; a NIR file? try `kdsnn inspect`)")
    return f


def _text(ds: h5py.Dataset) -> str:
    v = ds[()]
    v = v[0] if getattr(v, "shape", ()) else v
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def _range(a: np.ndarray) -> str:
    return f"[{a.min():g}, {a.max():g}]" if a.size else "[]"


def describe(path: str | Path) -> str:
    """A readable summary of a netx file: layers, shapes, weight ranges, thresholds."""
    path = Path(path)
    f = _open_netx(path)
    lines = [f"netx network {path.name}"]
    try:
        info = json.loads(f.attrs["kdsnn"]) if "kdsnn" in f.attrs else None
        group = f["layer"]
        keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if not keys or not all(k.isdigit() for k in keys):
            raise KdsnnError(f"{path}: netx 'layer' group must hold layers named 0, 1, 2, …")
        if info:
            lines.append(f"  kdsnn export: T={info['timesteps']}; host computes {' → '.join(info['host_nodes'][1:])} "
                         f"(input step {info['input_scale']}); load with reset_interval={info['reset_interval']}, "
                         f"reset_offset={info['reset_offset']}")
        for k in keys:
            layer = group[k]
            kind = _text(layer["type"])
            shape = tuple(int(v) for v in np.asarray(layer["shape"][()]).ravel()) if "shape" in layer else ()
            line = f"  {k}: {kind:<7} shape {shape}"
            if "weight" in layer:
                w = np.asarray(layer["weight"][()])
                line += f"  weight {tuple(w.shape)} in {_range(w)}"
            if kind == "conv":
                line += f"  stride {tuple(np.asarray(layer['stride'][()]).ravel().tolist())} padding " \
                        f"{tuple(np.asarray(layer['padding'][()]).ravel().tolist())}"
            if "bias" in layer:
                line += f"  bias in {_range(np.asarray(layer['bias'][()]))}"
            if "neuron" in layer:
                n = layer["neuron"]
                line += (f"  {_text(n['type'])} vThMant {int(n['vThMant'][()])} iDecay {int(n['iDecay'][()])} "
                         f"vDecay {int(n['vDecay'][()])}")
            lines.append(line)
        if info:
            names = [layer["neuron"] for layer in info["layers"]]
            lines.append(f"  Lava layers are the IF nodes {', '.join(names)}; readout: "
                         + (f"host computes {' → '.join(info['readout_nodes'])} from {names[-1]}'s spikes"
                            if info["readout_nodes"] else f"spike counts of {names[-1]}"))
            for layer in info["layers"]:
                lines += [f"  warning: {layer['neuron']}: {w}" for w in layer["warnings"]]
    except KdsnnError:
        raise
    except (KeyError, ValueError, TypeError, OSError, RuntimeError) as exc:
        raise KdsnnError(f"{path}: malformed netx file ({type(exc).__name__}: {exc})") from None
    finally:
        f.close()
    return "\n".join(lines)

