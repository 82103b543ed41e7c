"""Runs cut into batches give exactly what one run over every input gives, in memory that does not grow
with the number of inputs."""
from dataclasses import asdict

import pytest
import torch

from kdsnn.deploy import batched
from kdsnn.deploy.backends import BACKENDS
from kdsnn.deploy.simulator import simulate
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import student_to_graph
from kdsnn.export.graph_checks import sample_step_bytes
from kdsnn.export.graph_view import GraphView
from kdsnn.export.quantize import quantize_graph
from tests.helpers import calibrated_student


@pytest.fixture(scope="module")
def graph(digits_preprocessing):
    g = student_to_graph(calibrated_student("snn_2conv", width=0.25), digits_preprocessing)
    return quantize_graph(g, bits=8)


def test_bounds_end_a_batch_at_the_head():
    assert batched.bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batched.bounds(10, 4, head=6) == [(0, 4), (4, 6), (6, 10)]
    assert batched.bounds(3, 4, head=64) == [(0, 3)]


def test_batch_size_follows_the_working_set(graph, monkeypatch):
    view = GraphView(graph)
    per = batched.input_bytes(view, 4)
    assert per == sample_step_bytes(view) * 4 * batched.RUNNER_COPIES
    monkeypatch.setattr(batched, "WORKING_SET", 3 * per + 1)
    assert batched.batch_size(view, 4) == 3
    monkeypatch.setattr(batched, "WORKING_SET", 1)
    assert batched.batch_size(view, 4) == 1  # at least one input
    monkeypatch.setenv("KDSNN_MEMORY_LIMIT", str(per - 1))
    with pytest.raises(KdsnnError, match="one input of this graph over T = 4 steps"):
        batched.batch_size(view, 4)


def test_batched_simulation_equals_one_run(graph, digits_batch, monkeypatch):
    x = digits_batch[0][:11]
    view = GraphView(graph)
    whole = simulate(graph, x)
    monkeypatch.setattr(batched, "WORKING_SET", 3 * batched.input_bytes(view, 4))  # batches of 3: 4 runs
    run = batched.run_batches(BACKENDS["simulator"], graph, x, view, 4, keep_all=True, keep_head=5)
    assert torch.equal(run.logits, whole.logits)
    assert run.counters.to_dict() == whole.to_dict()  # every counter merged, batch 11
    for pop, s in whole.spikes.items():
        assert run.spike_totals[pop] == float(s.sum()) and run.spike_slots[pop] == s.numel()
        assert (run.spikes[pop] == s.numpy()).all()
        assert torch.equal(torch.as_tensor(run.head.spikes[pop]), s[:, :5])  # the head: inputs 0..4 alone
    head = simulate(graph, x[:5])
    assert {k: asdict(v) for k, v in run.head.layers.items()} == {k: asdict(v) for k, v in head.layers.items()}
    assert run.head.batch == 5 and torch.equal(torch.as_tensor(run.head.logits), head.logits)


def test_runtime_batches_keep_no_trains(graph, digits_batch, monkeypatch):
    x = digits_batch[0][:7]
    view = GraphView(graph)
    monkeypatch.setattr(batched, "WORKING_SET", 2 * batched.input_bytes(view, 4))
    run = batched.run_batches(BACKENDS["pytorch"], graph, x, view, 4)
    whole = BACKENDS["pytorch"].run(graph, x)
    assert torch.equal(run.logits, whole.logits) and run.spikes is None and run.counters is None
    assert run.firing_rates() == {k: float(v.double().mean()) for k, v in whole.spikes.items()}
