"""Distillation methods, chosen by name; all share :class:`DistillLoss`'s call signature."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import KdsnnError
from .base import DistillLoss
from .feature import FeatureKD
from .lasnn import LayerwiseAttention
from .none import NoDistill
from .response import ResponseKD

METHODS: dict[str, type[DistillLoss]] = {c.name: c for c in (NoDistill, ResponseKD, FeatureKD, LayerwiseAttention)}

DEFAULT_METHOD = "response"  # the one default of `distill --kd` and TrainConfig.kd
DEMO_METHOD = "feature"  # what `kdsnn demo` distills with: the demo shows feature KD


def methods_help() -> str:
    """The ``--kd`` help text, generated from :data:`METHODS` (the default marked)."""
    items = "; ".join(f"{name}: {cls.summary}" for name, cls in METHODS.items())
    alone = ", ".join(name for name, cls in METHODS.items() if not cls.needs_teacher)
    return f"{items}. Default: {DEFAULT_METHOD}. Every method but {alone} needs --teacher"


def check_method(name: str) -> type[DistillLoss]:
    """The method called ``name``, or a one-line refusal listing the methods (before any work is done)."""
    if name not in METHODS:
        raise KdsnnError(f"unknown distillation method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def feature_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes of a model's feature taps, from one forward pass in eval mode."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(example[:2])
    model.train(was_training)
    return {k: tuple(v.shape[1:]) for k, v in out.features.items()}


def build_loss(name: str, student: nn.Module, teacher: nn.Module | None, example: torch.Tensor,
               alpha: float | None = None, temperature: float = 4.0, label_smoothing: float = 0.0) -> DistillLoss:
    """Construct method ``name`` for this student/teacher pair (connectors sized from ``example``)."""
    cls = check_method(name)
    if cls.needs_teacher and teacher is None:
        raise KdsnnError(f"--kd {name} needs a teacher: pass --teacher CKPT (a train-teacher checkpoint), "
                         "or --kd none to train without distillation")
    s_shapes = feature_shapes(student, example)
    t_shapes = feature_shapes(teacher, example) if teacher is not None else {}
    if cls.needs_features and not (s_shapes and t_shapes):
        raise KdsnnError(f"--kd {name} needs feature taps on both networks")
    return cls(s_shapes, t_shapes, alpha=alpha, temperature=temperature,
               label_smoothing=label_smoothing).to(example.device)
