"""Kernel connectivity of the simulator against the explicit sparse formulation (the oracle) and hand counts.

Scale-independent properties on small graphs: every conv geometry (strides, padding, dilation,
groups, borders), pools of size 2 and 4 composed by coordinates before a conv or a dense layer,
residual sums; then a 3×32×32 student through ``simulate`` and the plan memory of snn_resnet18.
"""
from __future__ import annotations

import tracemalloc

import nir
import numpy as np
import pytest
import torch

from kdsnn.deploy.simulator import Plan, simulate
from kdsnn.export.graph import set_meta, student_to_graph
from kdsnn.export.quantize import quantize_graph
from kdsnn.export.runtime import GraphSNN
from kdsnn.models import build_model


def _if(shape, theta) -> nir.IF:
    return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, float(theta)), v_reset=np.zeros(shape))


def _graph(nodes: dict, edges: list, integer: bool, t: int = 3) -> nir.NIRGraph:
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    set_meta(g, {"timesteps": t, "encoding": "direct", "integer": integer, "input_scale": None})
    return g


def _weights(rng, shape, integer: bool) -> np.ndarray:
    return rng.integers(-3, 4, size=shape).astype(np.float64) if integer else rng.normal(size=shape)


def _conv_net(rng, integer: bool, hw=(7, 6), cin=4, cout=6, k=(3, 3), stride=1, pad=1, dil=1, groups=1,
              pool: tuple[int, int] | None = None, head: str = "conv") -> nir.NIRGraph:
    """Input → Scale → IF (copies spikes) → [pool k, stride s] → conv/dense → IF → Output."""
    h, w = hw
    shape = (cin, h, w)
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)}),
             "skip": nir.Scale(scale=np.ones(shape)), "if1": _if(shape, 0.5)}
    chain = ["input", "skip", "if1"]
    ph, pw = h, w
    if pool is not None:
        kk, ss = pool
        nodes["pool"] = nir.SumPool2d(kernel_size=np.array([kk, kk]), stride=np.array([ss, ss]),
                                      padding=np.array([0, 0]))
        chain.append("pool")
        ph, pw = (h - kk) // ss + 1, (w - kk) // ss + 1
    if head == "conv":
        wt = _weights(rng, (cout, cin // groups, *k), integer)
        nodes["syn"] = nir.Conv2d(input_shape=(ph, pw), weight=wt, stride=stride, padding=pad, dilation=dil,
                                  groups=groups, bias=_weights(rng, cout, integer))
        out = torch.nn.functional.conv2d(torch.zeros(1, cin, ph, pw, dtype=torch.float64), torch.from_numpy(wt), None,
                                         stride, pad, dil, groups).shape[1:]
    else:
        nodes["flat"] = nir.Flatten(input_type={"input": np.array([cin, ph, pw])}, start_dim=0, end_dim=-1)
        chain.append("flat")
        nodes["syn"] = nir.Affine(weight=_weights(rng, (cout, cin * ph * pw), integer),
                                  bias=_weights(rng, cout, integer))
        out = (cout,)
    nodes["if2"] = _if(tuple(out), 2.0)
    nodes["output"] = nir.Output(output_type={"output": np.array(out)})
    chain += ["syn", "if2", "output"]
    return _graph(nodes, list(zip(chain[:-1], chain[1:], strict=True)), integer)


def _spikes(g: nir.NIRGraph, t: int = 3, b: int = 2, rate: float = 0.4, seed: int = 0) -> torch.Tensor:
    shape = tuple(int(v) for v in g.nodes["input"].input_type["input"])
    return torch.bernoulli(torch.full((t, b, *shape), rate), generator=torch.Generator().manual_seed(seed))


def _assert_same_run(a, b) -> None:
    assert sorted(a.spikes) == sorted(b.spikes)
    for n in a.spikes:
        assert torch.equal(a.spikes[n], b.spikes[n]), n
    assert torch.equal(a.output_seq, b.output_seq) and torch.equal(a.logits, b.logits)
    assert a.layers == b.layers and a.neurons == b.neurons


def _assert_same_connectivity(g: nir.NIRGraph) -> tuple[Plan, Plan]:
    kernel, sparse = Plan(g), Plan(g, connectivity="sparse")
    assert [c.name for c in kernel.connections] == [c.name for c in sparse.connections]
    for k, s in zip(kernel.connections, sparse.connections, strict=True):
        assert type(k).__name__ == "KernelConnection", k.name  # the kernel form covers these graphs
        a, b = k.weights(), s.weights()
        assert a.shape == b.shape and k.synapses == s.synapses == a.nnz, k.name
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices), k.name
        assert np.array_equal(a.data, b.data), k.name  # bit for bit, zero weights kept as wired synapses
        assert np.array_equal(k.fanout, s.fanout), k.name
        # the bound Σ|w| per target: exact for integer weights (where it decides dtypes), to rounding otherwise
        if k.integral:
            assert np.array_equal(k.abs_fanin, s.abs_fanin), k.name
        np.testing.assert_allclose(k.abs_fanin, s.abs_fanin, rtol=1e-12)
    return kernel, sparse


GEOMETRIES = [dict(), dict(stride=2), dict(stride=2, pad=0), dict(pad="same", dil=2), dict(k=(2, 3), pad=(1, 0)),
              dict(stride=(2, 1), dil=(1, 2), groups=2), dict(k=(1, 1), pad=0, stride=2), dict(k=(3, 3), pad=2, dil=2,
                                                                                                  stride=3)]


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()) or "plain")
def test_conv_geometries_match_the_sparse_oracle(geom, integer):
    g = _conv_net(np.random.default_rng(0), integer, **geom)
    kernel, sparse = _assert_same_connectivity(g)
    x = _spikes(g)
    _assert_same_run(simulate(kernel, x, fast=False), simulate(sparse, x, fast=False))
    if integer:
        assert kernel.fast is not None
        _assert_same_run(simulate(kernel, x), simulate(sparse, x, fast=False))


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("pool,head,hw", [((2, 2), "conv", (8, 7)), ((4, 4), "conv", (9, 10)),
                                          ((2, 2), "dense", (5, 5)), ((4, 4), "dense", (9, 8)),
                                          ((2, 3), "conv", (8, 8))])
def test_pools_compose_by_coordinates(pool, head, hw, integer):
    g = _conv_net(np.random.default_rng(1), integer, hw=hw, pool=pool, head=head)
    kernel, sparse = _assert_same_connectivity(g)
    x = _spikes(g, rate=0.3)
    r = simulate(kernel, x)
    _assert_same_run(r, simulate(sparse, x, fast=False))
    if integer:
        assert kernel.fast is not None


def test_pool_4_before_dense_counts_by_hand():
    # 1×9×9 → 4×4 sum pool (2×2 windows cover rows/cols 0-7) → flatten → 7-way dense: a spike inside a window
    # reaches the 7 outputs, one in row or column 8 reaches nothing.
    g = _conv_net(np.random.default_rng(2), True, hw=(9, 9), cin=1, cout=7, pool=(4, 4), head="dense")
    x = torch.zeros(1, 1, 1, 9, 9)
    x[0, 0, 0, 0, 0] = x[0, 0, 0, 7, 3] = x[0, 0, 0, 8, 2] = x[0, 0, 0, 3, 8] = 1
    r = simulate(g, x)
    assert r.layers["syn"].synops == 2 * 7 and r.layers["syn"].synapses == 64 * 7


def test_strided_conv_fanout_by_hand():
    # 3×3, stride 2, padding 1 on 4×4 → 2×2: input rows lie in 1, 2, 1, 1 windows; fan-out = outer product × C_out.
    g = _conv_net(np.random.default_rng(3), True, hw=(4, 4), cin=1, cout=5, stride=2, pad=1)
    conn = next(c for c in Plan(g).connections if c.name == "syn")
    c = np.array([1, 2, 1, 1])
    assert conn.fanout.reshape(4, 4).tolist() == (5 * np.outer(c, c)).tolist()
    # dilation 2, padding 2, stride 1 on 5×5 (5×5 out): taps at offsets −2, 0, 2 → 2, 2, 3, 2, 2 per axis
    g = _conv_net(np.random.default_rng(3), True, hw=(5, 5), cin=1, cout=1, pad=2, dil=2)
    conn = next(c for c in Plan(g).connections if c.name == "syn")
    c = np.array([2, 2, 3, 2, 2])
    assert conn.fanout.reshape(5, 5).tolist() == np.outer(c, c).tolist()


def test_residual_sum_matches_oracle_and_counts_fanout_plus_one():
    # if1 → conv (3×3, pad 1) → if2, and if1 → Scale(2) → if2 (an integer identity shortcut): two connections
    # into one population; a spike of if1 counts its conv fan-out + 1.
    rng = np.random.default_rng(4)
    shape = (3, 5, 5)
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)}), "skip": nir.Scale(scale=np.ones(shape)),
             "if1": _if(shape, 0.5),
             "conv": nir.Conv2d(input_shape=(5, 5), weight=_weights(rng, (3, 3, 3, 3), True), stride=1, padding=1,
                                dilation=1, groups=1, bias=np.zeros(3)),
             "short": nir.Scale(scale=np.full(shape, 2.0)), "if2": _if(shape, 3.0),
             "output": nir.Output(output_type={"output": np.array(shape)})}
    edges = [("input", "skip"), ("skip", "if1"), ("if1", "conv"), ("conv", "if2"), ("if1", "short"), ("short", "if2"),
             ("if2", "output")]
    g = _graph(nodes, edges, True)
    kernel, sparse = _assert_same_connectivity(g)
    x = _spikes(g, rate=0.3)
    r = simulate(kernel, x)
    _assert_same_run(r, simulate(sparse, x, fast=False))
    _assert_same_run(r, simulate(kernel, x, fast=False))
    assert r.layers["short"].synops == int(r.spikes["if1"].sum())
    fan = next(c for c in kernel.connections if c.name == "conv").fanout
    assert r.layers["conv"].synops == int((r.spikes["if1"].reshape(3, 2, -1).double() * torch.from_numpy(fan)).sum())
    assert torch.equal(r.logits, GraphSNN(g).run(x).logits)


def _student_graph(arch: str, calibrate: bool) -> nir.NIRGraph:
    torch.manual_seed(0)
    m = build_model(arch, (3, 32, 32), 10, width=1.0)
    if calibrate:  # BN statistics from uniform noise images: hidden layers fire at realistic rates
        for mod in m.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.momentum = None
        m.train()
        with torch.no_grad():
            m(torch.rand(8, 3, 32, 32))
    pre = {"raw_scale": 1 / 255, "mean": [0.0] * 3, "std": [1.0] * 3}
    return quantize_graph(student_to_graph(m.eval(), pre))


def test_resnet14_at_cifar_shape_fast_general_and_runtime_agree():
    q = _student_graph("snn_resnet14", calibrate=True)
    x = torch.rand(2, 3, 32, 32)
    plan = Plan(q)
    assert plan.fast is not None
    fast = simulate(plan, x)
    _assert_same_run(fast, simulate(plan, x, fast=False))
    ref = GraphSNN(q).run(x)
    assert torch.equal(fast.logits, ref.logits)
    for n, s in fast.spikes.items():
        assert torch.equal(s.double(), ref.outputs[n]), n
    rates = [st.firing_rate for st in fast.neurons.values()]
    assert min(rates) > 0 and fast.totals()["synops"] > 0


def test_resnet18_plan_memory_is_parameters_plus_neurons():
    # 11.2 M parameters (45 MB as float32), 482 M composed synapses: per-synapse storage needed far above 18 GB
    # at this shape; the kernel plan peaks near 0.35 GB (traced), the bound leaves room.
    q = _student_graph("snn_resnet18", calibrate=False)
    tracemalloc.start()
    plan = Plan(q)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    synapses = sum(c.synapses for c in plan.connections)
    assert synapses > 4.5e8  # the composed connectivity it did not store (482 M synapses)
    print(f"plan peak {peak / 1e6:.0f} MB")
    assert peak < 1.0e9, f"plan peak {peak / 1e6:.0f} MB"


def test_soft_reset_graph_runs_the_general_path_as_the_model_steps():
    # A file written by nir < 1.0.6: IF subtracts θ on a spike (the graph view says so); the simulator's
    # general path steps it as IFModel does, the fast path declines it. Same spikes as the graph runtime.
    from kdsnn.export.reading import set_record

    rng = np.random.default_rng(5)
    nodes = {"input": nir.Input(input_type={"input": np.array([6])}),
             "fc": nir.Linear(weight=rng.integers(-2, 4, size=(5, 6)).astype(np.float64)),
             "if": _if((5,), 2.0), "output": nir.Output(output_type={"output": np.array([5])})}
    g = _graph(nodes, [("input", "fc"), ("fc", "if"), ("if", "output")], True, t=6)
    set_record(g, {"nir_version": "1.0.4"})
    plan = Plan(g)
    assert plan.view.models["if"].reset == "soft" and plan.fast is None
    x = _spikes(g, t=6, b=3, rate=0.6)
    r = simulate(plan, x)
    ref = GraphSNN(g).run(x)
    assert torch.equal(r.spikes["if"].double(), ref.outputs["if"]) and int(r.spikes["if"].sum()) > 0


@pytest.mark.parametrize("arch", ["snn_2conv", "snn_vgg11", "snn_resnet14"])
def test_every_student_kernel_plan_equals_the_sparse_oracle(arch):
    # Digits-sized students (the shapes the other tests run): float and integer graphs, direct analog input;
    # the kernel plan's connectivity and runs (fast and general paths) equal the explicit sparse plan's.
    from kdsnn import data
    from tests.helpers import calibrated_student

    g = student_to_graph(calibrated_student(arch), data.spec("digits").preprocessing())
    x = data.sample_batch("digits", 3)[0]
    for graph in (g, quantize_graph(g)):
        kernel, sparse = _assert_same_connectivity(graph)
        oracle = simulate(sparse, x, fast=False)
        _assert_same_run(simulate(kernel, x, fast=False), oracle)
        _assert_same_run(simulate(kernel, x), oracle)
