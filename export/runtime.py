"""Run a NIR graph as a PyTorch module: the deployable (and quantized) student in PyTorch.

Runs every node type the graph view accepts (:mod:`kdsnn.export.graph_view`), as any tool may
write them; a ``Delay`` moves each element its whole number of steps later (:mod:`kdsnn.export.delay`).
Neuron populations step with their model's reference step (:mod:`kdsnn.neuron_models`). In integer
mode (``metadata.integer``) the input is quantized with ``input_scale`` and everything runs in float64
holding integers, exact for the 24-bit membranes the contract allows.
"""
from __future__ import annotations

from typing import NamedTuple

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdsnn.models.output import ModelOutput

from .delay import delayed, delayed_step
from .encoding import encode
from .graph_view import POOLS, GraphView
from .node_shapes import conv1d_as_2d, conv_pads, pair


class GraphRun(NamedTuple):
    """Everything one run records: logits, per-node outputs over time ``[T, B, ...]``."""

    logits: torch.Tensor
    outputs: dict[str, torch.Tensor]
    output_seq: torch.Tensor


def _tensor(value, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype)


class GraphSNN(nn.Module):
    """A NIR graph, runnable over T steps on ``[B, ...]`` (encoded) or ``[T, B, ...]`` input."""

    def __init__(self, graph: nir.NIRGraph | GraphView, timesteps: int | None = None) -> None:
        super().__init__()
        self.view = GraphView.of(graph, timesteps)
        v = self.view
        self.graph, self.meta, self.order = v.graph, v.meta, v.order
        self.input_shape, self.spiking_output, self.output_scale = v.input_shape, v.spiking_output, v.output_scale
        self.integer, self.encoding, self.input_scale = v.integer, v.encoding, v.input_scale
        self.dtype = torch.float64 if self.integer else torch.float32
        self.timesteps = v.timesteps or 4  # a graph without kdsnn metadata runs 4 steps unless told
        self._params = {n: self._tensors(node) for n, node in v.nodes.items()}

    def _tensors(self, node: nir.NIRNode) -> dict[str, torch.Tensor]:
        d = self.dtype
        if isinstance(node, (nir.Conv2d, nir.Conv1d, nir.Affine)):
            return {"weight": _tensor(node.weight, d), "bias": _tensor(node.bias, d).reshape(-1)}
        if isinstance(node, nir.Linear):
            return {"weight": _tensor(node.weight, d)}
        if isinstance(node, nir.Scale):
            return {"scale": _tensor(node.scale, d)}
        return {}

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, ...]`` or ``[T, B, ...]`` → ``[T, B, ...]`` as the graph's Input receives it."""
        seq = torch.as_tensor(x).dim() == len(self.input_shape) + 2  # [T, B, ...]: any T unless the graph records one
        return encode(self.view, x, self.view.timesteps if seq else self.timesteps, self.dtype)

    def run(self, x: torch.Tensor) -> GraphRun:
        """Simulate all steps, keeping every node's output sequence."""
        seq = self.prepare_input(x)
        if self.view.recurrent:
            return self._run_stepwise(seq)
        t = seq.shape[0]
        v = self.view
        outs: dict[str, torch.Tensor] = {}
        for name in v.order:
            if name == v.input:
                outs[name] = seq
                continue
            srcs = v.preds[name]
            inp = outs[srcs[0]]
            for s in srcs[1:]:
                inp = inp + outs[s]
            if name in v.models:
                inp = inp.reshape(t, inp.shape[1], *v.shape[name])
                outs[name] = v.models[name].run(inp)[0]
            elif name in v.delays:
                outs[name] = delayed(inp, v.delays[name])
            else:
                outs[name] = self._apply(name, v.nodes[name], inp, t)
        out_seq = outs[v.output]
        return GraphRun(v.logits(out_seq), outs, out_seq)

    def _run_stepwise(self, seq: torch.Tensor) -> GraphRun:
        """A recurrent graph, one step at a time: a recurrent edge reads its source's output of the step
        before (zero at the first step; export/recurrence.py states the convention)."""
        v = self.view
        t, b = seq.shape[0], seq.shape[1]
        prev: dict[str, torch.Tensor] = {}
        state: dict[str, object] = {}
        held: dict[str, list[torch.Tensor]] = {n: [] for n in v.delays}  # each Delay's last max(d) + 1 inputs
        steps: dict[str, list[torch.Tensor]] = {n: [] for n in v.order}
        for k in range(t):
            now: dict[str, torch.Tensor] = {}
            for name in v.order:
                if name == v.input:
                    now[name] = seq[k]
                    steps[name].append(now[name])
                    continue
                inp = None
                for s in v.preds[name]:
                    if v.is_recurrent(s, name):
                        y = prev.get(s)
                        y = y if y is not None else torch.zeros((b, *v.shape[s]), dtype=self.dtype)
                    else:
                        y = now[s]
                    inp = y if inp is None else inp + y
                if name in v.models:
                    inp = inp.reshape(b, *v.shape[name])
                    model = v.models[name]
                    if name not in state:
                        state[name] = model.initial_state(inp)
                    now[name], state[name] = model.step(inp, state[name])
                elif name in v.delays:
                    held[name] = [*held[name][-int(v.delays[name].max(initial=0)):], inp] if v.delays[name].any() \
                        else [inp]
                    now[name] = delayed_step(held[name], v.delays[name])
                else:
                    now[name] = self._apply(name, v.nodes[name], inp[None], 1)[0]
                steps[name].append(now[name])
            prev = now
        outs = {n: torch.stack(s) for n, s in steps.items()}
        out_seq = outs[v.output]
        return GraphRun(v.logits(out_seq), outs, out_seq)

    def _apply(self, name: str, node: nir.NIRNode, x: torch.Tensor, t: int) -> torch.Tensor:
        p = self._params[name]
        if isinstance(node, nir.Output):
            return x
        flat = x.flatten(0, 1)
        if isinstance(node, nir.Conv2d):
            top, left, bottom, right = conv_pads(node, name)
            if (top, left) != (bottom, right):
                flat = F.pad(flat, (left, right, top, bottom))
                top = left = 0
            y = F.conv2d(flat, p["weight"], p["bias"], pair(node.stride), (top, left), pair(node.dilation),
                         int(node.groups))
        elif isinstance(node, nir.Conv1d):  # as its 1×K Conv2d over [C, 1, L]: one definition of the geometry
            c2 = conv1d_as_2d(node)
            _, left, _, right = conv_pads(c2, name)
            y = F.conv2d(F.pad(flat[:, :, None, :], (left, right, 0, 0)), p["weight"][:, :, None, :], p["bias"],
                         pair(c2.stride), 0, pair(c2.dilation), int(node.groups))[:, :, 0, :]
        elif isinstance(node, (nir.Affine, nir.Linear)):
            last_axis = flat.dim() > 1 and flat.shape[-1] == p["weight"].shape[1]
            y = F.linear(flat if last_axis else flat.flatten(1), p["weight"], p.get("bias"))
        elif isinstance(node, nir.Scale):
            sc = p["scale"]
            y = flat * sc if sc.numel() == 1 or tuple(sc.shape) == tuple(flat.shape[1:]) else \
                (flat.flatten(1) * sc.reshape(-1)).view(flat.shape)
        elif isinstance(node, POOLS):
            k, s, pd = pair(node.kernel_size), pair(node.stride), pair(node.padding)
            y = F.avg_pool2d(flat, k, s, pd, divisor_override=1 if isinstance(node, nir.SumPool2d) else None)
        else:  # Flatten: index arithmetic only
            y = flat.reshape(flat.shape[0], *self.view.shape[name])
        return y.view(t, -1, *y.shape[1:])

    def forward(self, x: torch.Tensor) -> ModelOutput:
        run = self.run(x)
        feats = {n: o.mean(0) for n, o in run.outputs.items() if n in self.view.models}
        return ModelOutput(run.logits.float(), feats)
