"""``none``: cross-entropy only, the plain-SNN baseline every table compares against."""
from .base import DistillLoss


class NoDistill(DistillLoss):
    name = "none"
    summary = "cross-entropy only, no teacher (the plain-SNN baseline)"
    needs_teacher = False
