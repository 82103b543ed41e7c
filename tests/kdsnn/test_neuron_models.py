"""kdsnn/neuron_models: every model answers for itself (the NeuronModel protocol), its decays for the energy
count worked out by hand, and a model without ONNX operators is refused by ONNX's supports in one line."""
from __future__ import annotations

import dataclasses

import nir
import numpy as np
import pytest

from kdsnn.export.graph import set_meta
from kdsnn.export.graph_view import GraphView
from kdsnn.export.onnx import onnx_supports
from kdsnn.neuron_models import MODELS, NeuronModel

N = 3
F = np.full(N, 4.0)
NODES = {nir.IF: nir.IF(r=np.ones(N), v_threshold=np.ones(N), v_reset=np.zeros(N)),
         nir.LIF: nir.LIF(tau=F, r=np.ones(N), v_leak=np.zeros(N), v_threshold=np.ones(N), v_reset=np.zeros(N)),
         nir.CubaLIF: nir.CubaLIF(tau_syn=np.full(N, 2.0), tau_mem=F, r=np.ones(N), v_leak=np.zeros(N),
                                  v_threshold=np.ones(N), v_reset=np.zeros(N), w_in=np.ones(N)),
         nir.LI: nir.LI(tau=F, r=np.ones(N), v_leak=np.zeros(N)),
         nir.I: nir.I(r=np.ones(N)),
         nir.CubaLI: nir.CubaLI(tau_syn=np.full(N, 2.0), tau_mem=F, r=np.ones(N), v_leak=np.zeros(N), w_in=np.ones(N)),
         nir.Threshold: nir.Threshold(threshold=np.ones(N))}


def _graph(node: nir.NIRNode) -> nir.NIRGraph:
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([N])}), "n": node,
                            "output": nir.Output(output_type={"output": np.array([N])})},
                     edges=[("input", "n"), ("n", "output")], type_check=False)
    set_meta(g, {"producer": "kdsnn", "timesteps": 2, "encoding": "direct", "integer": False})
    return g


@pytest.mark.parametrize("nir_type", list(MODELS), ids=[t.__name__ for t in MODELS])
def test_every_model_answers_the_whole_protocol(nir_type) -> None:
    assert set(NODES) == set(MODELS)  # a new model gets a node here
    model = MODELS[nir_type](NODES[nir_type], dt=1.0)
    assert isinstance(model, NeuronModel)
    assert model.state_vars[0] == "v" and model.onnx_problem() is None
    assert callable(getattr(model, "charge", None)) or not model.spiking  # the simulator reads h of spiking models
    params = dict(model.onnx_params())
    assert all(np.asarray(a).ndim == 1 for a in params.values())


def test_decays_by_hand() -> None:
    """dt = 1: LIF τ = 4 decays v by dt/τ = 0.25; CubaLIF decays I by 1/2 and v by 1/4; IF and I decay nothing."""
    rates = {t.__name__: [a.tolist() for a in MODELS[t](NODES[t]).decay_rates()] for t in MODELS}
    assert rates == {"IF": [], "LIF": [[0.25] * N], "CubaLIF": [[0.5] * N, [0.25] * N], "LI": [[0.25] * N], "I": [],
                     "CubaLI": [[0.5] * N, [0.25] * N], "Threshold": []}


def test_a_model_without_onnx_operators_is_refused_by_supports() -> None:
    """A model that states no ONNX step (one added without it) is refused before any emission starts."""
    @dataclasses.dataclass(frozen=True)
    class Toy:
        kind = "Toy"

    view = GraphView.of(_graph(NODES[nir.IF]))
    view.models["n"] = Toy()  # what the view would hold for a model without onnx_step
    assert onnx_supports(view) == (False, "Toy node 'n': the Toy model states no ONNX operators")


def test_integer_leaky_models_state_onnx_and_integrators_say_why_not() -> None:
    """Loihi's fixed-point decays are stated in ONNX in int64 (the conformance test holds them to the spec);
    an integer Integrator is refused with its reason."""
    lif = MODELS[nir.LIF](nir.LIF(tau=np.full(N, 8.0), r=np.full(N, 8.0), v_leak=np.zeros(N),
                                  v_threshold=np.ones(N), v_reset=np.zeros(N)), integer=True)
    assert lif.onnx_problem() is None
    assert "IF populations only" in MODELS[nir.I](nir.I(r=np.ones(N)), integer=True).onnx_problem()
