"""export/graph_view.py: one view per graph (GraphView.of), rebuilt when the graph changes, and the one
walk from a synapse back to the population feeding it."""
from __future__ import annotations

import copy

import nir
import numpy as np
import pytest

from kdsnn.errors import KdsnnError
from kdsnn.export.graph import set_meta
from kdsnn.export.graph_view import GraphView, SourcePath

META = {"producer": "kdsnn", "timesteps": 4, "encoding": "direct", "integer": False, "readout": "spike"}


def _chain() -> nir.NIRGraph:
    """input → fc → if1 → pool → flat → fc2 → if2 → output."""
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
             "fc": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 1, 1)), stride=1, padding=0, dilation=1,
                              groups=1, bias=np.zeros(2)),
             "if1": nir.IF(r=np.ones((2, 4, 4)), v_threshold=np.ones((2, 4, 4)), v_reset=np.zeros((2, 4, 4))),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
             "fc2": nir.Affine(weight=np.ones((3, 8)), bias=np.zeros(3)),
             "if2": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    names = list(nodes)
    g = nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:], strict=False)), type_check=False)
    set_meta(g, META)
    return g


def test_one_view_per_graph_until_it_changes() -> None:
    g = _chain()
    view = GraphView.of(g)
    assert GraphView.of(g) is view and GraphView.of(view) is view  # validated once, handed out again
    assert GraphView.of(g, timesteps=4) is view                     # the T it records: the same view
    t8 = GraphView.of(g, timesteps=8)
    assert t8 is not view and t8.timesteps == 8 and GraphView.of(g, timesteps=8) is t8 and GraphView.of(g) is view

    g.nodes["if2"] = nir.IF(r=np.ones(3), v_threshold=np.full(3, 5.0), v_reset=np.zeros(3))  # a node replaced
    again = GraphView.of(g)
    assert again is not view and float(again.models["if2"].threshold.max()) == 5.0

    g.nodes["if2"].r[:] = 2.0  # an in-place edit of a neuron parameter: the gain r·dt is derived from it
    edited = GraphView.of(g)
    assert edited is not again and float(edited.models["if2"].gain.max()) == 2.0

    set_meta(g, {**META, "timesteps": 6})  # metadata
    assert GraphView.of(g).timesteps == 6

    g.edges.append(("input", "if2"))  # an edge: the Input now also feeds if2, whose inputs do not match
    with pytest.raises(KdsnnError, match="different shapes"):
        GraphView.of(g)


def test_copies_of_a_graph_get_their_own_view() -> None:
    g = _chain()
    view = GraphView.of(g)
    for twin in (copy.copy(g), copy.deepcopy(g)):
        other = GraphView.of(twin)
        assert other is not view and other.graph is twin
    assert GraphView.of(g) is view
    assert "_kdsnn_views" not in g.to_dict()  # files never see the cache


def test_paths_and_the_walk_back_to_the_source() -> None:
    """A residual block: if1 feeds if2 through conv2 and directly through the shortcut Scale."""
    n = 4
    nodes = {"input": nir.Input(input_type={"input": np.array([n])}),
             "fc1": nir.Affine(weight=np.eye(n), bias=np.zeros(n)),
             "if1": nir.IF(r=np.ones(n), v_threshold=np.ones(n), v_reset=np.zeros(n)),
             "fc2": nir.Affine(weight=np.eye(n), bias=np.zeros(n)),
             "short": nir.Scale(scale=np.ones(n)),
             "if2": nir.IF(r=np.ones(n), v_threshold=np.ones(n), v_reset=np.zeros(n)),
             "output": nir.Output(output_type={"output": np.array([n])})}
    edges = [("input", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("if1", "short"), ("fc2", "if2"), ("short", "if2"),
             ("if2", "output")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    set_meta(g, META)
    view = GraphView.of(g)
    assert view.paths_into("if2") == [SourcePath("if1", ("fc2",)), SourcePath("if1", ("short",))]
    assert view.source_of("fc2") == SourcePath("if1", ())
    assert view.paths_into("output") == [SourcePath("if2", ())]
    with pytest.raises(KdsnnError, match="node 'if2' sums 2 inputs; the reason"):
        view.source_of("if2", "the reason")
    chain = GraphView.of(_chain())
    assert chain.source_of("fc2") == SourcePath("if1", ("pool", "flat"))  # through the pool and Flatten
    assert chain.source_of("fc") == SourcePath("input", ())
