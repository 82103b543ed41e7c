"""Recurrent NIR graphs (export/recurrence.py): which edge carries the previous step, the refusal of a cycle
without state, and the graph runtime against a hand-written loop of the one-step convention."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from kdsnn.errors import KdsnnError
from kdsnn.export.graph_view import GraphView
from kdsnn.export.runtime import GraphSNN
from tests.helpers import recurrent_if_graph


def _if(n: int, theta: float = 1.0) -> nir.IF:
    return nir.IF(r=np.ones(n), v_threshold=np.full(n, theta), v_reset=np.zeros(n))


def _graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_the_edge_out_of_the_population_closes_the_cycle() -> None:
    g = _graph({"input": nir.Input(np.array([4])), "fc": nir.Linear(np.ones((3, 4))), "lif": _if(3),
                "rec": nir.Linear(np.eye(3)), "output": nir.Output(np.array([3]))},
               [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")])
    v = GraphView.of(g)
    assert v.recurrent == {("lif", "rec")}
    assert v.order.index("rec") < v.order.index("lif")  # the feedback synapse computes from the step before
    assert v.shape["rec"] == (3,)
    assert [p.delayed for p in v.paths_into("lif")] == [False, True]


def test_two_populations_in_a_loop_cut_once_at_the_later_one() -> None:
    g = _graph({"input": nir.Input(np.array([2])), "a_in": nir.Linear(np.ones((2, 2))), "a": _if(2),
                "ab": nir.Linear(np.eye(2)), "b": _if(2), "ba": nir.Linear(np.eye(2)),
                "output": nir.Output(np.array([2]))},
               [("input", "a_in"), ("a_in", "a"), ("a", "ab"), ("ab", "b"), ("b", "ba"), ("ba", "a"),
                ("b", "output")])
    assert GraphView.of(g).recurrent == {("b", "ba")}  # a → b within the step, only the feedback waits


def test_a_cycle_of_stateless_nodes_is_refused_naming_them() -> None:
    g = _graph({"input": nir.Input(np.array([2])), "s1": nir.Linear(np.eye(2)), "s2": nir.Linear(np.eye(2)),
                "lif": _if(2), "output": nir.Output(np.array([2]))},
               [("input", "s1"), ("s1", "s2"), ("s2", "s1"), ("s2", "lif"), ("lif", "output")])
    with pytest.raises(KdsnnError, match=r"cycle of stateless nodes s1 → s2 → s1"):
        GraphView.of(g)


def test_runtime_is_the_one_step_convention_by_hand() -> None:
    rng = np.random.default_rng(0)
    w_in, w_rec = rng.normal(0, 1, (3, 4)), rng.normal(0, 1, (3, 3))
    b_rec = rng.normal(0, 0.3, 3)
    g = _graph({"input": nir.Input(np.array([4])), "fc": nir.Linear(w_in), "lif": _if(3),
                "rec": nir.Affine(w_rec, b_rec), "output": nir.Output(np.array([3]))},
               [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")])
    x = rng.normal(0.5, 1, (6, 2, 4))
    got = GraphSNN(g).run(torch.tensor(x)).outputs["lif"].numpy()
    v, s, want = np.zeros((2, 3)), np.zeros((2, 3)), []
    for t in range(6):  # the feedback carries the spikes of step t-1 (none before the first); its bias every step
        h = v + x[t] @ w_in.T + s @ w_rec.T + b_rec
        s = (h > 1).astype(float)
        v = np.where(s > 0, 0.0, h)
        want.append(s)
    assert np.array_equal(got, np.array(want))
    assert np.array(want)[1:].sum() > 0 and np.abs(np.array(want)[1:] - np.array(want)[:-1]).sum() > 0


def test_an_edge_from_a_later_population_is_fed_back_in_the_integer_graph() -> None:
    g = recurrent_if_graph()
    v = GraphView.of(g)
    assert v.recurrent == {("if2", "rec")}
    assert v.integer and v.timesteps == 6
