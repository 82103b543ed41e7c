"""The integrate-and-fire neuron of DESIGN.md, as a pure function plus thin modules.

Discrete time, per neuron and step ``t``::

    h[t] = v[t-1] + x[t]
    s[t] = 1  iff  h[t] > θ                 (strict)
    v[t] = v_reset where s[t] = 1 else h[t]  (hard reset, default)
    v[t] = h[t] − θ·s[t]                     (soft reset, option)

This is the training side: :func:`if_step` and the fused multi-step node (compiled CPU kernels in
:mod:`kdsnn.if_kernels`) with surrogate gradients. The one reference of these dynamics is
:class:`kdsnn.neuron_models.IFModel`'s ``step``, which the graph runtime calls; this module, both
simulator paths, ONNX and Lava are held to it by tests/test_neuron_conformance.py.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import if_kernels
from .errors import KdsnnError
from .surrogate import SURROGATES, SURROGATES_INPLACE, spike

RESET_MODES = ("hard", "soft")


@dataclass(frozen=True)
class IFParams:
    """Parameters of an IF population; stored in checkpoints as a plain dict."""

    threshold: float = 1.0
    reset: str = "hard"
    v_reset: float = 0.0
    surrogate: str = "sigmoid"
    surrogate_param: float | None = None
    detach_reset: bool = False

    def __post_init__(self) -> None:
        if self.reset not in RESET_MODES:
            raise KdsnnError(f"unknown reset mode {self.reset!r}; choose 'hard' or 'soft'")
        if self.surrogate not in SURROGATES:
            raise KdsnnError(f"unknown surrogate {self.surrogate!r}; choose one of {', '.join(SURROGATES)}")

    def to_dict(self) -> dict:
        return asdict(self)


def check_options(threshold: float, surrogate_param: float | None) -> None:
    """Refuse IF options no student can train with, naming the flag: a threshold at or below 0 (the neuron fires
    at every step), NaN or infinite (it never fires), and a surrogate slope or width at or below 0 (no gradient)."""
    if not 0 < threshold < math.inf:
        raise KdsnnError(f"--threshold must be a finite number > 0, got {threshold}")
    if surrogate_param is not None and not 0 < surrogate_param < math.inf:
        raise KdsnnError(f"--surrogate-param must be a finite number > 0 (the surrogate's slope or width), "
                         f"got {surrogate_param}")


def if_step(x: torch.Tensor, v: torch.Tensor, p: IFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """One IF step: input current ``x``, membrane ``v`` → (spikes, new membrane)."""
    h = v + x
    s = spike(h - p.threshold, p.surrogate, p.surrogate_param)
    s_reset = s.detach() if p.detach_reset else s
    if p.reset == "hard":
        v_new = h * (1 - s_reset) + p.v_reset * s_reset
    else:
        v_new = h - p.threshold * s_reset
    return s, v_new


def if_multistep(
    x_seq: torch.Tensor, p: IFParams, v0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run IF over ``x_seq`` ``[T, B, ...]`` from ``v0`` (rest by default): :func:`if_step` looped
    over T, with autograd through every step and the final membrane. Returns (spikes
    ``[T, B, ...]``, last membrane). :class:`IFNeuron` trains with the fused equivalent."""
    v = torch.zeros_like(x_seq[0]) if v0 is None else v0
    out = []
    for t in range(x_seq.shape[0]):
        s, v = if_step(x_seq[t], v, p)
        out.append(s)
    return torch.stack(out), v


def _empty_sequence(x_seq: torch.Tensor) -> torch.Tensor:
    """An uninitialized ``[T, B, ...]`` tensor laid out like one step of ``x_seq``: channels-last
    maps stay channels-last (also when ``x_seq`` is one step expanded over T), so the next
    convolution reads them without a reorder."""
    step = x_seq[0]
    if x_seq.dim() == 5 and step.is_contiguous(memory_format=torch.channels_last) and not step.is_contiguous():
        t, b = x_seq.shape[:2]
        flat = torch.empty((t * b, *x_seq.shape[2:]), dtype=x_seq.dtype, device=x_seq.device,
                           memory_format=torch.channels_last)
        return flat.view(x_seq.shape)
    return torch.empty(x_seq.shape, dtype=x_seq.dtype, device=x_seq.device)


class _MultiStepIF(torch.autograd.Function):
    """All T steps in one autograd node: forward keeps only the pre-reset membranes ``h[t]``;
    backward runs the recurrence in reverse by hand. Same values and gradients as
    :func:`if_multistep`, with a fraction of its autograd overhead and memory."""

    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, p: IFParams, static_steps: int | None = None) -> torch.Tensor:  # type: ignore[override]
        """``static_steps``: ``x_seq`` is one step's input ``[B, ...]``, fed that many times
        (direct encoding); its gradient is then the sum over steps, formed in the kernel."""
        ctx.static = static_steps is not None
        if ctx.static:
            x_seq = x_seq.unsqueeze(0).expand(static_steps, *x_seq.shape)
        h_all = _empty_sequence(x_seq)
        s_all = torch.empty_like(h_all)
        if if_kernels.supported(x_seq):  # CPU: one compiled pass
            if_kernels.if_forward(x_seq, h_all, s_all, p.threshold, p.reset == "hard", p.v_reset)
        else:
            _forward_steps(x_seq, h_all, s_all, p)
        ctx.save_for_backward(h_all, s_all)
        ctx.p = p
        return s_all

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):  # type: ignore[override]
        h_all, s_all = ctx.saved_tensors
        p: IFParams = ctx.p
        param = SURROGATES[p.surrogate][1] if p.surrogate_param is None else p.surrogate_param
        if h_all.is_cuda:
            grad = _backward_whole_sequence(h_all, s_all, grad_s, p, param)
        elif if_kernels.supported(h_all):
            return if_kernels.if_backward(h_all, grad_s, p.threshold, p.reset == "hard", p.v_reset, p.detach_reset,
                                          p.surrogate, param, summed=ctx.static), None, None
        else:
            grad = _backward_step_buffers(h_all, s_all, grad_s, p, param)
        return (grad.sum(0) if ctx.static else grad), None, None


def _forward_steps(x_seq: torch.Tensor, h_all: torch.Tensor, s_all: torch.Tensor, p: IFParams) -> None:
    """The recurrence with PyTorch ops, one step at a time, into ``h_all`` and ``s_all`` (CUDA, other dtypes)."""
    fired = torch.empty(x_seq.shape[1:], dtype=torch.bool, device=x_seq.device)
    v = torch.empty_like(h_all[0])
    h_all[0].copy_(x_seq[0])
    for t in range(x_seq.shape[0]):
        h = h_all[t]
        torch.gt(h, p.threshold, out=fired)
        s_all[t].copy_(fired)
        if t + 1 < x_seq.shape[0]:
            if p.reset == "hard":
                torch.where(fired, torch.tensor(p.v_reset, dtype=h.dtype), h, out=v)
            else:
                torch.sub(h, s_all[t], alpha=p.threshold, out=v)
            torch.add(v, x_seq[t + 1], out=h_all[t + 1])


def _dv_dh_(dv: torch.Tensor, h: torch.Tensor, s: torch.Tensor, g: torch.Tensor, p: IFParams) -> torch.Tensor | None:
    """dv[t]/dh[t] into ``dv`` (None when it is 1: soft reset with the reset detached)."""
    if p.reset == "hard":  # v = h·(1−s) + v_reset·s
        if p.detach_reset:
            return torch.sub(1, s, out=dv)
        return torch.sub(p.v_reset, h, out=dv).mul_(g).add_(1).sub_(s)
    if p.detach_reset:     # v = h − θ·s
        return None
    return torch.mul(g, -p.threshold, out=dv).add_(1)


def _backward_step_buffers(h_all, s_all, grad_s, p: IFParams, param: float) -> torch.Tensor:
    """CPU: one step at a time in two reused buffers. Fresh whole-sequence temporaries cost
    page faults on every call there (large allocations are not cached)."""
    surrogate_ = SURROGATES_INPLACE[p.surrogate]
    grad_x = torch.empty_like(h_all)
    g = torch.empty_like(h_all[0])
    dv = torch.empty_like(h_all[0])
    last = h_all.shape[0] - 1
    for t in range(last, -1, -1):
        surrogate_(torch.sub(h_all[t], p.threshold, out=g), param)
        torch.mul(grad_s[t], g, out=grad_x[t])           # dL/dh[t] through this step's spike
        if t < last:                                      # ... plus through v[t] into h[t+1]
            d = _dv_dh_(dv, h_all[t], s_all[t], g, p)
            if d is None:
                grad_x[t].add_(grad_x[t + 1])
            else:
                grad_x[t].addcmul_(grad_x[t + 1], d)
    return grad_x


def _backward_whole_sequence(h_all, s_all, grad_s, p: IFParams, param: float) -> torch.Tensor:
    """CUDA: elementwise work on all steps at once (fewer kernel launches; the caching
    allocator makes temporaries cheap); only the recurrence loops over T."""
    g = SURROGATES_INPLACE[p.surrogate](h_all - p.threshold, param)
    d = _dv_dh_(torch.empty_like(h_all), h_all, s_all, g, p)
    grad_x = g.mul_(grad_s)
    for t in range(h_all.shape[0] - 2, -1, -1):
        if d is None:
            grad_x[t].add_(grad_x[t + 1])
        else:
            grad_x[t].addcmul_(grad_x[t + 1], d[t])
    return grad_x


class IFNeuron(nn.Module):
    """Multi-step IF layer: ``[T, B, ...]`` currents in, ``[T, B, ...]`` spikes out.

    State lives inside ``forward`` (nothing to reset between batches); :meth:`step` gives the
    single-step, explicit-state form for streaming.
    """

    def __init__(self, params: IFParams | None = None) -> None:
        super().__init__()
        self.params = params or IFParams()

    def forward(self, x_seq: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """``[T, B, ...]`` currents → spikes; with ``steps``, ``x_seq`` is one step's current
        ``[B, ...]`` fed at each of ``steps`` steps (direct encoding), whose gradient in training
        is then summed over the steps inside the fused node."""
        if x_seq.requires_grad and torch.is_grad_enabled():
            return _MultiStepIF.apply(x_seq, self.params, steps)
        if steps is not None:
            x_seq = x_seq.unsqueeze(0).expand(steps, *x_seq.shape)
        return if_multistep(x_seq, self.params)[0]

    def step(self, x: torch.Tensor, v: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step with explicit state; ``v=None`` starts from rest (``v = 0``)."""
        return if_step(x, torch.zeros_like(x) if v is None else v, self.params)

    def extra_repr(self) -> str:
        p = self.params
        return f"threshold={p.threshold}, reset={p.reset}, surrogate={p.surrogate}"
