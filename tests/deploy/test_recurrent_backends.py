"""A recurrent integer graph on every backend (issue 15): the graph runtime, the simulator, ONNX (unrolled and
step), Lava's process graph and Norse agree spike for spike in ``verify``; the simulator counts the recurrent
synapses by hand; the fast path leaves recurrent graphs to the general one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kdsnn.deploy.backends import BACKENDS
from kdsnn.deploy.simulator import Plan, simulate
from kdsnn.deploy.verify import verify_graph
from kdsnn.export.runtime import GraphSNN
from tests.helpers import recurrent_if_graph


def _inputs(n: int = 3) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(5).integers(0, 4, (n, 6)).astype(float))


def test_every_backend_agrees_on_a_recurrent_integer_graph() -> None:
    g = recurrent_if_graph()
    ref = GraphSNN(g).run(_inputs())
    assert 0 < float(ref.outputs["if2"].mean()) < 0.7  # the recurrent layer spikes, but not always
    checks = {c.backend: c for c in verify_graph(g, _inputs(), slow_samples=2)}
    wanted = [BACKENDS[n].label for n in ("simulator", "onnx", "onnx-step", "nir-file", "lava", "norse")]
    for label in wanted:
        c = checks[label]
        if c.status == "unavailable":
            pytest.skip(f"{label}: {c.detail}")
        assert c.status == "agree", (label, c.status, c.detail)


def test_simulator_counts_recurrent_synapses_and_delivers_them_a_step_later() -> None:
    g = recurrent_if_graph()
    x = _inputs()
    ref = GraphSNN(g).run(x)
    res = simulate(g, x)
    for n in ("if1", "if2", "if3"):
        assert torch.equal(res.spikes[n], ref.outputs[n].to(res.spikes[n].dtype))
    s2 = ref.outputs["if2"].numpy()
    # 8 synapses per spike of if2 on the all-to-all feedback, delivered at the next step: the last step's are not
    assert res.layers["rec"].synops == int(s2[:-1].sum()) * 8
    assert res.layers["fc3"].synops == int(s2.sum()) * 4
    assert res.layers["rec"].source == res.layers["rec"].target == "if2"


def test_the_fast_path_leaves_recurrent_graphs_to_the_general_path() -> None:
    plan = Plan(recurrent_if_graph())
    assert plan.fast is None and plan.delayed == {"rec"}
