"""From a student checkpoint to its deployable graphs: the shared first step of verify,
report, simulate and demo."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir
import torch

from kdsnn import checkpoint, data
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import student_to_graph
from kdsnn.export.quantize import quantize_graph
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


def prepare(path: str, bits: int = 8, dataset: str | None = None) -> Deployable:
    """Load a ``kdsnn distill`` checkpoint and build its float and integer graphs."""
    model, ckpt = checkpoint.load_model(path)
    if not isinstance(model, SpikingNet):
        raise KdsnnError(f"{path} holds the ANN {ckpt['model_spec']['arch']}; deployment needs a student "
                         "(a `kdsnn distill` checkpoint)")
    name = dataset or ckpt.get("dataset", "digits")
    spec = data.spec(name)
    if tuple(ckpt["model_spec"]["input_shape"]) != spec.input_shape:
        raise KdsnnError(f"{path} expects inputs of shape {ckpt['model_spec']['input_shape']}, "
                         f"{name} has {list(spec.input_shape)}")
    float_graph = student_to_graph(model, ckpt.get("preprocessing", spec.preprocessing()),
                                   extra={"arch": ckpt["model_spec"]["arch"], "dataset": name})
    int_graph = quantize_graph(float_graph, bits)
    return Deployable(model, ckpt, name, float_graph, int_graph, bits)


def test_inputs(dataset: str, n: int, data_root: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images of ``dataset`` (normalized) and their labels."""
    if n < 1:
        raise KdsnnError(f"need at least one input, got {n}")
    return data.sample_batch(dataset, n, data_root)
