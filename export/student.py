"""A student checkpoint → its deployable graphs (float, and k-bit quantized).

The one road from a ``kdsnn distill`` checkpoint to NIR graphs, shared by ``kdsnn export``,
``quantize``, ``verify``, ``report`` and ``demo``. The graphs record the checkpoint's arch and
data set, so ``kdsnn simulate`` knows which inputs a file expects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir
import torch
from torch import nn

from kdsnn import checkpoint, data
from kdsnn.errors import KdsnnError
from kdsnn.models.spiking import SpikingNet

from .graph import student_to_graph
from .quantize import input_step, quantize_graph


@dataclass
class Deployable:
    """A trained student with its graphs: the float graph (BN folded) and the graph to deploy
    (k-bit integer by default; fake-quantized float, or the float graph itself, on request)."""

    model: nn.Module
    ckpt: dict[str, Any]
    dataset: str
    float_graph: nir.NIRGraph
    graph: nir.NIRGraph
    bits: int

    @property
    def arch(self) -> str:
        return self.ckpt["model_spec"]["arch"]

    @property
    def int_graph(self) -> nir.NIRGraph:
        """The integer graph every backend is compared on (a one-line error if this one is not integer)."""
        from .graph import get_meta

        if not get_meta(self.graph).get("integer"):
            raise KdsnnError("this deployable holds a float graph; load it with integer=True to deploy it")
        return self.graph


def load_student_graphs(path: str, bits: int = 8, integer: bool = True, quantized: bool = True,
                        dataset: str | None = None, data_root: str | None = None,
                        calibration: torch.Tensor | None = None, soft_reset_ok: bool = False) -> Deployable:
    """Load a student checkpoint, fold BN, and quantize (calibrating the input step if needed:
    on ``calibration`` inputs when given, e.g. the user's ``--inputs``, else on training data).
    ``soft_reset_ok``: accept a soft-reset student (see :func:`~kdsnn.export.graph.student_to_graph`)."""
    model, ckpt = checkpoint.load_model(path)
    if not isinstance(model, SpikingNet):
        raise KdsnnError(f"{path} holds the ANN {ckpt['model_spec']['arch']}; only student SNNs "
                         "(`kdsnn distill` checkpoints) are deployed")
    name = checkpoint.checkpoint_dataset(ckpt, dataset, str(path))
    pre = ckpt.get("preprocessing") or data.spec(name).preprocessing()
    float_graph = student_to_graph(model, pre, extra={"arch": ckpt["model_spec"]["arch"], "dataset": name,
                                                      "source": str(path)}, soft_reset_ok=soft_reset_ok)
    if not quantized:
        return Deployable(model, ckpt, name, float_graph, float_graph, bits)
    cal = None
    try:
        input_step(pre, None, bits)
    except KdsnnError:  # normalization is not a pure scale: calibrate the input step on training data
        x = calibration if calibration is not None else data.sample_batch(name, 256, data_root, split="train")[0]
        cal = float(x.abs().max())
    graph = quantize_graph(float_graph, bits=bits, integer=integer, calibration_max=cal)
    return Deployable(model, ckpt, name, float_graph, graph, bits)
