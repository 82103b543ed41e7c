"""Run a NIR graph as a PyTorch module: the deployable (and quantized) student in PyTorch.

Supports the node types of our exporter, as any tool may write them: Input, Conv2d, Affine,
Linear, Scale, SumPool2d, AvgPool2d, Flatten, IF, Output. Every step follows the IF
contract (``v += r·x``; spike iff ``v > θ``; reset to ``v_reset``). In integer mode
(``metadata.integer``) the input is quantized with ``input_scale`` and everything runs in
float64 holding integers, which is exact for the 24-bit membranes the contract allows.
"""
from __future__ import annotations

from typing import NamedTuple

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdsnn.errors import KdsnnError
from kdsnn.models.output import ModelOutput

from .graph import get_meta, pair, predecessors, topological_order

SUPPORTED = (nir.Input, nir.Output, nir.Conv2d, nir.Affine, nir.Linear, nir.Scale, nir.SumPool2d, nir.AvgPool2d,
             nir.Flatten, nir.IF)


class GraphRun(NamedTuple):
    """Everything one run records: logits, per-node outputs over time ``[T, B, ...]``."""

    logits: torch.Tensor
    outputs: dict[str, torch.Tensor]
    output_seq: torch.Tensor



def _param(node: nir.NIRNode, name: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(getattr(node, name), dtype=np.float64), dtype=dtype)


class GraphSNN(nn.Module):
    """A NIR graph, runnable over T steps on ``[B, ...]`` (direct) or ``[T, B, ...]`` input."""

    def __init__(self, graph: nir.NIRGraph, timesteps: int | None = None) -> None:
        super().__init__()
        self.graph = graph
        self.meta = get_meta(graph)
        for name, node in graph.nodes.items():
            if not isinstance(node, SUPPORTED):
                raise KdsnnError(f"NIR node {name!r} of type {type(node).__name__} is not supported "
                                 f"(supported: {', '.join(t.__name__ for t in SUPPORTED)})")
        self.order = topological_order(graph)
        self.preds = predecessors(graph)
        inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
        outputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise KdsnnError(f"NIR graph must have exactly one Input and one Output node (has {len(inputs)} and {len(outputs)})")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.integer = bool(self.meta.get("integer", False))
        self.dtype = torch.float64 if self.integer else torch.float32
        self.timesteps = int(timesteps or self.meta.get("timesteps", 4))
        self.encoding = self.meta.get("encoding", "direct")
        self.input_scale = self.meta.get("input_scale")
        self.output_scale = float(self.meta.get("output_scale", 1.0))
        self.input_shape = tuple(int(v) for v in np.asarray(graph.nodes[self.input_name].input_type["input"]).tolist())
        last = self.preds[self.output_name]
        self.spiking_output = bool(last) and all(isinstance(graph.nodes[p], nir.IF) for p in last)
        self._params = {n: self._tensors(node) for n, node in graph.nodes.items()}

    def _tensors(self, node: nir.NIRNode) -> dict[str, torch.Tensor]:
        d = self.dtype
        if isinstance(node, nir.Conv2d):
            return {"weight": _param(node, "weight", d), "bias": _param(node, "bias", d)}
        if isinstance(node, nir.Affine):
            return {"weight": _param(node, "weight", d), "bias": _param(node, "bias", d)}
        if isinstance(node, nir.Linear):
            return {"weight": _param(node, "weight", d)}
        if isinstance(node, nir.Scale):
            return {"scale": _param(node, "scale", d)}
        if isinstance(node, nir.IF):
            return {"r": _param(node, "r", d), "v_threshold": _param(node, "v_threshold", d),
                    "v_reset": _param(node, "v_reset", d)}
        return {}

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, ...]`` analog → ``[T, B, ...]`` as the graph's Input receives it (quantized in integer mode)."""
        if x.dim() == len(self.input_shape) + 1:
            if tuple(x.shape[1:]) != self.input_shape:
                raise KdsnnError(f"input shape {tuple(x.shape[1:])} does not match the graph's input {self.input_shape}")
            if self.encoding == "bernoulli":
                x = torch.bernoulli(x.clamp(0, 1).unsqueeze(0).expand(self.timesteps, *x.shape))
            else:
                x = x.unsqueeze(0).expand(self.timesteps, *x.shape)
        elif x.dim() != len(self.input_shape) + 2 or tuple(x.shape[2:]) != self.input_shape:
            raise KdsnnError(f"input shape {tuple(x.shape)} does not match the graph's input {self.input_shape} "
                             "([B, ...] or [T, B, ...])")
        x = x.to(self.dtype)
        if self.integer and self.input_scale and self.encoding == "direct":
            x = torch.round(x / self.input_scale)
        return x

    def run(self, x: torch.Tensor) -> GraphRun:
        """Simulate all steps, keeping every node's output sequence."""
        seq = self.prepare_input(x)
        t = seq.shape[0]
        outs: dict[str, torch.Tensor] = {}
        for name in self.order:
            node = self.graph.nodes[name]
            if isinstance(node, nir.Input):
                outs[name] = seq
                continue
            srcs = self.preds[name]
            if not srcs:
                raise KdsnnError(f"NIR node {name!r} has no incoming edge")
            inp = outs[srcs[0]]
            for s in srcs[1:]:
                inp = inp + outs[s]
            outs[name] = self._apply(name, node, inp, t)
        out_seq = outs[self.output_name]
        if self.spiking_output:
            logits = out_seq.sum(0)
        else:
            logits = out_seq.mean(0)
        return GraphRun(logits * self.output_scale, outs, out_seq)

    def _apply(self, name: str, node: nir.NIRNode, x: torch.Tensor, t: int) -> torch.Tensor:
        p = self._params[name]
        if isinstance(node, nir.Output):
            return x
        if isinstance(node, nir.IF):
            return self._if(x, p)
        flat = x.flatten(0, 1)
        if isinstance(node, nir.Conv2d):
            pad = node.padding if isinstance(node.padding, str) else pair(node.padding)
            y = F.conv2d(flat, p["weight"], p["bias"], pair(node.stride), pad, pair(node.dilation), int(node.groups))
        elif isinstance(node, nir.Affine):
            y = F.linear(flat, p["weight"], p["bias"])
        elif isinstance(node, nir.Linear):
            y = F.linear(flat, p["weight"])
        elif isinstance(node, nir.Scale):
            y = flat * p["scale"]
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            k, s, pd = pair(node.kernel_size), pair(node.stride), pair(node.padding)
            y = F.avg_pool2d(flat, k, s, pd, divisor_override=1 if isinstance(node, nir.SumPool2d) else None)
        elif isinstance(node, nir.Flatten):
            out_type = node.output_type.get("output") if node.output_type else None
            if out_type is not None and np.asarray(out_type).size:
                y = flat.reshape(flat.shape[0], *np.asarray(out_type).astype(int).tolist())
            else:
                start = int(node.start_dim) + 1
                end = int(node.end_dim) + 1 if int(node.end_dim) >= 0 else int(node.end_dim)
                y = flat.flatten(start, end)
        else:  # pragma: no cover - filtered in __init__
            raise KdsnnError(f"NIR node {name!r}: unsupported type {type(node).__name__}")
        return y.view(t, -1, *y.shape[1:])

    @staticmethod
    def _if(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        r, th, vr = p["r"], p["v_threshold"], p["v_reset"]
        if tuple(r.shape) != tuple(x.shape[2:]) and r.numel() != 1:
            raise KdsnnError(f"IF population of shape {tuple(r.shape)} receives input of shape {tuple(x.shape[2:])}")
        v = torch.zeros_like(x[0])
        spikes = []
        for step in range(x.shape[0]):
            v = v + r * x[step]
            s = v > th
            v = torch.where(s, vr.expand_as(v), v)
            spikes.append(s.to(x.dtype))
        return torch.stack(spikes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        run = self.run(x)
        feats = {n: o.mean(0) for n, o in run.outputs.items() if isinstance(self.graph.nodes[n], nir.IF)}
        return ModelOutput(run.logits.float(), feats)
