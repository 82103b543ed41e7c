"""The one interface every distillation method implements.

A method is an ``nn.Module`` built from the student's and teacher's feature shapes (so its
connectors are registered parameters that the optimizer sees) and called as
``loss(student_out, teacher_out, labels) -> (total, parts)``, where ``parts`` maps the
name of each term to its value for logging.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.output import ModelOutput

Shapes = dict[str, tuple[int, ...]]


class DistillLoss(nn.Module):
    """Base class; subclasses set ``name``, ``summary``, ``default_alpha`` and implement :meth:`distill`."""

    name = "base"
    summary = ""  # one line for --help
    default_alpha = 0.0
    needs_teacher = True
    needs_features = False  # whether it reads the feature taps of both networks

    def __init__(self, student_shapes: Shapes, teacher_shapes: Shapes, alpha: float | None = None,
                 temperature: float = 4.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.alpha = self.default_alpha if alpha is None else float(alpha)
        self.temperature = float(temperature)
        self.label_smoothing = float(label_smoothing)

    def task(self, s: ModelOutput, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on the labels (label-smoothed when the recipe says so)."""
        return F.cross_entropy(s.logits, labels, label_smoothing=self.label_smoothing)

    def distill(self, s: ModelOutput, t: ModelOutput) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, s: ModelOutput, t: ModelOutput | None,
                labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        task = self.task(s, labels)
        if not self.needs_teacher:
            return task, {"task": float(task.detach())}
        assert t is not None
        dist = self.distill(s, t)
        total = task + self.alpha * dist
        return total, {"task": float(task.detach()), "distill": float(dist.detach())}


def match_stages(student_shapes: Shapes, teacher_shapes: Shapes) -> list[tuple[str, str]]:
    """Pair the deepest stages of each network, in order (the shallower surplus is unused)."""
    s_names, t_names = list(student_shapes), list(teacher_shapes)
    k = min(len(s_names), len(t_names))
    return list(zip(s_names[len(s_names) - k:], t_names[len(t_names) - k:], strict=True))


def to_size(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Average-pool a map down to ``hw`` when it is larger (never upsample)."""
    return x if tuple(x.shape[-2:]) == tuple(hw) else F.adaptive_avg_pool2d(x, hw)
