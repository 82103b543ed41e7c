"""The deployable student: a ``nir.NIRGraph`` with BN folded and pooling made sum-pooling.

NIR is the hub of the tool chain: quantization, the NIR file, ONNX, netx, the PyTorch graph
runtime and the reference simulator all start from this graph. Conventions:

- ``Input`` → ``Conv2d``/``Affine`` (BN folded in, with bias) → ``IF`` (``r = 1``,
  ``v_threshold = θ``, ``v_reset = 0``) → … → ``Output``.
- Average pooling becomes ``SumPool2d`` and its ``1/k²`` is multiplied into the weights of
  the synaptic layers it feeds (exact, and it keeps integer networks integer).
- Residual sums are several edges into one ``IF`` node (NIR sums inputs); an identity
  shortcut goes through a ``Scale`` node (weight 1, quantized like any other synapse).
- The readout ``Affine`` feeds ``Output`` directly (``readout = membrane``: logits are the
  mean over T of its output) or through an ``IF`` (``readout = spike``: spike counts).
- ``graph.metadata["kdsnn"]`` is a JSON string: dt, reset, T, encoding, readout,
  preprocessing, integer mode, input scale and per-layer quantization.
"""
from __future__ import annotations

import json
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from kdsnn.errors import KdsnnError
from kdsnn.models.spiking import AvgPool, ConvBNIF, Flatten, Readout, SpikingBasicBlock, SpikingNet
from kdsnn.neurons import IFParams

from .fold import fold_bn


def get_meta(graph: nir.NIRGraph) -> dict[str, Any]:
    """Our metadata (validated: :mod:`kdsnn.export.metadata`), or ``{}`` for a graph another tool wrote."""
    from .metadata import nir_meta

    raw = (graph.metadata or {}).get("kdsnn")
    return {} if raw is None else nir_meta(raw)


def set_meta(graph: nir.NIRGraph, meta: dict[str, Any]) -> None:
    graph.metadata = {**(graph.metadata or {}), "kdsnn": json.dumps(meta)}


class _Builder:
    def __init__(self, input_shape: tuple[int, ...], soft_reset_ok: bool = False) -> None:
        self.soft_reset_ok = soft_reset_ok
        self.nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
        self.edges: list[tuple[str, str]] = []
        self.shape: dict[str, tuple[int, ...]] = {"input": tuple(input_shape)}
        self.pool_factor: dict[str, float] = {"input": 1.0}
        self.counts: dict[str, int] = {}

    def name(self, prefix: str) -> str:
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        return f"{prefix}{self.counts[prefix]}"

    def add(self, prefix: str, node: nir.NIRNode, sources: list[str], shape: tuple[int, ...],
            factor: float = 1.0) -> str:
        name = self.name(prefix)
        self.nodes[name] = node
        self.edges += [(s, name) for s in sources]
        self.shape[name] = tuple(int(v) for v in shape)
        self.pool_factor[name] = factor
        return name

    def conv(self, src: str, conv: nn.Conv2d, bn: nn.Module | None) -> str:
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise KdsnnError(f"conv after {src}: groups/dilation/padding mode other than the default "
                             "cannot be exported")
        w, b = fold_bn(conv.weight, conv.bias, bn) if bn is not None else (
            conv.weight.detach().double(),
            torch.zeros(conv.out_channels, dtype=torch.float64) if conv.bias is None else conv.bias.detach().double())
        w = w * self.pool_factor[src]
        c, h, wd = self.shape[src]
        node = nir.Conv2d(input_shape=(h, wd), weight=w.numpy(), stride=tuple(conv.stride), padding=tuple(conv.padding),
                          dilation=(1, 1), groups=1, bias=b.numpy())
        return self.add("conv", node, [src], tuple(node.output_type["output"]))

    def neuron(self, sources: list[str], shape: tuple[int, ...], p: IFParams) -> str:
        if p.reset != "hard" and not self.soft_reset_ok:
            raise KdsnnError("soft reset (subtract θ) cannot be expressed by NIR's IF (reset to v_reset): "
                             "train with --reset hard to export")
        ones = np.ones(shape)
        node = nir.IF(r=ones.copy(), v_threshold=ones * p.threshold, v_reset=ones * p.v_reset)
        return self.add("if", node, sources, shape)

    def identity(self, src: str) -> str:
        shape = self.shape[src]
        return self.add("skip", nir.Scale(scale=np.full(shape, self.pool_factor[src])), [src], shape)


def _block(b: _Builder, block: nn.Module, src: str) -> str:
    if isinstance(block, ConvBNIF):
        conv = b.conv(src, block.conv, block.bn)
        return b.neuron([conv], b.shape[conv], block.neuron.params)
    if isinstance(block, SpikingBasicBlock):
        c1 = b.conv(src, block.conv1, block.bn1)
        n1 = b.neuron([c1], b.shape[c1], block.neuron1.params)
        c2 = b.conv(n1, block.conv2, block.bn2)
        if block.shortcut is None:
            sc = b.identity(src)
        else:
            sc = b.conv(src, block.shortcut[0], block.shortcut[1])
        return b.neuron([c2, sc], b.shape[c2], block.neuron2.params)
    if isinstance(block, AvgPool):
        k, s = block.kernel, tuple(int(v) for v in np.broadcast_to(block.pool.stride, (2,)))
        c, h, w = b.shape[src]
        out = (c, (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1)
        node = nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array([0, 0]))
        node.input_type = {"input": np.array(b.shape[src])}
        node.output_type = {"output": np.array(out)}
        return b.add("pool", node, [src], out, factor=b.pool_factor[src] / (k[0] * k[1]))
    if isinstance(block, Flatten):
        shape = b.shape[src]
        node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
        return b.add("flatten", node, [src], (int(np.prod(shape)),), factor=b.pool_factor[src])
    if isinstance(block, Readout):
        w = block.fc.weight.detach().double() * b.pool_factor[src]
        node = nir.Affine(weight=w.numpy(), bias=block.fc.bias.detach().double().numpy())
        fc = b.add("fc", node, [src], (block.fc.out_features,))
        if block.mode == "spike":
            assert block.neuron is not None
            return b.neuron([fc], (block.fc.out_features,), block.neuron.params)
        return fc
    raise KdsnnError(f"layer {type(block).__name__} cannot be exported to NIR")


def student_to_graph(model: SpikingNet, preprocessing: dict | None = None, extra: dict | None = None,
                     soft_reset_ok: bool = False) -> nir.NIRGraph:
    """Fold BN and build the float deployable graph of a trained student (eval-mode semantics).

    A soft-reset student (``--reset soft``) is refused unless ``soft_reset_ok``: NIR ≥ 1.0.6's IF
    cannot state it, so only kdsnn's metadata (``reset = "soft"``) carries it, for consumers that
    write it in a form that can (``kdsnn export --for speck|xylo``: nir 1.0.4 files)."""
    if not isinstance(model, SpikingNet):
        raise KdsnnError("only student SNNs (kdsnn distill checkpoints) can be exported; teachers are ANNs")
    first = model.blocks[0]
    if isinstance(first, ConvBNIF):
        input_shape = (first.conv.in_channels, *_infer_hw(model))
    else:
        raise KdsnnError("the student must start with a convolution block")
    b = _Builder(input_shape, soft_reset_ok)
    src = "input"
    resets = set()
    for block in model.blocks:
        for m in block.modules():
            if hasattr(m, "params") and isinstance(m.params, IFParams):
                resets.add(m.params.reset)
        src = _block(b, block, src)
    out_shape = b.shape[src]
    b.nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    b.edges.append((src, "output"))
    graph = nir.NIRGraph(nodes=b.nodes, edges=b.edges, type_check=False)
    readout = "spike" if isinstance(graph.nodes[src], nir.IF) else "membrane"
    if len(resets) > 1:
        raise KdsnnError("the student mixes hard and soft reset; one reset per network can be exported")
    meta = {"producer": "kdsnn", "dt": 1, "reset": resets.pop() if resets else "hard", "v_reset": 0.0,
            "timesteps": model.timesteps, "encoding": model.encoding, "readout": readout,
            "preprocessing": preprocessing or {}, "integer": False, "input_scale": None, "quantization": {},
            **(extra or {})}
    set_meta(graph, meta)
    return graph


def _infer_hw(model: SpikingNet) -> tuple[int, int]:
    hw = getattr(model, "input_hw", None)
    if hw is None:
        raise KdsnnError("the student does not record its input size; rebuild it from its checkpoint")
    return tuple(hw)  # type: ignore[return-value]
