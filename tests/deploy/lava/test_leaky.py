"""Integer LIF and CubaLIF graphs on Lava's process-graph route, bit-exact against the PyTorch graph runtime.

Small hand-built NIR graphs (Affine → LIF → Affine → LIF → Affine → LIF → Output, integer weights,
kdsnn metadata ``integer=True``; Loihi's 12-bit decays: dt/τ = 1/8 → dv = 512, dt/τ_syn = 1/4 →
du = 1023) run through ``run_lava`` on three samples and must give GraphSNN's spikes at every
population after lag alignment, and its logits (spike counts, or an LI readout run on the host).
The mapping and the one-line refusals are checked without running Lava.
"""
from __future__ import annotations

import copy

import nir
import numpy as np
import pytest
import torch

from kdsnn.deploy.lava import lava_available, lava_route, lava_supports, run_lava
from kdsnn.deploy.lava.plan import lava_graph_plan
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import get_meta, set_meta
from kdsnn.export.netx.plan import netx_plan
from kdsnn.export.runtime import GraphSNN

LAVA_OK, LAVA_WHY = lava_available()
needs_lava = pytest.mark.skipif(not LAVA_OK, reason=f"Lava not importable: {LAVA_WHY}")
T = 8
SIZES = (16, 12, 10, 6)


def _neuron(kind: str, n: int, theta: float) -> nir.NIRNode:
    full, zero = (lambda v: np.full(n, float(v))), np.zeros(n)
    if kind == "LIF":   # dt/τ = 1/8, r·dt/τ = 1: Loihi's dv = 512
        return nir.LIF(tau=full(8), r=full(8), v_leak=zero, v_threshold=full(theta), v_reset=zero)
    # dt/τ_syn = 1/4 (du + 1 = 1024), dt/τ_mem = 1/8 (dv = 512), unit input gains
    return nir.CubaLIF(tau_syn=full(4), tau_mem=full(8), r=full(8), v_leak=zero, v_threshold=full(theta),
                       v_reset=zero, w_in=full(4))


def leaky_graph(kind: str, readout: str = "spike", seed: int = 0) -> nir.NIRGraph:
    """Input(16) → fc1 → n1 → fc2 → n2 → fc3 → n3 (spike) or LI (membrane readout) → Output, integer."""
    rng = np.random.default_rng(seed)
    n_in, n1, n2, n3 = SIZES
    w = lambda o, i, lo, hi: rng.integers(lo, hi, (o, i)).astype(np.float64)  # noqa: E731
    fc2_bias = np.zeros(n2) if kind == "CubaLIF" else rng.integers(-5, 6, n2).astype(np.float64)
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc1": nir.Affine(weight=w(n1, n_in, -8, 10), bias=rng.integers(-3, 4, n1).astype(np.float64)),
             "n1": _neuron(kind, n1, 90),
             "fc2": nir.Affine(weight=w(n2, n1, -40, 50), bias=fc2_bias),
             "n2": _neuron(kind, n2, 90),
             "fc3": nir.Affine(weight=w(n3, n2, -40, 50), bias=np.zeros(n3)),
             "output": nir.Output(output_type={"output": np.array([n3])})}
    edges = [("input", "fc1"), ("fc1", "n1"), ("n1", "fc2"), ("fc2", "n2"), ("n2", "fc3")]
    if readout == "spike":
        nodes["n3"] = _neuron(kind, n3, 80)
        edges += [("fc3", "n3"), ("n3", "output")]
    else:   # LI readout: v ← trunc(v·3/4) + x (dt/τ = 1/4, r·dt/τ = 1)
        nodes["li"] = nir.LI(tau=np.full(n3, 4.0), r=np.full(n3, 4.0), v_leak=np.zeros(n3))
        edges += [("fc3", "li"), ("li", "output")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    set_meta(g, {"producer": "kdsnn", "timesteps": T, "encoding": "direct", "integer": True, "input_scale": None,
                 "readout": readout, "dt": 1.0, "reset": "hard"})
    return g


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).integers(0, 9, (3, SIZES[0])).astype(np.float64))


def _assert_same(graph: nir.NIRGraph, x: torch.Tensor, run, spiking: list[str]) -> None:
    ref = GraphSNN(graph).run(x)
    assert sorted(run.spikes) == sorted(spiking)
    for name in spiking:
        expected = ref.outputs[name].numpy()
        assert 0.1 < expected.mean() < 0.8, f"{name} should spike a realistic amount"
        mismatch = int((run.spikes[name] != expected).sum())
        assert mismatch == 0, f"{name}: {mismatch} spikes differ from GraphSNN"
    assert torch.equal(run.logits, ref.logits)
    assert len({tuple(r) for r in ref.logits.tolist()}) == len(x)   # the samples really differ


# --- Lava runs -------------------------------------------------------------------------------------

@needs_lava
@pytest.mark.parametrize("kind", ["LIF", "CubaLIF"])
def test_leaky_graph_matches_graph_runtime_at_every_population(inputs, kind):
    graph = leaky_graph(kind)
    assert lava_route(graph) == "process-graph"
    run = run_lava(graph, inputs, progress=False)
    assert run.route == "process-graph" and run.host_nodes == ["n1"] and run.lags == {"n2": 1, "n3": 2}
    assert run.lava_steps == 3 * T + 2
    _assert_same(graph, inputs, run, ["n1", "n2", "n3"])
    assert set(run.membrane_extremes) >= ({"n2", "n3"} if kind == "CubaLIF" else set())


@needs_lava
def test_weights_with_a_shared_exponent_run_bit_exact(inputs):
    """fc2's weights times 4 (−160 … 200: mantissas −80 … 100 times 2^1, Loihi's rule) reach Lava's Dense as
    (2m, weight_exp = 0) and give the graph runtime's spikes."""
    graph = leaky_graph("LIF")
    graph.nodes["fc2"].weight = graph.nodes["fc2"].weight * 4
    graph.nodes["n2"].v_threshold = graph.nodes["n2"].v_threshold * 4
    assert np.abs(graph.nodes["fc2"].weight).max() > 127
    run = run_lava(graph, inputs, progress=False)
    _assert_same(graph, inputs, run, ["n1", "n2", "n3"])


@needs_lava
def test_li_readout_runs_on_the_host(inputs):
    graph = leaky_graph("CubaLIF", readout="membrane")
    run = run_lava(graph, inputs, progress=False)
    _assert_same(graph, inputs, run, ["n1", "n2"])   # logits: the LI's mean fixed-point membrane, as GraphSNN's


@needs_lava
def test_verify_lists_lava_as_agreeing(inputs):
    from kdsnn.deploy.verify import verify_graph

    checks = {c.backend: c for c in verify_graph(leaky_graph("LIF"), inputs)}
    lava = checks["Lava (Loihi 2 sim, fixed_pt)"]
    assert lava.status == "agree", lava.detail
    assert "identical spikes at 3 populations" in lava.detail and "process-graph route" in lava.detail
    assert not any(c.failed for c in checks.values()), [(c.backend, c.detail) for c in checks.values() if c.failed]


# --- the mapping and refusals, without Lava -----------------------------------------------------------

def test_plan_takes_the_models_decays():
    lif = {p.name: p for p in lava_graph_plan(leaky_graph("LIF")).populations}
    assert (lif["n2"].du, lif["n2"].dv, lif["n2"].threshold, lif["n2"].kind) == (4095, 512, 90, "LIF")  # 4096/8
    cuba = {p.name: p for p in lava_graph_plan(leaky_graph("CubaLIF")).populations}
    assert (cuba["n3"].du, cuba["n3"].dv, cuba["n3"].threshold) == (1023, 512, 80)  # 4096/4 − 1, 4096/8
    li = lava_graph_plan(leaky_graph("LIF", readout="membrane"))
    assert [p.name for p in li.populations] == ["n2"] and li.readout_source == "n2"
    assert li.readout_nodes == ["fc3", "li"]
    with pytest.raises(KdsnnError, match="'n1' of type LIF cannot be exported to netx"):
        netx_plan(leaky_graph("LIF"))


def _why(graph: nir.NIRGraph) -> str:
    ok, why = lava_supports(graph)
    assert not ok and "\n" not in why
    return why


def test_refusals_name_the_node_and_reason():
    g = leaky_graph("LIF")
    set_meta(g, {**get_meta(g), "integer": False})
    assert "LIF node 'n1' has float dynamics" in _why(g)
    from kdsnn.deploy.backends import BACKENDS
    from kdsnn.export.graph_view import GraphView
    assert "LIF node 'n1' has float dynamics" in BACKENDS["lava"].supports(GraphView(g))[1]
    g = leaky_graph("LIF")
    g.nodes["n2"].v_reset = np.full(SIZES[2], -3.0)
    assert "LIF node 'n2' resets to -3; Lava's LIF resets to 0" in _why(g)
    g = leaky_graph("LIF")
    g.nodes["n3"].v_threshold = np.arange(SIZES[3], dtype=np.float64) + 50
    assert "LIF node 'n3' has per-neuron thresholds" in _why(g)
    g = leaky_graph("CubaLIF")
    g.nodes["fc2"].bias = np.ones(SIZES[2])
    assert "CubaLIF node 'n2': its synapses' bias enters the decaying current" in _why(g)
    g = copy.deepcopy(leaky_graph("LIF"))   # an LI between populations cannot be a Lava population
    g.nodes["n2"] = nir.LI(tau=np.full(SIZES[2], 4.0), r=np.full(SIZES[2], 4.0), v_leak=np.zeros(SIZES[2]))
    assert "LI node 'n2' does not spike" in _why(g)
    g = leaky_graph("CubaLIF")   # dt/τ_syn = 1/3 is no 12-bit fraction: the integer model itself refuses
    g.nodes["n2"].tau_syn = np.full(SIZES[2], 3.0)
    g.nodes["n2"].w_in = np.full(SIZES[2], 3.0)
    assert "CubaLIF node 'n2'" in _why(g) and "is not one (du + 1)/4096" in _why(g)


def test_membrane_check_follows_the_decaying_current():
    """A CubaLIF current grows past one step's input: I = trunc(¾·I) + 40000 gives 40000, 70000, 92500,
    109375, 122031.25, 131523.4375 > 131071 at the sixth step (Lava wraps its 24-bit u there)."""
    from kdsnn.deploy.lava.runtime import membrane_extremes
    from kdsnn.neuron_models import CubaLIFModel

    one = np.ones(1)
    model = CubaLIFModel(tau_syn=one * 4, tau_mem=one * 8, r=one * 8, v_leak=one * 0, threshold=one * 131071,
                         v_reset=one * 0, w_in=one * 4, integer=True)
    lo, hi = membrane_extremes("n", torch.full((2, 1, 1), 1000.0, dtype=torch.float64), 131071, model)
    assert (lo, hi) == (0.0, 2625.0)   # I: 1000, 750 + 1000; h: 1000, trunc(1000·7/8) + 1750 = 875 + 1750
    with pytest.raises(KdsnnError, match="synaptic current reached 131523"):
        membrane_extremes("n", torch.full((6, 1, 1), 40000.0, dtype=torch.float64), 131071, model)
