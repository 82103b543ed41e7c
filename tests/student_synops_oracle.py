"""Test oracle: SynOps counted by walking the *training* model (a ``SpikingNet``) with hooks.

A second method beside the graph counter of :mod:`kdsnn.deploy.synops` (which reads the
deployable NIR graph): the two must agree on the same spikes. Kept with the tests because no
user-facing path counts from the training model; deployment counts from the graph only.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kdsnn.deploy.synops import SynopsCount, conv_fanout, pool_back
from kdsnn.errors import KdsnnError
from kdsnn.export.node_shapes import pair


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _conv_pads(padding, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """Leading (top, left) padding of a PyTorch conv ('same': the odd extra pixel goes at the end)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        return tuple(dilation[i] * (kernel[i] - 1) // 2 for i in range(2))  # type: ignore[return-value]
    return pair(padding)


def count_student(model: nn.Module, x: torch.Tensor) -> SynopsCount:
    """Count SynOps/MACs of a student ``SpikingNet`` forward on ``x`` from its own spike maps (hooks).

    Layers are named by module path (``blocks.3.conv1``), in network order.
    """
    from kdsnn.models.spiking import AvgPool, ConvBNIF, Flatten, Readout, SpikingBasicBlock, SpikingNet
    from kdsnn.neurons import IFNeuron

    if not isinstance(model, SpikingNet):
        raise KdsnnError("count_student needs a student SNN (SpikingNet); use ann_macs for ANNs")
    captured: dict[nn.Module, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, _i, o: captured.__setitem__(mod, o.detach()))
             for m in model.modules() if isinstance(m, IFNeuron)]
    first_in: list[torch.Tensor] = []
    hooks.append(model.blocks[0].register_forward_pre_hook(lambda _m, a: first_in.append(a[0].detach())))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    t = model.timesteps
    if first_in:
        seq = first_in[0]
    elif x.dim() == 4:  # direct encoding, first block run once on the static input
        seq = x.unsqueeze(0).expand(t, *x.shape)
    else:
        seq = x
    analog = x.dim() == 4 and model.encoding == "direct" or not _is_binary(seq)
    out = SynopsCount(batch=int(seq.shape[1]))
    chain: list[tuple[str, tuple[int, ...], nn.Module | None]] = []  # (kind, input shape, module)

    def count(name: str, src: torch.Tensor, fan: torch.Tensor, is_input: bool) -> None:
        for kind, shape, mod in reversed(chain):
            if kind == "flatten":
                fan = fan.reshape(shape)
            else:
                p = mod.pool  # type: ignore[union-attr]
                fan = pool_back(fan, shape, p.kernel_size, p.stride or p.kernel_size, p.padding)
        src = src.to(torch.float64)
        if is_input and analog:
            out.macs_effective[name] = int(((src != 0).to(torch.float64) * fan).sum())
            out.macs_dense[name] = int(fan.sum()) * src.shape[0] * src.shape[1]
        else:
            out.synops[name] = int((src * fan).sum())

    def conv_fan(conv: nn.Conv2d, in_shape: tuple[int, ...]) -> torch.Tensor:
        c, h, w = in_shape
        pads = _conv_pads(conv.padding, conv.kernel_size, conv.dilation)
        ho = (h + 2 * pads[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) // conv.stride[0] + 1
        wo = (w + 2 * pads[1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) // conv.stride[1] + 1
        m = conv_fanout((h, w), (ho, wo), conv.kernel_size, conv.stride, pads, conv.dilation)
        return (conv.out_channels // conv.groups) * m.expand(c, h, w).clone()

    src, is_input, shape = seq, True, tuple(seq.shape[2:])
    for i, block in enumerate(model.blocks):
        if isinstance(block, (AvgPool, Flatten)):
            kind = "pool" if isinstance(block, AvgPool) else "flatten"
            chain.append((kind, shape, block if kind == "pool" else None))
            if kind == "pool":
                p = block.pool
                k, s = pair(p.kernel_size), pair(p.stride or p.kernel_size)
                shape = (shape[0], (shape[1] - k[0]) // s[0] + 1, (shape[2] - k[1]) // s[1] + 1)
            else:
                shape = (int(np.prod(shape)),)
            continue
        if isinstance(block, ConvBNIF):
            count(f"blocks.{i}.conv", src, conv_fan(block.conv, shape), is_input)
            src = captured[block.neuron]
        elif isinstance(block, SpikingBasicBlock):
            count(f"blocks.{i}.conv1", src, conv_fan(block.conv1, shape), is_input)
            mid, pending = captured[block.neuron1], list(chain)
            chain.clear()
            count(f"blocks.{i}.conv2", mid, conv_fan(block.conv2, tuple(mid.shape[2:])), False)
            chain.extend(pending)
            sc = (torch.ones(shape, dtype=torch.float64) if block.shortcut is None
                  else conv_fan(block.shortcut[0], shape))
            count(f"blocks.{i}.shortcut", src, sc, is_input)
            src = captured[block.neuron2]
        elif isinstance(block, Readout):
            count(f"blocks.{i}.fc", src, torch.full(shape, float(block.fc.out_features), dtype=torch.float64), is_input)
            src = captured[block.neuron] if block.neuron is not None else src
        else:
            raise KdsnnError(f"block {i} ({type(block).__name__}) is not known to the SynOps counter")
        chain.clear()
        is_input, shape = False, tuple(src.shape[2:])
    return out


