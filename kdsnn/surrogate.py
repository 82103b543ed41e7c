"""Surrogate gradients for the Heaviside spike function.

Forward is always the exact step ``x > 0`` (strict, as in the IF contract); backward
replaces its zero-almost-everywhere derivative with a smooth pseudo-derivative ``g'(x)``.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .errors import KdsnnError


def rectangular_grad(x: torch.Tensor, width: float) -> torch.Tensor:
    """Boxcar: ``1/width`` where ``|x| < width/2``, else 0."""
    return (x.abs() < width / 2).to(x.dtype) / width


def sigmoid_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Derivative of ``sigmoid(alpha·x)``: ``alpha·σ(αx)·(1−σ(αx))`` (SpikingJelly's default, α = 4)."""
    sg = torch.sigmoid(alpha * x)
    return alpha * sg * (1 - sg)


def arctan_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Derivative of ``atan(π/2·α·x)/π + 1/2``: ``α/2 / (1 + (π/2·α·x)²)``."""
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)


def _sigmoid_grad_(x: torch.Tensor, alpha: float) -> torch.Tensor:
    x.mul_(alpha).sigmoid_()
    return x.addcmul_(x, x, value=-1).mul_(alpha)


def _arctan_grad_(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return x.mul_(math.pi / 2 * alpha).square_().add_(1).reciprocal_().mul_(alpha / 2)


def _rectangular_grad_(x: torch.Tensor, width: float) -> torch.Tensor:
    return x.abs_().lt_(width / 2).div_(width)


# The same formulas, overwriting their argument: training's hot path works on tensors of
# T·B·C·H·W elements, where every avoided allocation and pass over memory counts.
SURROGATES_INPLACE = {"rectangular": _rectangular_grad_, "sigmoid": _sigmoid_grad_, "arctan": _arctan_grad_}

SURROGATES: dict[str, tuple[Callable[[torch.Tensor, float], torch.Tensor], float]] = {
    "rectangular": (rectangular_grad, 1.0),
    "sigmoid": (sigmoid_grad, 4.0),
    "arctan": (arctan_grad, 2.0),
}


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, name: str, param: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.name, ctx.param = name, param
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        fn, _ = SURROGATES[ctx.name]
        return grad_out * fn(x, ctx.param), None, None


def spike(x: torch.Tensor, surrogate: str = "sigmoid", param: float | None = None) -> torch.Tensor:
    """Heaviside ``x > 0`` with the named surrogate gradient (``param`` = width or slope)."""
    if surrogate not in SURROGATES:
        raise KdsnnError(f"unknown surrogate {surrogate!r}; choose one of {', '.join(SURROGATES)}")
    if param is None:
        param = SURROGATES[surrogate][1]
    if not torch.is_grad_enabled() or not x.requires_grad:
        return (x > 0).to(x.dtype)
    return _SpikeFunction.apply(x, surrogate, float(param))
