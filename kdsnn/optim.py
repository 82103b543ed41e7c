"""Optimizer and learning-rate schedule of a training run, as a recipe names them.

The schedule is stepped once per iteration: a linear warm-up over ``warmup_epochs`` (from
lr/steps up to lr), then ``cosine`` (to 0 at the last iteration), ``step`` (×0.1 at 50 % and
75 % of the iterations after warm-up) or ``constant``. Its state (the iteration count) is
saved in the checkpoint, so a resumed run continues on the same curve.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from .errors import KdsnnError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")


def check(optimizer: str, schedule: str, warmup_epochs: float, epochs: int) -> None:
    """Refuse unknown names and a warm-up that does not fit in the run, in one line."""
    if optimizer not in OPTIMIZERS:
        raise KdsnnError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise KdsnnError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if not 0 <= warmup_epochs < epochs:
        raise KdsnnError(f"--warmup-epochs {warmup_epochs} must be >= 0 and below --epochs {epochs}")


def build_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float, momentum: float,
                    weight_decay: float, nesterov: bool) -> torch.optim.Optimizer:
    """SGD (with ``momentum``, optionally Nesterov) or AdamW (``momentum`` is its β₁)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=nesterov and momentum > 0)
    return torch.optim.AdamW(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The multiple of the base lr at iteration ``step`` (0-based) of ``total``, ``warmup`` of them warm-up."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "step":
        return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def build_schedule(optimizer: torch.optim.Optimizer, schedule: str, epochs: int, warmup_epochs: float,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration :class:`LambdaLR` following :func:`lr_factor`."""
    total = epochs * steps_per_epoch
    warmup = int(round(warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup, schedule))
