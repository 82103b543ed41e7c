"""``lasnn``: LaSNN's layer-wise distillation with attention maps.

For every matched stage (teacher and student stages paired from the deepest down), the
attention map ``at(f) = normalize(mean_c |f|^p)`` (p = 2, flattened per sample, L2-normed)
of the student's spike-rate feature is pulled towards the teacher's:
``CE + α · Σ_stage mean_batch ‖at(s) − at(t)‖²`` (α = 1), the larger map pooled to the
smaller. Zagoruyko & Komodakis write ``β/2 · mean((at(s) − at(t))²)`` with β = 1000 over
32×32 maps, i.e. about 1 × the per-sample squared distance; summing over positions keeps
that weight right for the small maps of SNN students (at 4×4, a mean would weigh 64×
more). All stages are trained jointly with the task loss; attention
needs no connector, which is what bridges the ANN's and SNN's different channel counts.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.output import ModelOutput
from .base import DistillLoss, Shapes, match_stages, to_size


def attention_map(f: torch.Tensor, p: int = 2) -> torch.Tensor:
    """``normalize(mean_c |f|^p)`` flattened: ``[B, H·W]`` with unit L2 norm per sample."""
    return F.normalize(f.abs().pow(p).mean(1).flatten(1), dim=1)


class LayerwiseAttention(DistillLoss):
    name = "lasnn"
    summary = "layer-wise attention-map distillation (LaSNN)"
    default_alpha = 1.0
    needs_features = True

    def __init__(self, student_shapes: Shapes, teacher_shapes: Shapes, alpha: float | None = None,
                 temperature: float = 4.0, label_smoothing: float = 0.0) -> None:
        super().__init__(student_shapes, teacher_shapes, alpha, temperature, label_smoothing)
        self.pairs = match_stages(student_shapes, teacher_shapes)

    def distill(self, s: ModelOutput, t: ModelOutput) -> torch.Tensor:
        total = s.logits.new_zeros(())
        for s_name, t_name in self.pairs:
            sf, tf = s.features[s_name], t.features[t_name].detach()
            hw = (min(sf.shape[-2], tf.shape[-2]), min(sf.shape[-1], tf.shape[-1]))
            diff = attention_map(to_size(sf, hw)) - attention_map(to_size(tf, hw))
            total = total + diff.pow(2).sum(1).mean()
        return total
