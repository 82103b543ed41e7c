"""Neuron models as specifications: one module per model, each a small dataclass whose
docstring states the discrete-time equations and whose ``step`` is the reference every
implementation (training kernels, graph runtime, simulators, ONNX, Lava) is held to.

``MODELS`` maps a NIR node type to its model's ``from_nir`` constructor; the graph view
(:mod:`kdsnn.export.graph_view`) reads each population's model through it. Every model answers
the questions of :class:`~kdsnn.neuron_models.protocol.NeuronModel` itself (its step, its size
check, its decays for the energy count, its ONNX operators), so adding a model is one module
here and one line in ``MODELS``, plus its cases in tests/test_neuron_conformance.py.
"""
from __future__ import annotations

from collections.abc import Callable

import nir

from ._leaky import LOIHI_DECAY, XYLO_DASH_MAX, loihi_decay, xylo_dash
from ._params import value_range
from .cubali_model import CubaLIModel
from .cubalif_model import CubaLIFModel
from .if_model import IFModel
from .integrator_model import IntegratorModel
from .li_model import LIModel
from .lif_model import LIFModel
from .protocol import NeuronModel, OnnxOps
from .threshold_model import ThresholdModel

MODELS: dict[type, Callable[..., NeuronModel]] = {nir.IF: IFModel.from_nir, nir.LIF: LIFModel.from_nir,
                                                  nir.CubaLIF: CubaLIFModel.from_nir, nir.LI: LIModel.from_nir,
                                                  nir.I: IntegratorModel.from_nir, nir.CubaLI: CubaLIModel.from_nir,
                                                  nir.Threshold: ThresholdModel.from_nir}

__all__ = ["LOIHI_DECAY", "MODELS", "XYLO_DASH_MAX", "CubaLIFModel", "CubaLIModel", "IFModel", "IntegratorModel",
           "LIFModel", "LIModel", "NeuronModel", "OnnxOps", "ThresholdModel", "loihi_decay", "value_range", "xylo_dash"]
