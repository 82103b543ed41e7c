"""The Lava run's time, estimated from its plan before it starts, and the stage line that says so.

The counts are worked out by hand for snn_2conv on digits (1×8×8, T = 4): the host runs conv1 and
if1; Lava gets conv2 with the 2×2 sum pool composed in (a 6×6 kernel, stride 2, 64 → 128 channels,
4×4 outputs) into if2, and fc1 (2,048 → 10) into if3.
"""
from __future__ import annotations

import pytest

from kdsnn import data
from kdsnn.deploy.lava import lava_available, run_lava
from kdsnn.deploy.lava.estimate import (
    S_PER_MAC,
    S_PER_PAIR,
    STARTUP_S_PER_PROCESS,
    STEP_S_PER_PROCESS,
    estimate,
)
from kdsnn.deploy.lava.plan import lava_graph_plan
from kdsnn.export.graph import student_to_graph
from kdsnn.export.netx.plan import netx_plan
from kdsnn.export.quantize import quantize_graph
from tests.helpers import calibrated_student

LAVA_OK, LAVA_WHY = lava_available()
CONV_MACS = 4 * 4 * 128 * 64 * 6 * 6  # output positions × C_out × C_in × composed kernel
DENSE_MACS = 2048 * 10
PAIRS = 128 * 64


@pytest.fixture(scope="module")
def graph(digits_preprocessing):
    return quantize_graph(student_to_graph(calibrated_student("snn_2conv", readout="spike"), digits_preprocessing))


def test_counts_of_both_routes(graph):
    # process graph: the source, if2 and if3, their two connections, a sink each; netx: the source, per layer
    # a synapse, a neuron and a sink
    for plan in (lava_graph_plan(graph), netx_plan(graph)):
        est = estimate(plan, samples=3)
        assert (est.processes, est.macs_per_step, est.channel_pairs) == (7, CONV_MACS + DENSE_MACS, PAIRS)
        assert est.steps == 3 * 4 + 2  # three samples of T = 4, then two steps flush the two-hop pipeline
        step = 7 * STEP_S_PER_PROCESS + (CONV_MACS + DENSE_MACS) * S_PER_MAC
        assert est.startup_s == pytest.approx(7 * STARTUP_S_PER_PROCESS)
        assert est.total_s == pytest.approx(est.startup_s + 14 * step)
        lava = estimate(plan, samples=3, conv_model="lava")  # Lava's own Conv: a call per channel pair
        lava_step = step + PAIRS * S_PER_PAIR
        assert lava.total_s == pytest.approx(est.startup_s + 14 * lava_step)


def test_the_estimate_grows_with_samples_and_says_what_it_counts(graph):
    plan = lava_graph_plan(graph)
    one, many = estimate(plan, 1), estimate(plan, 1000)
    assert many.total_s > one.total_s > one.startup_s > 0
    line = many.line(1000)
    assert line.startswith("Lava: 1,000 samples ≈ ") and "estimated" in line
    assert "7 Lava processes" in line and "4.7 M synaptic multiply-adds per step" in line and "4,002 steps" in line


@pytest.mark.skipif(not LAVA_OK, reason=f"Lava not importable: {LAVA_WHY}")
def test_run_lava_prints_the_estimate_before_it_starts(graph, capsys, monkeypatch):
    monkeypatch.delenv("KDSNN_PROGRESS", raising=False)
    x = data.sample_batch("digits", 2)[0]
    run_lava(graph, x, progress=True)
    err = capsys.readouterr().err
    estimate_at = err.index("Lava: 2 samples ≈ ")
    assert "7 Lava processes" in err[estimate_at:] and "10 steps" in err[estimate_at:]
    assert estimate_at < err.index("Lava: compiling the process graph and starting the runtime")
