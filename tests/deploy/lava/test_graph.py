"""Lava's process-graph route: residual students on Lava, bit-exact against the integer PyTorch graph.

snn_resnet14 and snn_wrn16_2 (width 0.25, BN calibrated on digits, 8-bit integer) run as Lava
processes built from their NIR graphs (identity shortcuts as Sparse diagonals, projection
shortcuts as 1×1 Convs, relay populations delaying each shortcut to its block's depth) and must
give GraphSNN's spikes at every IF layer and its logits. The sequential snn_2conv, forced
through the same route, must agree with GraphSNN (and so with its netx route). The plan
itself (lags, relays, refusals) is checked without running Lava. A 3×32×32 snn_resnet14 runs
on one synthetic image (width 0.25; bench/lava.py measures width 1).
"""
from __future__ import annotations

import copy

import nir
import numpy as np
import pytest
import torch

from kdsnn import data
from kdsnn.deploy.lava import lava_available, lava_route, lava_supports, run_lava
from kdsnn.deploy.lava.plan import lava_graph_plan, relay_name
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import get_meta, set_meta, student_to_graph
from kdsnn.export.graph_view import GraphView
from kdsnn.export.quantize import quantize_graph
from kdsnn.models import STUDENTS, build_model
from tests.helpers import assert_same_run, calibrated_student

LAVA_OK, LAVA_WHY = lava_available()
needs_lava = pytest.mark.skipif(not LAVA_OK, reason=f"Lava not importable: {LAVA_WHY}")


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return data.sample_batch("digits", 3)[0]


@pytest.fixture(scope="module")
def residual(digits_preprocessing) -> dict[str, nir.NIRGraph]:
    return {arch: quantize_graph(student_to_graph(calibrated_student(arch, width=0.25), digits_preprocessing))
            for arch in ("snn_resnet14", "snn_wrn16_2")}


# --- Lava runs -------------------------------------------------------------------------------

@needs_lava
@pytest.mark.parametrize("arch", ["snn_resnet14", "snn_wrn16_2"])
def test_residual_student_matches_graph_at_every_layer(residual, inputs, arch):
    graph = residual[arch]
    run = run_lava(graph, inputs, progress=False)
    assert run.route == "process-graph" and run.host_nodes == ["if1"]
    assert_same_run(graph, inputs, run)
    plan = lava_graph_plan(graph)
    assert run.lags == {p.name: p.lag for p in plan.neurons}
    assert run.lava_steps == 3 * 4 + plan.max_lag


@needs_lava
def test_sequential_graph_through_the_process_graph_route(digits_preprocessing, inputs):
    graph = quantize_graph(student_to_graph(calibrated_student("snn_2conv", readout="spike"), digits_preprocessing))
    assert lava_route(graph) == "netx"
    run = run_lava(graph, inputs, progress=False, route="process-graph")
    assert run.route == "process-graph" and run.lags == {"if2": 1, "if3": 2}  # the netx route's lags
    assert_same_run(graph, inputs, run)
    assert run.logits.sum() > 0  # the readout IF spikes


@needs_lava
def test_resnet14_at_cifar_shape_on_synthetic_input():
    from bench.lava import lava_seconds_per_sample, synthetic_graph

    graph, x = synthetic_graph("snn_resnet14", (3, 32, 32), width=0.25)
    result = lava_seconds_per_sample(graph, x[:1])
    assert result["route"] == "process-graph" and result["identical"]
    assert 0.02 < result["rate"] < 0.6


# --- the plan, without Lava ----------------------------------------------------------------------

def test_plan_aligns_branches_with_relays(residual):
    graph = residual["snn_resnet14"]
    view = GraphView(graph)
    plan = lava_graph_plan(graph)
    pops = {p.name: p for p in plan.populations}
    assert plan.host_neuron == "if1" and plan.host_nodes == ["input", "conv1", "if1"]
    assert plan.readout_source == "if13" and plan.readout_nodes == ["pool1", "flatten1", "fc1"]
    # lag = longest path in connection hops from the host population
    lag = {"if1": 0}
    for name in view.order:
        if name in pops and pops[name].relay_of is None:
            assert pops[name].lag == 1 + max(lag[c.origin] for c in plan.connections if c.target == name)
            lag[name] = pops[name].lag
    assert max(lag.values()) == 12 == plan.max_lag
    # every connection arrives in its target's lag: source lag + 1
    for c in plan.connections:
        assert pops[c.target].lag == (0 if c.source == "if1" else pops[c.source].lag) + 1
    # one relay per block input (identity and projection shortcuts skip one conv → IF hop)
    relays = sorted(p.name for p in plan.populations if p.relay_of)
    assert relays == sorted(relay_name(s, 1) for s in ("if1", "if3", "if5", "if7", "if9", "if11"))
    kinds = {c.synapse.sources[-1] if c.synapse.sources else "relay": c.synapse.kind for c in plan.connections}
    assert kinds["skip1"] == "scale" and kinds["conv8"] == "conv"
    assert {c.source for c in plan.connections if c.target == "if3"} == {"if2", relay_name("if1", 1)}
    # a population's bias is the sum of its synapses' biases (a Scale adds none)
    np.testing.assert_array_equal(pops["if7"].bias[:, 0, 0], graph.nodes["conv7"].bias + graph.nodes["conv8"].bias)


def test_every_student_is_supported(digits_preprocessing):
    for arch in STUDENTS:
        torch.manual_seed(0)
        model = build_model(arch, (1, 8, 8), 10, width=0.25).eval()
        graph = quantize_graph(student_to_graph(model, digits_preprocessing))
        ok, why = lava_supports(graph)
        assert ok, f"{arch}: {why}"


def test_refusals_name_the_reason(residual):
    base = residual["snn_resnet14"]
    ok, why = lava_supports(quantize_graph(student_to_graph(calibrated_student("snn_resnet14", width=0.25),
                                                            get_meta(base)["preprocessing"]), integer=False))
    assert not ok and "integer graph" in why
    soft = copy.deepcopy(base)
    set_meta(soft, {**get_meta(soft), "reset": "soft"})
    assert "reset mode 'soft'" in lava_supports(soft)[1]
    big = copy.deepcopy(base)
    big.nodes["skip2"].scale = np.full_like(np.asarray(big.nodes["skip2"].scale, dtype=np.float64), 201)
    assert "weights up to 201 are no 8-bit mantissa" in lava_supports(big)[1]  # odd, beyond |m| ≤ 127
    big.nodes["skip2"].scale = np.full_like(np.asarray(big.nodes["skip2"].scale, dtype=np.float64), 200)
    assert lava_supports(big)[0]  # 100·2^1: Loihi's mantissa and shared exponent (Sparse's weight_exp)
    with pytest.raises(KdsnnError, match="netx file can only be run by the netx route"):
        run_lava(base, torch.zeros(1, 1, 8, 8), netx_path="x.net", progress=False)
    with pytest.raises(KdsnnError, match="sequential layers only"):
        from kdsnn.export.netx import export_netx
        export_netx(base, "never-written.net")


# --- a convolution runs as Lava's Conv process, and the Loihi 2 mapping stores what that process holds --------

@needs_lava
def test_convolution_runs_as_lavas_conv_process_and_the_mapping_stores_its_weights(digits_preprocessing, inputs,
                                                                                     monkeypatch):
    from kdsnn.deploy.lava import graph as lava_graph
    from kdsnn.deploy.targets import load_target
    from kdsnn.deploy.targets.placement import place
    from kdsnn.deploy.targets.view import mapping_plan

    graph = quantize_graph(student_to_graph(calibrated_student("snn_2conv", readout="spike"), digits_preprocessing))
    built: dict[str, object] = {}
    connect = lava_graph._connect

    def recording(conn, out_ports, in_ports, shapes):
        proc = connect(conn, out_ports, in_ports, shapes)
        built[conn.target] = proc
        return proc

    monkeypatch.setattr(lava_graph, "_connect", recording)
    run = run_lava(graph, inputs, progress=False, route="process-graph")
    assert_same_run(graph, inputs, run)  # bit-exact with the integer runtime at every population
    conv = built["if2"]
    assert type(conv).__name__ == "Conv", built  # conv2 (with the 2×2 sum pool before it) is a Conv, not a Dense
    w = np.asarray(conv.weight.init)  # the weights it was built with (the runtime has stopped)
    # Lava's (C_out, W, H, C_in): conv2's 3×3 kernel over the 2×2 pool composed in: 6×6, 64 → 128 channels
    node = graph.nodes["conv2"]
    c_out, c_in = np.asarray(node.weight).shape[:2]
    assert w.shape == (c_out, 6, 6, c_in) == (128, 6, 6, 64)
    # the Loihi 2 placement stores conv2's kernels once per output channel a core holds; if2 fits on one core,
    # so its stored weights are exactly the Conv process's weight array
    placement = place(mapping_plan(graph), load_target("loihi2"))
    cores = [c for c in placement.cores if any(p == "if2" for p, _, _ in c.segments)]
    assert len(cores) == 1 and cores[0].weights == w.size == 128 * 6 * 6 * 64
    assert cores[0].synapses > w.size  # per synapse (what a dense mapping would store) it is far more


# --- graded-spike input: the first layer on Lava ------------------------------------------------------------

@needs_lava
@pytest.mark.parametrize("arch, readout", [("snn_2conv", "spike"), ("snn_resnet14", "membrane")])
def test_graded_input_runs_the_first_layer_on_lava_bit_exact(digits_preprocessing, inputs, arch, readout):
    width = 1.0 if arch == "snn_2conv" else 0.25
    graph = quantize_graph(student_to_graph(calibrated_student(arch, readout=readout, width=width),
                                            digits_preprocessing))
    run = run_lava(graph, inputs, progress=False, graded_input=True)
    assert run.route == "process-graph" and run.host_nodes == []  # nothing spiking is computed on the host
    assert run.lags["if1"] == 1  # the first layer is a Lava population one connection behind the source
    assert_same_run(graph, inputs, run)  # every population, the first included, bit-exact with the runtime
    with pytest.raises(KdsnnError, match="graded input runs on the process-graph route"):
        run_lava(graph, inputs, route="netx", graded_input=True)


def test_graded_input_plan(digits_preprocessing):
    graph = quantize_graph(student_to_graph(calibrated_student("snn_2conv", readout="spike"), digits_preprocessing))
    plan = lava_graph_plan(graph, graded_input=True)
    assert plan.host_nodes == ["input"] and plan.host_neuron == "input" and plan.graded_input
    first = [c for c in plan.connections if c.source == "input"]
    # digits: pixels k/16 in [0, 1], mean 0, std 1, input step 1/16: integers 0..16, 5 bits, no sign bit
    assert get_meta(graph)["input_scale"] == pytest.approx(1 / 16)
    assert [(c.target, c.synapse.kind, c.message_bits) for c in first] == [("if1", "conv", 5)]
    assert all(c.message_bits == 0 for c in plan.connections if c.source != "input")
    assert [p.lag for p in plan.neurons] == [1, 2, 3]
    without = lava_graph_plan(graph)
    assert without.host_neuron == "if1" and [p.lag for p in without.neurons] == [1, 2]


def test_graded_sums_beyond_lavas_declared_width_are_refused():
    from kdsnn.deploy.lava.graph import check_graded_sums
    from kdsnn.deploy.lava.plan import Connection
    from kdsnn.export.netx.plan import Synapse

    # a dense first layer: 4 inputs of weight 127; Lava's Dense model declares a 16-bit a_out (|a| ≤ 32767)
    dense = Synapse("dense", [], (4,), (1,), np.full((1, 4), 127), np.array([1000]))
    conn = Connection("input", "if1", dense, "input", message_bits=8)
    check_graded_sums(conn, torch.full((2, 1, 4), 64.0))  # 4·127·64 = 32512: fits (the bias is the neuron's)
    with pytest.raises(KdsnnError, match="sums to 32893 .*16-bit output of Lava.s dense model"):
        check_graded_sums(conn, torch.tensor([[[64.0, 64, 64, 64]], [[64.0, 64, 64, 67]]]))  # 127·259 = 32893
    # a conv declares 24 bits: 9·127·100 = 114300 fits there
    conv = Synapse("conv", [], (1, 3, 3), (1, 1, 1), np.full((1, 1, 3, 3), 127), np.zeros(1))
    check_graded_sums(Connection("input", "if1", conv, "input", message_bits=8), torch.full((1, 1, 1, 3, 3), 100.0))
