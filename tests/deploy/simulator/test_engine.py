"""The event-driven reference simulator: hand-worked graphs, every student arch, foreign graphs, errors."""
from __future__ import annotations

import functools

import nir
import numpy as np
import pytest
import torch

from kdsnn import data
from kdsnn.deploy import synops
from kdsnn.deploy.simulator import Plan, conv_matrix, pool_matrix, simulate
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import get_meta, set_meta, student_to_graph
from kdsnn.export.quantize import quantize_graph
from kdsnn.export.runtime import GraphSNN
from tests.helpers import ALL_STUDENTS, calibrated_student
from tests.student_synops_oracle import count_student


class Foreign(nir.NIRNode):
    """A node type that is no NIR primitive (another tool's own extension)."""

    def __init__(self) -> None:
        self.input_type = {"input": np.array([2])}
        self.output_type = {"output": np.array([2])}

def _if(shape, theta) -> nir.IF:
    return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, float(theta)), v_reset=np.zeros(shape))


def _graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _conv_graph(theta: float = 1.5) -> nir.NIRGraph:
    """Input (1,3,3) → conv 1→2, 3×3, padding 1 → IF → Output (spike counts). No metadata.

    Channel 0: all nine weights 1. Channel 1: only the centre tap is 1, the other eight are 0
    (still wired: they count as synapses).
    """
    w = np.zeros((2, 1, 3, 3))
    w[0] = 1.0
    w[1, 0, 1, 1] = 1.0
    return _graph({"input": nir.Input(input_type={"input": np.array([1, 3, 3])}),
                   "conv": nir.Conv2d(input_shape=(3, 3), weight=w, stride=1, padding=1, dilation=1, groups=1,
                                      bias=np.zeros(2)),
                   "if": _if((2, 3, 3), theta),
                   "output": nir.Output(output_type={"output": np.array([2, 3, 3])})},
                  [("input", "conv"), ("conv", "if"), ("if", "output")])


def test_conv_with_borders_by_hand():
    # Spike input, T = 2, B = 1. Step 0: corner (0,0) and centre (1,1); step 1: edge (0,1).
    x = torch.zeros(2, 1, 1, 3, 3)
    x[0, 0, 0, 0, 0] = x[0, 0, 0, 1, 1] = x[1, 0, 0, 0, 1] = 1
    r = simulate(_conv_graph(), x)
    # Fan-out of a 3×3/pad-1 conv on a 3×3 map: corner 4 windows, edge 6, centre 9; × 2 channels.
    # SynOps = (4 + 9)·2 + 6·2 = 38 (channel 1's zero-weight taps count: structure, not weights).
    assert r.layers["conv"].synops == 38
    assert r.layers["conv"].synapses == 2 * (4 * 4 + 4 * 6 + 9)  # 98 wired synapses
    assert r.layers["conv"].macs_effective == 0
    # Channel 0, step 0: every window holds the centre, the top-left 2×2 windows also the corner:
    # currents [[2,2,1],[2,2,1],[1,1,1]] > 1.5 → 4 spikes (reset to 0), the rest keep v = 1.
    # Step 1: the edge (0,1) adds 1 to rows 0 and 1: v = [[1,1,2],[1,1,2],[1,1,1]] → spikes at (0,2),(1,2).
    # Channel 1 only copies its own pixel (v ≤ 1 everywhere): no spike.
    s = r.spikes["if"]
    assert s.dtype == torch.uint8 and s.shape == (2, 1, 2, 3, 3)
    expect0 = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.uint8)
    expect1 = torch.tensor([[0, 0, 1], [0, 0, 1], [0, 0, 0]], dtype=torch.uint8)
    assert torch.equal(s[0, 0, 0], expect0) and torch.equal(s[1, 0, 0], expect1)
    assert int(s[:, :, 1].sum()) == 0
    assert r.readout == "spike"
    assert torch.equal(r.logits[0, 0], (expect0 + expect1).double())
    n = r.neurons["if"]
    assert (n.spikes, n.updates) == (6, 36) and n.firing_rate == pytest.approx(6 / 36)
    # Active updates: step 0 the centre reaches all 18 neurons; step 1 the edge reaches rows 0-1
    # of both channels (12), and the two spikers are among them: 18 + 12 = 30.
    assert n.active_updates == 30
    assert r.per_sample()["synops"] == 38 and r.per_sample()["neuron_updates"] == 36


def test_sum_pool_before_dense_counts_composed_fanout():
    # DESIGN.md's example: Input (1,5,5) → Scale 1 → IF (θ 0.5: copies its input spikes) →
    # SumPool 2×2 → Flatten → Affine 4→10 → Output (membrane readout). No metadata.
    W = np.arange(40, dtype=np.float64).reshape(10, 4) / 4
    b = np.arange(10) * 0.5
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    g = _graph({"input": nir.Input(input_type={"input": np.array([1, 5, 5])}),
                "skip": nir.Scale(scale=np.ones((1, 5, 5))),
                "if": _if((1, 5, 5), 0.5),
                "pool": pool,
                "flat": nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0, end_dim=-1),
                "fc": nir.Affine(weight=W, bias=b),
                "output": nir.Output(output_type={"output": np.array([10])})},
               [("input", "skip"), ("skip", "if"), ("if", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "output")])
    x = torch.zeros(2, 2, 1, 5, 5)  # [T, B, C, H, W]
    x[0, 0, 0, 0, 1] = 1              # sample 0, step 0: (0,1) → pool window (0,0) → flat index 0
    x[1, 0, 0, 2, 2] = x[1, 0, 0, 3, 3] = 1  # step 1: both in window (1,1) → flat index 3
    x[0, 1, 0, 4, 4] = 1              # sample 1: (4,4) lies outside every 2×2 window of a 5×5 map
    r = simulate(g, x)
    assert r.layers["skip"].synops == 4   # one synapse per input spike
    assert r.layers["fc"].synops == 30    # 10 per spike inside a window, 0 for the cropped one
    assert r.layers["fc"].synapses == 16 * 10  # rows/cols 0-3 lie in a window (16 of 25), each reaches 10
    assert r.readout == "membrane"
    # logits = mean over T of W·pooled + b: sample 0: (W[:,0] + 2·W[:,3]) / 2 + b; sample 1: b.
    expect = np.stack([(W[:, 0] + 2 * W[:, 3]) / 2 + b, b])
    np.testing.assert_allclose(r.logits.numpy(), expect, rtol=0, atol=1e-12)
    n = r.neurons["if"]
    assert (n.spikes, n.updates, n.active_updates) == (4, 100, 4)
    run = GraphSNN(g, timesteps=2).run(x)
    np.testing.assert_allclose(r.logits.numpy(), run.logits.numpy(), atol=1e-5)


def test_analog_first_layer_counts_effective_and_dense_macs():
    # Same conv as above, but with analog direct input over T = 3 given by the caller (foreign graph).
    g = _conv_graph(theta=6.0)
    g.nodes["conv"].weight[1] = 0.0
    g.nodes["conv"].weight[1, 0, 1, 1] = -1.0
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 0, 0], x[0, 0, 1, 1] = 0.5, 2.0
    with pytest.raises(KdsnnError, match="time steps"):
        simulate(g, x)
    r = simulate(g, x, timesteps=3)
    st = r.layers["conv"]
    # Effective: nonzero inputs × fan-out = (4 + 9)·2 = 26 per step, × 3 steps; dense: 98 per step.
    assert (st.macs_effective, st.macs_dense, st.synops, st.analog) == (78, 294, 0, True)
    # Channel 0 current: 2.5 in the top-left 2×2 windows, 2 elsewhere; v reaches 7.5 > 6 at step 3 there,
    # 6 (not > 6) elsewhere. Channel 1 is negative: silent.
    s = r.spikes["if"]
    assert int(s[:2].sum()) == 0
    assert torch.equal(s[2, 0, 0], torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.uint8))
    assert r.neurons["if"].active_updates == 3 * 18  # the centre pixel reaches every neuron each step


def test_conv_and_pool_matrices_match_torch():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 4, 3, 2))
    x = torch.from_numpy(rng.normal(size=(4, 7, 6)))
    for stride, pad, dil, groups in [(1, 1, 1, 1), (2, (1, 0), 1, 2), (1, "same", 2, 1), (2, "valid", 1, 2)]:
        wg = w[:, : 4 // groups]
        node = nir.Conv2d(input_shape=(7, 6), weight=wg, stride=stride, padding=pad, dilation=dil, groups=groups,
                          bias=np.zeros(6))
        m, out = conv_matrix(node, (4, 7, 6))
        ref = torch.nn.functional.conv2d(x[None], torch.from_numpy(wg), None, stride, pad, dil, groups)[0]
        assert out == tuple(ref.shape)
        np.testing.assert_allclose(m @ x.numpy().ravel(), ref.numpy().ravel(), atol=1e-12)
    for k, s, p in [(2, 2, 0), (3, 2, 1), (2, 1, 0)]:
        node = nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([s, s]), padding=np.array([p, p]))
        m, out = pool_matrix(node, (4, 7, 6))
        ref = torch.nn.functional.avg_pool2d(x[None], k, s, p, divisor_override=1)[0]
        assert out == tuple(ref.shape)
        np.testing.assert_allclose(m @ x.numpy().ravel(), ref.numpy().ravel(), atol=1e-12)


def test_overlapping_pool_counts_distinct_targets():
    # 2×2/stride-1 sum pool on a 3×3 map → 2×2 windows. The centre (1,1) lies in all 4 windows,
    # the corner (0,0) in 1. SynOps count distinct targets of the composed connectivity, not paths.
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0]))

    def graph(layer, flat: bool, n_out: int):
        nodes = {"input": nir.Input(input_type={"input": np.array([1, 3, 3])}),
                 "skip": nir.Scale(scale=np.ones((1, 3, 3))), "if": _if((1, 3, 3), 0.5), "pool": pool,
                 "flat": nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0, end_dim=-1),
                 "syn": layer, "output": nir.Output(output_type={"output": np.array([n_out])})}
        chain = ["input", "skip", "if", "pool"] + (["flat"] if flat else []) + ["syn", "output"]
        if not flat:
            del nodes["flat"]
        return _graph(nodes, list(zip(chain[:-1], chain[1:], strict=True)))

    x = torch.zeros(1, 1, 1, 3, 3)
    x[0, 0, 0, 1, 1] = x[0, 0, 0, 0, 0] = 1
    # 1×1 conv after the pool: the centre reaches the 4 window outputs, the corner 1 → 5.
    conv = nir.Conv2d(input_shape=(2, 2), weight=np.ones((1, 1, 1, 1)), stride=1, padding=0, dilation=1, groups=1,
                      bias=np.zeros(1))
    r = simulate(graph(conv, False, 4), x)
    assert r.layers["syn"].synops == 4 + 1
    assert r.layers["syn"].synapses == 4 * 1 + 4 * 2 + 4  # corners in 1 window, edges in 2, the centre in 4
    assert r.logits[0, 0].flatten().tolist() == [2.0, 1.0, 1.0, 1.0]
    # One 1-way linear output: the centre reaches 1 target (through 4 paths: composed weight 4).
    r1 = simulate(graph(nir.Linear(weight=np.ones((1, 4))), True, 1), x)
    assert r1.layers["syn"].synops == 1 + 1 and r1.layers["syn"].synapses == 9
    assert r1.logits.item() == 5.0


def test_two_synaptic_layers_in_series_count_structure_despite_cancellation():
    # Input (2) → Linear [[1, -1]] → Linear [[1], [0]] → IF (2): no neuron between the two layers, so
    # they compose into one connection "l1+l2" with weights [[1, -1], [0, 0]] and structure all-ones
    # (every input reaches both outputs through wired synapses, the zero weight included).
    g = _graph({"input": nir.Input(input_type={"input": np.array([2])}),
                "l1": nir.Linear(weight=np.array([[1.0, -1.0]])),
                "l2": nir.Linear(weight=np.array([[1.0], [0.0]])),
                "if": _if((2,), 0.5), "output": nir.Output(output_type={"output": np.array([2])})},
               [("input", "l1"), ("l1", "l2"), ("l2", "if"), ("if", "output")])
    x = torch.tensor([[[1.0, 1.0]], [[1.0, 0.0]]])  # step 0: both inputs spike (currents cancel), step 1: input 0
    r = simulate(g, x)
    st = r.layers["l1+l2"]
    assert (st.synapses, st.synops) == (4, 2 * 2 + 1 * 2)
    # step 0: currents (0, 0), no spike; step 1: (1, 0) → output 0 spikes
    assert r.spikes["if"][:, 0].tolist() == [[0, 0], [1, 0]]
    assert r.neurons["if"].active_updates == 4  # both neurons received events at both steps
    assert torch.equal(r.logits.float(), GraphSNN(g, timesteps=2).run(x).logits)
    (conn,) = Plan(g).connections
    w = conn.weights()
    assert w.nnz == 4 and w.toarray().tolist() == [[1.0, -1.0], [0.0, 0.0]]
    assert conn.fanout.tolist() == [2, 2]


@functools.cache
def _build(arch: str, readout: str):
    student = calibrated_student(arch, readout=readout)
    g = student_to_graph(student, data.spec("digits").preprocessing())
    return student, g, quantize_graph(g)


def _graphs(arch: str, readout: str = "membrane"):
    return _build(arch, readout)[1:]


def _student_spikes(student, x) -> list[torch.Tensor]:
    """The student's IF outputs in module order (= the order student_to_graph creates IF nodes)."""
    from kdsnn.neurons import IFNeuron
    out: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: out.append(o)) for m in student.modules()
             if isinstance(m, IFNeuron)]
    with torch.no_grad():
        student(x)
    for h in hooks:
        h.remove()
    return out


@pytest.fixture(scope="module")
def batch4() -> torch.Tensor:
    return data.sample_batch("digits", 4)[0]


@pytest.mark.parametrize("arch", ALL_STUDENTS)
def test_every_student_integer_bit_exact_and_synops_match_pytorch_count(arch, batch4):
    student, g, q = _build(arch, "membrane")
    r = simulate(q, batch4)
    ref = GraphSNN(q).run(batch4)
    ifs = [n for n, v in q.nodes.items() if isinstance(v, nir.IF)]
    assert sorted(r.spikes) == sorted(ifs)
    for n in ifs:
        assert torch.equal(r.spikes[n].to(torch.float64), ref.outputs[n]), n
    assert torch.equal(r.logits, ref.logits)
    assert all(st.overflow == 0 for st in r.neurons.values())
    rates = [st.firing_rate for st in r.neurons.values()]
    assert min(rates) > 0.0  # non-trivial activity in every layer
    count = synops.count_run(q, ref)
    assert {k: v.synops for k, v in r.layers.items() if not v.analog} == count.synops
    assert {k: v.macs_effective for k, v in r.layers.items() if v.analog} == count.macs_effective
    assert {k: v.macs_dense for k, v in r.layers.items() if v.analog} == count.macs_dense
    # float graph: the simulator runs float64, GraphSNN float32; SynOps are checked on the simulator's spikes
    rf = simulate(g, batch4)
    seq = batch4.double().unsqueeze(0).expand(rf.timesteps, *batch4.shape)
    cf = synops.count_graph(g, rf.spikes, seq)
    assert {k: v.synops for k, v in rf.layers.items() if not v.analog} == cf.synops
    reff = GraphSNN(g).run(batch4)
    flips = sum(int((rf.spikes[n].double() != reff.outputs[n].double()).sum()) for n in ifs)
    total = sum(rf.spikes[n].numel() for n in ifs)
    assert flips <= 1e-3 * total
    torch.testing.assert_close(rf.logits.float(), reff.logits, atol=1e-3, rtol=1e-3)
    # the student model itself: its own spike maps counted by module walk and by graph walk agree
    cs = count_student(student, batch4)
    cg = synops.count_graph(g, dict(zip(ifs, _student_spikes(student, batch4), strict=True)), seq)
    assert list(cs.synops.values()) == list(cg.synops.values())
    assert (cs.total_macs_effective, cs.total_macs_dense) == (cg.total_macs_effective, cg.total_macs_dense)
    # dense MACs of the student as an ANN: hooks on the model = the graph's synaptic layers once
    assert synops.ann_macs(student, batch4) == synops.graph_ann_macs(g)


def test_spike_readout_bit_exact(batch4):
    _, q = _graphs("snn_2conv", readout="spike")
    r = simulate(q, batch4, batch_size=3)  # two chunks
    ref = GraphSNN(q).run(batch4)
    assert r.readout == "spike"
    assert torch.equal(r.logits, ref.logits)
    assert torch.equal(r.spikes["if3"].double(), ref.outputs["if3"])


def test_bernoulli_encoding_counts_input_synops_and_is_seeded(batch4):
    student = calibrated_student("snn_2conv", encoding="bernoulli")
    q = quantize_graph(student_to_graph(student, data.spec("digits").preprocessing()))
    x = batch4.clamp(0, 1).double()
    a, b = simulate(q, x, seed=3), simulate(q, x, seed=3)
    assert torch.equal(a.logits, b.logits)
    assert a.layers["conv1"].synops > 0 and a.layers["conv1"].macs_effective == 0
    spikes_in = torch.bernoulli(x.unsqueeze(0).expand(4, *x.shape).contiguous(),
                                generator=torch.Generator().manual_seed(3))
    ref = GraphSNN(q).run(spikes_in)
    assert torch.equal(a.logits, ref.logits)


def test_foreign_graph_without_metadata_matches_graph_runtime():
    # As another tool writes it: AvgPool2d (not Sum), Linear without bias, per-neuron thresholds,
    # no kdsnn metadata. Dyadic weights keep float32 (GraphSNN) and float64 (simulator) exact.
    rng = np.random.default_rng(0)
    w1 = rng.integers(-8, 9, size=(4, 2, 3, 3)) / 8
    w2 = rng.integers(-8, 9, size=(5, 4 * 3 * 3)) / 8
    g = _graph({"in": nir.Input(input_type={"input": np.array([2, 6, 6])}),
                "c": nir.Conv2d(input_shape=(6, 6), weight=w1, stride=1, padding=1, dilation=1, groups=1,
                                bias=rng.integers(-4, 5, size=4) / 16),
                "n1": nir.IF(r=np.ones((4, 6, 6)), v_threshold=np.full((4, 6, 6), 0.5), v_reset=np.zeros((4, 6, 6))),
                "p": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
                "f": nir.Flatten(input_type={"input": np.array([4, 3, 3])}, start_dim=0, end_dim=-1),
                "l": nir.Linear(weight=w2),
                "n2": nir.IF(r=np.ones(5), v_threshold=np.array([0.25, 0.5, 0.75, 1.0, 1.25]), v_reset=np.zeros(5)),
                "out": nir.Output(output_type={"output": np.array([5])})},
               [("in", "c"), ("c", "n1"), ("n1", "p"), ("p", "f"), ("f", "l"), ("l", "n2"), ("n2", "out")])
    assert get_meta(g) == {}
    x = torch.from_numpy(rng.integers(0, 5, size=(3, 2, 6, 6)) / 4)
    r = simulate(g, x, timesteps=5)
    ref = GraphSNN(g, timesteps=5).run(x)
    for n in ("n1", "n2"):
        assert torch.equal(r.spikes[n].float(), ref.outputs[n]), n
    assert r.readout == "spike" and torch.equal(r.logits.float(), ref.logits)
    assert r.spikes["n2"].sum() > 0
    # A spike of n1 reaches the 5 outputs through its pool window: every n1 position lies in one.
    assert r.layers["l"].synops == 5 * int(r.spikes["n1"].sum())


def test_integer_overflow_is_reported_not_clipped():
    g = _graph({"input": nir.Input(input_type={"input": np.array([2])}),
                "fc": nir.Affine(weight=np.array([[4e6, 0], [0, 1]]), bias=np.zeros(2)),
                "if": nir.IF(r=np.ones(2), v_threshold=np.array([1e8, 0]), v_reset=np.zeros(2)),
                "output": nir.Output(output_type={"output": np.array([2])})},
               [("input", "fc"), ("fc", "if"), ("if", "output")])
    set_meta(g, {"timesteps": 4, "encoding": "direct", "integer": True, "input_scale": None})
    x = torch.ones(4, 1, 2)  # spikes on both inputs every step
    r = simulate(g, x)
    st = r.neurons["if"]
    # neuron 0 integrates 4e6 per step: 4e6, 8e6, 12e6, 16e6; the last two exceed 2^23 − 1 = 8388607
    assert st.overflow == 2
    assert st.max_abs_membrane == 16e6
    assert torch.equal(r.logits, GraphSNN(g).run(x).logits)
    assert r.totals()["overflow"] == 2


def test_bad_input_and_unsupported_nodes_raise(batch4):
    _, q = _graphs("snn_2conv")
    with pytest.raises(KdsnnError, match="does not match"):
        simulate(q, torch.zeros(2, 1, 7, 7))
    with pytest.raises(KdsnnError, match="does not match"):
        simulate(q, torch.zeros(2, 8, 8))
    with pytest.raises(KdsnnError, match="steps"):
        simulate(q, torch.zeros(3, 2, 1, 8, 8), timesteps=4)
    with pytest.raises(KdsnnError, match="NaN"):
        simulate(q, torch.full((1, 1, 8, 8), float("nan")))
    # a non-spiking LI between populations: the simulator delivers events, not graded values
    li = _graph({"input": nir.Input(input_type={"input": np.array([2])}),
                 "fc": nir.Linear(weight=np.eye(2)),
                 "li": nir.LI(tau=np.full(2, 2.0), r=np.ones(2), v_leak=np.zeros(2)),
                 "fc2": nir.Linear(weight=np.eye(2)),
                 "output": nir.Output(output_type={"output": np.array([2])})},
                [("input", "fc"), ("fc", "li"), ("li", "fc2"), ("fc2", "output")])
    with pytest.raises(KdsnnError, match="'li' does not spike"):
        simulate(li, torch.ones(1, 1, 2))
    # a node type no backend runs (kdsnn reads every NIR 1.0.8 primitive: a node class from elsewhere)
    odd = _graph({"input": nir.Input(input_type={"input": np.array([2])}),
                  "thr": Foreign(),
                  "output": nir.Output(output_type={"output": np.array([2])})},
                 [("input", "thr"), ("thr", "output")])
    with pytest.raises(KdsnnError, match="'thr' of type Foreign is not supported"):
        simulate(odd, torch.ones(1, 1, 2))
    bad = _conv_graph()
    bad.nodes["conv"].weight = np.ones((2, 3, 3, 3))  # expects 3 input channels, gets 1
    with pytest.raises(KdsnnError, match="expects 3 input channels, gets 1"):  # the graph view's check
        simulate(bad, torch.ones(1, 1, 1, 3, 3))


def test_progress_bar_and_dict_summary(batch4, capsys, monkeypatch):
    monkeypatch.setenv("KDSNN_PROGRESS", "1")  # bars are hidden when stderr is not a terminal
    _, q = _graphs("snn_2conv")
    r = simulate(q, batch4[:2], progress=True)
    assert "simulate" in capsys.readouterr().err
    d = r.to_dict()
    assert d["per_sample"]["synops"] == d["totals"]["synops"] / 2
    assert d["per_sample"]["neuron_updates"] == (64 * 8 * 8 + 128 * 4 * 4) * 4


def _assert_same_run(a, b) -> None:
    """Two simulations agree bit for bit: spikes, Output values, logits and every counter."""
    assert sorted(a.spikes) == sorted(b.spikes)
    for n in a.spikes:
        assert a.spikes[n].shape == b.spikes[n].shape and torch.equal(a.spikes[n], b.spikes[n]), n
    assert torch.equal(a.output_seq, b.output_seq) and torch.equal(a.logits, b.logits)
    assert a.layers == b.layers and a.neurons == b.neurons


@pytest.mark.parametrize("arch", ["snn_2conv", "snn_resnet14"])
def test_integer_fast_path_matches_general_path(arch):
    # Spike input to an integer graph takes the channels-last integer fast path; fast=False forces the
    # general (float64, neuron-major) path. Conv + pool + linear (snn_2conv) and a residual student.
    _, q = _graphs(arch, readout="spike")
    plan = Plan(q)
    assert plan.fast is not None
    x = torch.bernoulli(torch.full((4, 5, 1, 8, 8), 0.3), generator=torch.Generator().manual_seed(0))
    fast, general = simulate(plan, x), simulate(plan, x, fast=False)
    _assert_same_run(fast, general)
    assert sum(st.spikes for st in fast.neurons.values()) > 0 and fast.totals()["synops"] > 0
    _assert_same_run(simulate(plan, x, batch_size=2), general)  # chunks and thread splits change nothing
    assert fast.spikes["if1"].reshape(-1).shape[0] == fast.spikes["if1"].numel()  # NCHW views reshape as usual


@pytest.mark.parametrize("arch", ["snn_2conv", "snn_resnet14"])
def test_direct_encoded_integer_graphs_take_the_fast_path(arch, batch4, monkeypatch):
    # Direct encoding: the integer graph's input is round(x / input step), integer-valued, so the first
    # layer is integer multiply-adds, exact in any order: the fast path takes it (value × weight runs)
    # and must give the general path's bits and counters (effective and dense MACs, active updates).
    import kdsnn.deploy.simulator.engine as simulator

    f, q = _graphs(arch)
    general = simulate(q, batch4, fast=False)
    monkeypatch.setattr(simulator, "_simulate_general", lambda *a, **k: pytest.fail("general path taken"))
    fast = simulate(q, batch4)
    _assert_same_run(fast, general)
    first = next(lay for lay in fast.layers.values() if lay.analog)
    assert first.macs_effective > 0 and first.macs_dense >= first.macs_effective and first.synops == 0
    monkeypatch.undo()
    assert Plan(f).fast is None  # float weights: general path
    # inputs large enough that int64 could no longer be proven exact: the general path, same bits as ever
    huge = batch4 * 2.0 ** 40
    import kdsnn.deploy.simulator.fast as fast_path
    monkeypatch.setattr(fast_path, "simulate_fast", lambda *a, **k: pytest.fail("fast path taken"))
    simulate(q, huge)


def test_fast_path_declines_what_it_cannot_do_exactly(batch4):
    # Float weights and non-integer resets stay on the general path.
    g = _conv_graph()
    g.nodes["conv"].weight = g.nodes["conv"].weight * 0.5
    assert Plan(g).fast is None
    g = _conv_graph()
    g.nodes["if"] = nir.IF(r=np.ones((2, 3, 3)), v_threshold=np.full((2, 3, 3), 1.5), v_reset=np.full((2, 3, 3), 0.25))
    assert Plan(g).fast is None
    assert Plan(_conv_graph()).fast is not None


def test_fast_path_widens_its_integers_when_the_bounds_ask():
    # int32 state while T steps of the largest current provably fit, int64 beyond, general path past 2**52.
    fast = Plan(_conv_graph()).fast
    assert fast.dtype(4) == np.int32 and fast.dtype(2 ** 29) == np.int64 and fast.dtype(2 ** 51) is None
    g = _conv_graph()
    g.nodes["conv"].weight = g.nodes["conv"].weight * 2.0 ** 28  # 9 · 2^28 per step: int64 from T = 1
    x = torch.bernoulli(torch.full((3, 2, 1, 3, 3), 0.5), generator=torch.Generator().manual_seed(1))
    assert Plan(g).fast.dtype(3) == np.int64
    _assert_same_run(simulate(g, x), simulate(g, x, fast=False))
