"""Neuron models as specifications: one module per model, each a small dataclass whose
docstring states the discrete-time equations and whose ``step`` is the reference every
implementation (training kernels, graph runtime, simulators, ONNX, Lava) is held to.

``MODELS`` maps a NIR node type to its model's ``from_nir`` constructor; the graph view
(:mod:`kdsnn.export.graph_view`) reads each population's model through it. Adding a model
is one module here, one line below, and its row in tests/test_neuron_conformance.py.
"""
from __future__ import annotations

from collections.abc import Callable

import nir

from .cubalif_model import CubaLIFModel
from .if_model import IFModel
from .integrator_model import IntegratorModel
from .li_model import LIModel
from .lif_model import LIFModel

NeuronModel = IFModel | LIFModel | CubaLIFModel | LIModel | IntegratorModel
MODELS: dict[type, Callable[..., NeuronModel]] = {nir.IF: IFModel.from_nir, nir.LIF: LIFModel.from_nir,
                                                  nir.CubaLIF: CubaLIFModel.from_nir, nir.LI: LIModel.from_nir,
                                                  nir.I: IntegratorModel.from_nir}

__all__ = ["CubaLIFModel", "IFModel", "IntegratorModel", "LIFModel", "LIModel", "MODELS", "NeuronModel"]
