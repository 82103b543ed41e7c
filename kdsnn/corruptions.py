"""The papers' evaluation corruptions, applied to images in [0, 1] before normalization.

``gaussian:σ`` (CIFAR-10, Table 2), and the MNIST-variations of Larochelle et al. (2007):
``background`` (uniform random background where the digit is dark), ``noise`` (random
pixel noise: a fraction of pixels replaced by uniform values), ``rotation`` (uniform angle
in [0, 2π)), ``rotation_background`` (both). Each is seeded so evaluation is repeatable.
"""
from __future__ import annotations

import math

import torch
import torchvision.transforms.functional as TF

from .errors import KdsnnError

KINDS = ("gaussian", "background", "noise", "rotation", "rotation_background")
LEVELS = {"gaussian": 0.03, "noise": 0.2}  # the kinds that take a level (σ, fraction of pixels) and its default


def parse(spec: str | None) -> tuple[str, float] | None:
    """``"gaussian:0.03"`` → ``("gaussian", 0.03)``; ``None``/``"none"`` → no corruption."""
    if spec in (None, "", "none"):
        return None
    kind, _, value = spec.partition(":")
    if kind not in KINDS:
        raise KdsnnError(f"unknown noise {kind!r}; choose one of {', '.join(KINDS)} (e.g. gaussian:0.03)")
    if value and kind not in LEVELS:
        raise KdsnnError(f"noise {kind} takes no level (got {spec!r}); write --noise {kind}")
    try:
        level = float(value) if value else LEVELS.get(kind, 1.0)
    except ValueError:
        raise KdsnnError(f"noise level in {spec!r} is not a number") from None
    if not 0 <= level < math.inf:
        raise KdsnnError(f"noise level must be a finite number >= 0, got {level}")
    if kind == "noise" and level > 1:
        raise KdsnnError(f"noise:{value} replaces a fraction of the pixels: give a fraction in [0, 1], got {level}")
    return kind, level


def apply(x: torch.Tensor, kind: str, level: float, generator: torch.Generator) -> torch.Tensor:
    """Corrupt a batch ``[B, C, H, W]`` of images in [0, 1]; returns a new tensor in [0, 1]."""
    if kind == "gaussian":
        return (x + level * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    if kind == "noise":
        mask = torch.rand(x.shape, generator=generator) < level
        return torch.where(mask, torch.rand(x.shape, generator=generator), x)
    out = x
    if kind.startswith("rotation"):
        angles = torch.rand(x.shape[0], generator=generator) * 360.0
        out = torch.stack([TF.rotate(img, float(a)) for img, a in zip(x, angles, strict=True)])
    if kind.endswith("background"):
        bg = torch.rand(x.shape, generator=generator)
        out = torch.maximum(out, bg * (out < 0.1))
    return out
