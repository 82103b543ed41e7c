"""The fair dense baseline: a student's own PyTorch forward, the fast way (what the trainer runs).

BN folded into the convolutions (eval), float32, the T steps folded into the batch (the model's
own layout: one convolution per layer for all steps, direct-encoded first layer computed once),
the compiled IF kernels (kdsnn/if_kernels.py), channels-last when that is faster on this machine
(both are timed, the faster kept), under ``torch.inference_mode``. Its time does not depend on the
weights' values, so a trained or calibrated float student times what its integer graph would:
float32 holds that graph's sums exactly when every partial sum stays below 2**24
(:func:`float32_exact_bound` gives the bound the simulator's own range proof uses).
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from kdsnn import if_kernels
from kdsnn.neurons import IFNeuron

PAIRS = (("conv", "bn"), ("conv1", "bn1"), ("conv2", "bn2"))


def compiled_if(neuron: IFNeuron):
    """``neuron``'s forward through the compiled multi-step kernel (the trainer's forward pass) when
    autograd is off too, where IFNeuron itself steps in PyTorch ops."""
    p = neuron.params

    def forward(x_seq: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        if steps is not None:
            x_seq = x_seq.unsqueeze(0).expand(steps, *x_seq.shape)
        if not if_kernels.supported(x_seq):
            return IFNeuron.forward(neuron, x_seq)
        t, b = x_seq.shape[:2]
        step = x_seq[0]
        if x_seq.dim() == 5 and step.is_contiguous(memory_format=torch.channels_last) and not step.is_contiguous():
            h = torch.empty((t * b, *x_seq.shape[2:]), memory_format=torch.channels_last).view(x_seq.shape)
        else:
            h = torch.empty(x_seq.shape)
        s = torch.empty_like(h)
        if_kernels.if_forward(x_seq, h, s, p.threshold, p.reset == "hard", p.v_reset)
        return s
    return forward


def fold_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval) with every Conv2d → BatchNorm2d pair fused into one biased convolution
    and every IF population on the compiled kernel."""
    m = copy.deepcopy(model).eval()
    for mod in m.modules():
        if isinstance(mod, IFNeuron):
            mod.forward = compiled_if(mod)
    for mod in m.modules():
        for c, b in PAIRS:
            conv, bn = getattr(mod, c, None), getattr(mod, b, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(mod, c, fuse_conv_bn_eval(conv, bn))
                setattr(mod, b, nn.Identity())
        if isinstance(mod, nn.Sequential) and len(mod) == 2 and isinstance(mod[0], nn.Conv2d) \
                and isinstance(mod[1], nn.BatchNorm2d):  # a residual block's 1×1 shortcut
            mod[0], mod[1] = fuse_conv_bn_eval(mod[0], mod[1]), nn.Identity()
    return m


class DenseForward:
    """``model(x)`` the fast way; ``layout`` says which memory format won on this machine."""

    def __init__(self, model: nn.Module, x: torch.Tensor, repeats: int = 3) -> None:
        self.nchw = fold_bn(model)
        self.nhwc = fold_bn(model).to(memory_format=torch.channels_last)
        self.x, self.x_cl = x.contiguous(), x.contiguous(memory_format=torch.channels_last)
        times = {}
        for name in ("NCHW", "NHWC"):
            self.layout = name
            self()
            times[name] = min(_once(self) for _ in range(repeats))
        self.layout = min(times, key=times.get)

    def __call__(self) -> torch.Tensor:
        with torch.inference_mode():
            if self.layout == "NHWC":
                return self.nhwc(self.x_cl)
            return self.nchw(self.x)


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def float32_exact_bound(fast_net, timesteps: int, input_max: float) -> float:
    """log2 of the largest |membrane or partial sum| the integer graph can reach (the simulator's range proof:
    ``FastNet.dtype``); below 24, float32 computes the same integers in any order of addition."""
    reach = fast_net.reach(input_max)
    worst = float(np.max(np.maximum(np.abs(fast_net.v_lo) + (timesteps + 1) * reach,
                                    np.abs(fast_net.v_hi) + reach), initial=0.0))
    return float(np.log2(max(worst, 1.0)))
