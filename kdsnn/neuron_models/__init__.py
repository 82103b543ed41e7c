"""Neuron models as specifications: one module per model, each a small dataclass whose
docstring states the discrete-time equations and whose ``step`` is the reference every
implementation (training kernels, graph runtime, simulators, ONNX, Lava) is held to.

``MODELS`` maps a NIR node type to its model's ``from_nir`` constructor; the graph view
(:mod:`kdsnn.export.graph_view`) reads each population's model through it. Adding a model
is one module here, one line below, and its row in tests/test_neuron_conformance.py.
"""
from __future__ import annotations

from typing import Callable

import nir

from .if_model import IFModel

NeuronModel = IFModel  # the union of the models, as more are added
MODELS: dict[type, Callable[..., NeuronModel]] = {nir.IF: IFModel.from_nir}

__all__ = ["IFModel", "MODELS", "NeuronModel"]
