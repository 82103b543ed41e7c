"""SynOps and MACs counted on the PyTorch side, independently of the simulator's matrices.

The simulator counts events on its sparse connectivity; this module gets the same numbers
another way, from spike maps and exact per-position *fan-out maps* computed with PyTorch ops
(docs/synops.md):

- conv: fan-out of input position ``(y, x)`` = ``C_out/groups`` × the number of output
  positions whose window covers it: a transposed convolution of a ones map with a ones
  kernel, cropped by the padding (borders exact);
- affine/linear: ``out_features`` per input element; scale (identity shortcut): 1;
- pooling before a synaptic layer is composed with it: with non-overlapping windows each
  input position belongs to exactly one window, so its fan-out is that window's fan-out
  (positions no window covers reach nothing);
- flatten: a reshape of the fan-out map.

SynOps = Σ spikes × fan-out; the analog first layer counts effective MACs (nonzero inputs ×
fan-out) and dense MACs (every input × fan-out), at every step.
``ann_macs`` counts the dense MACs of one ANN forward (teacher, or a student run as an ANN).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdsnn.errors import KdsnnError
from kdsnn.export.delay import delayed, path_delay
from kdsnn.export.graph_view import POOLS, GraphView
from kdsnn.export.node_shapes import conv1d_as_2d, conv_pads, pair
from kdsnn.export.runtime import GraphRun


@dataclass
class SynopsCount:
    """Whole-batch counts per synaptic layer (insertion order = network order)."""

    batch: int
    synops: dict[str, int] = field(default_factory=dict)
    macs_effective: dict[str, int] = field(default_factory=dict)
    macs_dense: dict[str, int] = field(default_factory=dict)

    @property
    def total_synops(self) -> int:
        return sum(self.synops.values())

    @property
    def total_macs_effective(self) -> int:
        return sum(self.macs_effective.values())

    @property
    def total_macs_dense(self) -> int:
        return sum(self.macs_dense.values())

    def per_sample(self) -> dict[str, float]:
        return {"synops": self.total_synops / self.batch, "macs_effective": self.total_macs_effective / self.batch,
                "macs_dense": self.total_macs_dense / self.batch}


# ----------------------------------------------------------------------------- fan-out maps


def conv_fanout(in_hw: tuple[int, int], out_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                pads: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """``[H, W]``: for each input position, how many output positions' windows cover it.

    A transposed convolution of a ones ``[Ho, Wo]`` map with a ones kernel spreads every output
    back over its window in padded coordinates; cropping the leading padding gives the input grid.
    """
    ones = torch.ones(1, 1, *out_hw, dtype=torch.float64)
    full = F.conv_transpose2d(ones, torch.ones(1, 1, *kernel, dtype=torch.float64), stride=stride,
                              dilation=dilation)[0, 0]
    out = torch.zeros(in_hw, dtype=torch.float64)
    crop = full[pads[0]:pads[0] + in_hw[0], pads[1]:pads[1] + in_hw[1]]
    out[:crop.shape[0], :crop.shape[1]] = crop
    return out


def pool_back(fan: torch.Tensor, in_shape: tuple[int, ...], kernel, stride, padding) -> torch.Tensor:
    """Fan-out after a non-overlapping pool → fan-out of the pool's input positions."""
    k, s, p = pair(kernel), pair(stride), pair(padding)
    if k != s or p != (0, 0):
        raise KdsnnError(f"the PyTorch-side counter handles non-overlapping pooling only "
                         f"(kernel = stride, no padding); got kernel {k}, stride {s}, padding {p}")
    up = fan.repeat_interleave(k[0], dim=-2).repeat_interleave(k[1], dim=-1)
    out = torch.zeros(in_shape, dtype=torch.float64)
    h, w = min(up.shape[-2], in_shape[-2]), min(up.shape[-1], in_shape[-1])
    out[..., :h, :w] = up[..., :h, :w]
    return out


def _layer_fanout_graph(node: nir.NIRNode, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> torch.Tensor:
    if isinstance(node, nir.Conv1d):  # its 1×K Conv2d over [C, 1, L]
        fan = _layer_fanout_graph(conv1d_as_2d(node), (in_shape[0], 1, in_shape[1]), (out_shape[0], 1, out_shape[1]))
        return fan[:, 0, :]
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight)
        k, s, d = (w.shape[2], w.shape[3]), pair(node.stride), pair(node.dilation)
        sp_map = conv_fanout(in_shape[1:], out_shape[1:], k, s, conv_pads(node)[:2], d)
        return (w.shape[0] // int(node.groups)) * sp_map.expand(in_shape[0], *sp_map.shape).clone()
    if isinstance(node, (nir.Affine, nir.Linear)):
        return torch.full(in_shape, float(np.asarray(node.weight).shape[0]), dtype=torch.float64)
    return torch.ones(in_shape, dtype=torch.float64)  # Scale: one synapse per element


@dataclass
class FanOut:
    """Fan-out of one synaptic layer, as a map over its source population's shape."""

    source: str
    fanout: torch.Tensor
    delay: np.ndarray | None = None  # steps each source element waits on the path's Delay nodes (None: none)


def graph_fanouts(graph: nir.NIRGraph | GraphView) -> dict[str, FanOut]:
    """Per synaptic node: its source population (Input or neuron) and the composed fan-out map.

    Supports chains population → (pool | flatten)* → synaptic node, which is what kdsnn and
    the common SNN exporters write.
    """
    view = GraphView.of(graph)
    shapes = view.shape
    result: dict[str, FanOut] = {}
    for name in view.synaptic:
        path = view.source_of(name, "the PyTorch-side counter needs one input per synaptic node")
        fan = _layer_fanout_graph(view.nodes[name], view.in_shape[name], shapes[name])
        for between in reversed(path.nodes):
            node = view.nodes[between]
            if isinstance(node, nir.Delay):  # not a synapse: it moves the spikes in time (path_delay), no SynOps
                continue
            if not isinstance(node, (*POOLS, nir.Flatten)):
                raise KdsnnError(f"node {between!r} ({type(node).__name__}) between a population and {name!r}: the "
                                 "PyTorch-side counter supports only pooling and flatten there")
            if isinstance(node, nir.Flatten):
                fan = fan.reshape(view.in_shape[between])
            else:
                fan = pool_back(fan, view.in_shape[between], node.kernel_size, node.stride, node.padding)
        result[name] = FanOut(path.source, fan, path_delay(view, path))
    return result


# ----------------------------------------------------------------------------- counting

def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def count_graph(graph: nir.NIRGraph | GraphView, spikes: Mapping[str, torch.Tensor], inputs: torch.Tensor,
                analog: bool | None = None) -> SynopsCount:
    """Count SynOps/MACs of a graph from spike maps ``{IF node: [T, B, ...]}`` and the input ``[T, B, ...]``.

    ``analog=None`` decides from the input: non-binary values are analog (MACs), 0/1 are spikes.
    """
    if inputs.dim() < 3:
        raise KdsnnError("inputs must be [T, B, ...] as the graph's Input receives them, "
                         f"got shape {tuple(inputs.shape)}")
    is_analog = (not _is_binary(inputs)) if analog is None else analog
    out = SynopsCount(batch=int(inputs.shape[1]))
    view = GraphView.of(graph)
    for name, fo in graph_fanouts(view).items():
        if fo.source == view.input:
            src = inputs.to(torch.float64)
            if fo.delay is not None:  # what arrives within the T steps
                src = delayed(src, fo.delay)
            if is_analog:
                nz = (src != 0).to(torch.float64)
                out.macs_effective[name] = int((nz * fo.fanout).sum())
                out.macs_dense[name] = int(fo.fanout.sum()) * src.shape[0] * src.shape[1]
                continue
        else:
            if fo.source not in spikes:
                raise KdsnnError(f"no spike map for IF node {fo.source!r} (needed by {name!r})")
            src = spikes[fo.source].to(torch.float64)
            if fo.delay is not None and tuple(src.shape[2:]) == tuple(fo.fanout.shape):
                src = delayed(src, fo.delay)
        if tuple(src.shape[2:]) != tuple(fo.fanout.shape):
            raise KdsnnError(f"spike map of {fo.source!r} has shape {tuple(src.shape[2:])}, "
                             f"expected {tuple(fo.fanout.shape)}")
        out.synops[name] = int((src * fo.fanout).sum())
    return out


def count_run(graph: nir.NIRGraph | GraphView, run: GraphRun, analog: bool | None = None) -> SynopsCount:
    """Count SynOps/MACs from a :class:`GraphSNN` run (its per-node outputs) of ``graph``."""
    view = GraphView.of(graph)
    if view.input not in run.outputs:
        raise KdsnnError("the run does not belong to this graph (no output for its Input node)")
    spikes = {n: o for n, o in run.outputs.items() if n in view.models}
    return count_graph(view, spikes, run.outputs[view.input], analog)


# ----------------------------------------------------------------------------- dense MACs

def ann_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Dense MACs of one inference: every Conv2d/Linear call, per sample, counted via forward hooks.

    A module called on a ``[T·B, ...]`` batch (a student's time-folded layers) counts once per
    call per sample, so a student gives its MACs *as an ANN* (each synaptic layer once).
    """
    total = [0]

    def hook(mod: nn.Module, _inp, out: torch.Tensor) -> None:
        per_sample = out[0].numel()
        if isinstance(mod, nn.Conv2d):
            fan_in = (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            fan_in = mod.in_features  # type: ignore[assignment]
        total[0] += per_sample * fan_in

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not hooks:
        raise KdsnnError(f"{type(model).__name__} has no Conv2d or Linear layer to count")
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(x[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return int(total[0])


def graph_ann_macs(graph: nir.NIRGraph | GraphView) -> int:
    """Dense MACs of the graph's Conv2d/Affine/Linear layers run once, as an ANN.

    Scale nodes (identity shortcuts) are additions in the ANN and pooling is additions too:
    neither counts as a MAC, matching :func:`ann_macs` on the student model.
    """
    view = GraphView.of(graph)
    total = 0
    for name, node in view.nodes.items():
        if isinstance(node, (nir.Conv2d, nir.Conv1d)):
            w = np.asarray(node.weight)
            total += view.size(name) * int(np.prod(w.shape[1:]))
        elif isinstance(node, (nir.Affine, nir.Linear)):
            total += int(np.asarray(node.weight).size)
    return total


def leaky_counts(graph: nir.NIRGraph | GraphView, timesteps: int) -> dict[str, float]:
    """Per-inference leaky work over ``timesteps`` steps: ``decays`` (one per decaying state variable per
    neuron and step; it decays when ``0 < dt/τ < 1``: τ = ∞ does not leak, dt/τ = 1 keeps nothing to
    decay) and ``leaky_neuron_updates`` (updates of neurons with at least one decay), as docs/synops.md."""
    view = GraphView.of(graph)
    decays = leaky = 0
    for name, model in view.models.items():
        n = view.size(name)
        per_neuron = np.zeros(n, dtype=np.int64)
        for a in model.decay_rates():  # each model states its own (tests/kdsnn/test_neuron_models.py)
            per_neuron += np.broadcast_to((a > 0) & (a < 1), (n,)) if a.size == 1 else ((a > 0) & (a < 1)).ravel()
        decays += int(per_neuron.sum())
        leaky += int((per_neuron > 0).sum())
    return {"leaky_neuron_updates": float(leaky * timesteps), "decays": float(decays * timesteps)}
