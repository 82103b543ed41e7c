"""``feature``: KDSNN's feature-based KD, the partial L2 of Heo et al. (ICCV 2019).

Per matched stage: student spike rate → connector (1×1 conv + BN) → ``s``; teacher pre-ReLU
feature ``t`` clipped below at a per-channel margin ``m`` (``t' = max(t, m)``); loss
``Σ (s − t')² · 1[(s > t') or (t' > 0)]`` — zero where the teacher is negative and the
student already below it (the poster's ``0 if S ≤ T ≤ 0``). Stage weights double from
shallow to deep (…, ¼, ½, 1); total ``CE + α · Σ_stage w·L / batch`` (α = 1e-3 as in Heo).

The margin is Heo's ``m = μ − σ·φ(μ/σ)/Φ(−μ/σ)`` (``−3σ`` when ``Φ(−μ/σ) ≤ 0.001``), the
mean of the negative part of a Gaussian; μ, σ are estimated per channel from the teacher's
features in each batch, since the tap is often a residual sum with no BN of its own.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..models.output import ModelOutput
from .base import DistillLoss, Shapes, match_stages, to_size


def partial_l2(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``Σ (s − t)² · 1[(s > t) or (t > 0)]``, summed over all elements."""
    mask = ((s > t) | (t > 0)).to(s.dtype)
    return ((s - t) ** 2 * mask).sum()


def gaussian_margin(t: torch.Tensor) -> torch.Tensor:
    """Per-channel expected value of the negative part, ``[1, C, 1, 1]``."""
    dims = [d for d in range(t.dim()) if d != 1]
    mu = t.mean(dims)
    sigma = t.std(dims).clamp_min(1e-6)
    normal = torch.distributions.Normal(0.0, 1.0)
    z = mu / sigma
    tail = normal.cdf(-z)
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    m = torch.where(tail > 0.001, mu - sigma * pdf / tail.clamp_min(1e-12), -3 * sigma)
    return m.view(1, -1, *([1] * (t.dim() - 2)))


class FeatureKD(DistillLoss):
    name = "feature"
    summary = "partial L2 between connected feature maps (KDSNN's feature-based KD)"
    default_alpha = 1e-3
    needs_features = True

    def __init__(self, student_shapes: Shapes, teacher_shapes: Shapes, alpha: float | None = None,
                 temperature: float = 4.0, label_smoothing: float = 0.0) -> None:
        super().__init__(student_shapes, teacher_shapes, alpha, temperature, label_smoothing)
        self.pairs = match_stages(student_shapes, teacher_shapes)
        self.connectors = nn.ModuleDict()
        for s_name, t_name in self.pairs:
            cs, ct = student_shapes[s_name][0], teacher_shapes[t_name][0]
            self.connectors[s_name] = nn.Sequential(nn.Conv2d(cs, ct, 1, bias=False), nn.BatchNorm2d(ct))
        n = len(self.pairs)
        self.weights = [2.0 ** (i - n + 1) for i in range(n)]

    def distill(self, s: ModelOutput, t: ModelOutput) -> torch.Tensor:
        total = s.logits.new_zeros(())
        for w, (s_name, t_name) in zip(self.weights, self.pairs, strict=True):
            tf = t.features[t_name].detach()
            sf = self.connectors[s_name](s.features[s_name])
            hw = (min(sf.shape[-2], tf.shape[-2]), min(sf.shape[-1], tf.shape[-1]))
            sf, tf = to_size(sf, hw), to_size(tf, hw)
            tf = torch.maximum(tf, gaussian_margin(tf))
            total = total + w * partial_l2(sf, tf) / sf.shape[0]
        return total
