"""``none``: cross-entropy only, the plain-SNN baseline every table compares against."""
from .base import DistillLoss


class NoDistill(DistillLoss):
    name = "none"
    needs_teacher = False
