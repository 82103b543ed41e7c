"""``response``: Hinton KD on the output: ``(1−α)·CE + α·τ²·KL(softmax(t/τ) ‖ softmax(s/τ))``.

The student's logits are its rate-coded output (mean membrane of the readout by default;
spike counts with ``--readout spike``). Here ``alpha`` mixes the two terms rather than
adding, as in Hinton et al.; KL is averaged over the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.output import ModelOutput
from .base import DistillLoss


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """``τ² · KL(softmax(t/τ) ‖ softmax(s/τ))``, batch mean."""
    return F.kl_div(F.log_softmax(student_logits / tau, 1), F.softmax(teacher_logits / tau, 1),
                    reduction="batchmean") * tau * tau


class ResponseKD(DistillLoss):
    name = "response"
    summary = "Hinton KD on the output logits (KDSNN's response-based KD)"
    default_alpha = 0.9  # Hinton et al.'s weighting; beat 0.5 on digits' held-out split (docs/benchmarks.md)

    def forward(self, s: ModelOutput, t: ModelOutput | None, labels: torch.Tensor):
        assert t is not None
        task = self.task(s, labels)
        dist = kd_kl(s.logits, t.logits.detach(), self.temperature)
        total = (1 - self.alpha) * task + self.alpha * dist
        return total, {"task": float(task.detach()), "distill": float(dist.detach())}
