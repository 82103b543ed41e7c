"""Spike-train comparison: identical or not, and where the first difference is."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Mismatch:
    """The first IF layer (in graph order) and time step at which two runs differ."""

    node: str
    step: int
    differing: int
    total: int

    def __str__(self) -> str:
        return (f"first differs at layer {self.node!r}, step t={self.step} "
                f"({self.differing} of {self.total} spikes differ)")


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def first_mismatch(reference: Mapping[str, object], other: Mapping[str, object], order: list[str]) -> Mismatch | None:
    """Compare the nodes both runs recorded, in ``order``; ``None`` when all are identical."""
    for node in order:
        if node not in reference or node not in other:
            continue
        a, b = _np(reference[node]), _np(other[node])
        a = a.reshape(a.shape[0], a.shape[1], -1)
        b = b.reshape(b.shape[0], b.shape[1], -1)
        if a.shape != b.shape:
            return Mismatch(node, 0, -1, int(a.size))
        diff = a != b
        if diff.any():
            t = int(np.argmax(diff.reshape(diff.shape[0], -1).any(1)))
            return Mismatch(node, t, int(diff[t].sum()), int(diff[t].size))
    return None
