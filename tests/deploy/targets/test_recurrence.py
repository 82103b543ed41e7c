"""Recurrent graphs on the hardware targets (issue 15): Loihi 2 places a feedback synapse like any other,
Xylo holds hidden feedback in W_rec and refuses recurrent output neurons, Speck refuses any cycle."""
from __future__ import annotations

import nir
import numpy as np
import torch

from kdsnn.deploy.targets import xylo
from kdsnn.deploy.targets.mapping import map_graph
from kdsnn.deploy.targets.view import mapping_plan
from kdsnn.export.graph import get_meta, set_meta
from tests.helpers import recurrent_if_graph


def _soft(g: nir.NIRGraph) -> nir.NIRGraph:
    set_meta(g, {**get_meta(g), "reset": "soft"})  # Xylo resets by subtraction
    return g


def _x() -> torch.Tensor:
    return torch.tensor(np.random.default_rng(5).integers(0, 4, (3, 6)).astype(float))


def test_loihi2_places_a_recurrent_graph() -> None:
    r = map_graph(recurrent_if_graph(), "loihi2", _x())
    assert r["fits"], r["violations"]
    placed = {seg[0] for core in r["placement"]["cores"] for seg in core["segments"]}
    assert {"if2"} <= placed


def test_xylo_holds_hidden_feedback_in_w_rec() -> None:
    g = _soft(recurrent_if_graph())
    r = map_graph(g, "xylo", _x())
    assert r["fits"], r["violations"]
    plan = mapping_plan(g)
    net = xylo.lower(plan.view, plan, quantized=False)
    nnz = int(np.count_nonzero(g.nodes["fc2"].weight)) + int(np.count_nonzero(g.nodes["rec"].weight))
    assert net.counts["synapses_rec"] == nnz  # if1 → if2 and if2 → if2, both hidden-to-hidden
    rec = net.w_rec.toarray()[8:16, 8:16]  # if2's block: its own feedback, W_rec[source, target]
    assert np.array_equal(rec, np.asarray(g.nodes["rec"].weight).T)


def test_xylo_refuses_recurrent_output_neurons() -> None:
    g = recurrent_if_graph()
    nodes = dict(g.nodes) | {"rec_out": nir.Linear(np.eye(4))}
    edges = [*g.edges, ("if3", "rec_out"), ("rec_out", "if3")]
    g2 = _soft(nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(g.metadata), type_check=False))
    r = map_graph(g2, "xylo", _x())
    assert not r["fits"]
    rules = {v["rule"]: v for v in r["violations"]}
    assert "cannot be recurrent" in rules["recurrent_output"]["message"]


def test_speck_refuses_recurrence_with_its_rule() -> None:
    r = map_graph(recurrent_if_graph(), "speck", _x())
    assert not r["fits"]
    hit = [v for v in r["violations"] if v["rule"] == "recurrence"]
    assert len(hit) == 1 and hit[0]["node"] == "if2" and "acyclic" in hit[0]["message"]
