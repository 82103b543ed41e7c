"""The integrate-and-fire neuron of DESIGN.md, as a pure function plus thin modules.

Discrete time, per neuron and step ``t``::

    h[t] = v[t-1] + x[t]
    s[t] = 1  iff  h[t] > θ                 (strict)
    v[t] = v_reset where s[t] = 1 else h[t]  (hard reset, default)
    v[t] = h[t] − θ·s[t]                     (soft reset, option)

Training, export and both simulators refer to :func:`if_step` for the dynamics.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .errors import KdsnnError
from .surrogate import SURROGATES, spike

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
    """Run IF over ``x_seq`` of shape ``[T, B, ...]``; returns (spikes ``[T, B, ...]``, last membrane)."""
    v = torch.zeros_like(x_seq[0]) if v0 is None else v0
    out = []
    for t in range(x_seq.shape[0]):
        s, v = if_step(x_seq[t], v, p)
        out.append(s)
    return torch.stack(out), v


class IFNeuron(nn.Module):
    """Multi-step IF layer: ``[T, B, ...]`` currents in, ``[T, B, ...]`` spikes out.

    State lives inside ``forward`` (nothing to reset between batches); :meth:`step` gives the
    single-step, explicit-state form for streaming.
    """

    def __init__(self, params: IFParams | None = None) -> None:
        super().__init__()
        self.params = params or IFParams()

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return if_multistep(x_seq, self.params)[0]

    def step(self, x: torch.Tensor, v: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step with explicit state; ``v=None`` starts from rest (``v = 0``)."""
        return if_step(x, torch.zeros_like(x) if v is None else v, self.params)

    def extra_repr(self) -> str:
        p = self.params
        return f"threshold={p.threshold}, reset={p.reset}, surrogate={p.surrogate}"
