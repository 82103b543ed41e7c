"""From a student checkpoint to its deployable graphs: the shared first step of verify,
report, simulate and demo."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir
import torch

from kdsnn import data
from kdsnn.errors import KdsnnError
from kdsnn.export.student import load_student_graphs
from kdsnn.models.spiking import SpikingNet


@dataclass
class Deployable:
    """A trained student, its float graph (BN folded) and its integer k-bit graph."""

    model: SpikingNet
    ckpt: dict[str, Any]
    dataset: str
    float_graph: nir.NIRGraph
    int_graph: nir.NIRGraph
    bits: int

    @property
    def arch(self) -> str:
        return self.ckpt["model_spec"]["arch"]


def prepare(path: str, bits: int = 8, dataset: str | None = None, data_root: str | None = None) -> Deployable:
    """Load a ``kdsnn distill`` checkpoint and build its float and integer graphs."""
    sg = load_student_graphs(path, bits, integer=True, quantized=True, dataset=dataset, data_root=data_root)
    return Deployable(sg.model, sg.ckpt, sg.dataset, sg.float_graph, sg.graph, bits)  # type: ignore[arg-type]


def test_inputs(dataset: str, n: int, data_root: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images of ``dataset`` (normalized) and their labels."""
    if n < 1:
        raise KdsnnError(f"need at least one input, got {n}")
    return data.sample_batch(dataset, n, data_root)
