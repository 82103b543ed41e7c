"""The integer fast path (deploy/simulator/fast.py): grouped delivery and step windows give the general path's bits."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

import kdsnn.deploy.simulator.fast as fast_path
from kdsnn.deploy.simulator import Plan, simulate
from kdsnn.export.runtime import GraphSNN


def _two_conv_graph(c_mid: int = 7, seed: int = 0) -> nir.NIRGraph:
    """Input (1,6,6) → conv 1→c_mid → IF → conv c_mid→5 → IF → Output, integer weights in [-3, 3], θ = 2.

    With dense input, ``c_mid`` channels fire at one position together: their spikes reach the same
    targets, so the fast path adds them in groups (4 + 2 + 1 for seven).
    """
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-1, 4, (c_mid, 1, 3, 3)).astype(float)
    w2 = rng.integers(-3, 4, (5, c_mid, 3, 3)).astype(float)

    def conv(w, hw):
        return nir.Conv2d(input_shape=(hw, hw), weight=w, stride=1, padding=1, dilation=1, groups=1,
                          bias=np.zeros(w.shape[0]))

    def if_(shape):
        return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, 2.0), v_reset=np.zeros(shape))

    nodes = {"input": nir.Input(input_type={"input": np.array([1, 6, 6])}), "conv1": conv(w1, 6),
             "if1": if_((c_mid, 6, 6)), "conv2": conv(w2, 6), "if2": if_((5, 6, 6)),
             "output": nir.Output(output_type={"output": np.array([5, 6, 6])})}
    edges = [("input", "conv1"), ("conv1", "if1"), ("if1", "conv2"), ("conv2", "if2"), ("if2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _same(a, b) -> None:
    for n in a.spikes:
        assert torch.equal(a.spikes[n], b.spikes[n]), n
    assert torch.equal(a.logits, b.logits)
    assert a.layers == b.layers and a.neurons == b.neurons


def test_rows_reaching_the_same_targets_share_a_shape_id():
    # The id is what lets consecutive spikes be added together: equal ids must mean equal targets
    # (checked by expanding every row's targets), and the channels at one position must share one.
    g = _two_conv_graph()
    net = Plan(g).fast
    rows, runs, _, shape = net.tables
    lo, hi = int(net.conns[1, 2]), int(net.conns[1, 2]) + 7 * 36  # conv2's rows: 36 positions × 7 channels

    def targets(i):
        r = rows[i]
        out = list(range(r[0], r[0] + r[3]))
        for u in runs[r[5]:r[6]]:
            out += list(range(r[0] + u[0], r[0] + u[0] + u[2]))
        return sorted(out)

    seen: dict[int, list[int]] = {}
    for i in range(lo, hi):
        assert seen.setdefault(int(shape[i]), targets(i)) == targets(i)
    per_position = shape[lo:hi].reshape(36, 7)  # channels-last source: a position's channels are consecutive
    assert (per_position == per_position[:, :1]).all()
    assert len(set(per_position[:, 0].tolist())) == 36  # and positions (other first targets) do not


@pytest.mark.parametrize("c_mid", [1, 2, 3, 4, 7, 9])
def test_grouped_delivery_equals_general_path_and_graph_runtime(c_mid):
    g = _two_conv_graph(c_mid)
    x = torch.bernoulli(torch.full((4, 3, 1, 6, 6), 0.9), generator=torch.Generator().manual_seed(c_mid))
    plan = Plan(g)
    assert plan.fast is not None
    fast, general = simulate(plan, x), simulate(plan, x, fast=False)
    _same(fast, general)
    ref = GraphSNN(g).run(x)
    for n in ("if1", "if2"):
        assert torch.equal(fast.spikes[n].to(torch.float64), ref.outputs[n]), n
    assert fast.neurons["if1"].spikes > 0.3 * fast.neurons["if1"].size * 4 * 3  # many channels fire together


@pytest.mark.parametrize("window_steps", [1, 2, 3])
def test_step_windows_change_nothing(window_steps, monkeypatch):
    # A population may run several steps before the next one starts (its weights stay in cache); windows
    # of 1 (step by step), 2, 3 and all 5 steps give the same bits and counters.
    g = _two_conv_graph()
    x = torch.bernoulli(torch.full((5, 2, 1, 6, 6), 0.5), generator=torch.Generator().manual_seed(3))
    plan = Plan(g)
    whole = simulate(plan, x)
    n_in = -(-36 // 8) * 8
    assert plan.fast.window(5, n_in) == 5
    monkeypatch.setattr(fast_path, "WINDOW_BYTES", window_steps * 8 * (plan.fast.n + n_in))
    assert plan.fast.window(5, n_in) == window_steps
    _same(simulate(plan, x), whole)
    _same(whole, simulate(plan, x, fast=False))


def test_bench_split_without_spike_delivery_keeps_input_and_bias_only():
    """bench/scale.py's fixed-cost run: the Input still reaches the first layer (its spikes unchanged), the
    second population gets no spikes, only its bias, so it fires as an IF neuron fed by a constant would."""
    from bench.scale import without_spike_delivery

    graph = _two_conv_graph()
    bias = np.array([1.0, 2.0, 3.0, 0.0, -1.0])
    graph.nodes["conv2"].bias = bias
    x = torch.from_numpy(np.random.default_rng(3).integers(0, 3, (2, 1, 6, 6)).astype(np.float32))
    plan = Plan(graph)
    assert plan.fast is not None
    full = simulate(plan, x, timesteps=4)
    bare = simulate(without_spike_delivery(plan), x, timesteps=4)
    assert torch.equal(bare.spikes["if1"], full.spikes["if1"])
    assert full.layers["conv2"].synops > 0 and bare.layers["conv2"].synops == 0
    expected = np.zeros((4, 5))  # by hand: v += b each step, spike when v > 2, reset to 0
    for c, b in enumerate(bias):
        v = 0.0
        for t in range(4):
            v += b
            if v > 2:
                expected[t, c], v = 1, 0.0
    got = bare.spikes["if2"].numpy()  # [T, B, 5, 6, 6]
    want = np.broadcast_to(expected[:, None, :, None, None], got.shape)
    np.testing.assert_array_equal(got, want)
    assert full.spikes["if2"].sum() != bare.spikes["if2"].sum()  # delivery did matter in the full run
    _same(simulate(plan, x, timesteps=4), full)  # the plan itself is left as it was


@pytest.mark.parametrize("window_steps", [1, 3, None])
def test_rows_run_side_by_side_keep_their_own_state(window_steps, monkeypatch):
    # One thread runs its rows side by side, population by population: SUB_BATCH at a time within the
    # default event budget (None: 19 rows on one thread are two full sub-batches and a part), fewer in a
    # smaller one (1 and 2 rows for the budgets of 1 and 3 steps). Each row's spikes must be those it gives
    # when simulated alone (no membrane, event list or bound leaks between rows), and the whole run the
    # general path's bits.
    from kdsnn.deploy.simulator.fast import SUB_BATCH

    g = _two_conv_graph()
    x = torch.bernoulli(torch.full((3, 2 * SUB_BATCH + 3, 1, 6, 6), 0.6), generator=torch.Generator().manual_seed(5))
    plan = Plan(g)
    if window_steps is not None:
        monkeypatch.setattr(fast_path, "WINDOW_BYTES", window_steps * 8 * (plan.fast.n + 40))
    assert plan.fast.side_by_side(plan.fast.window(3, 40), 40) == {1: 1, 3: 2, None: SUB_BATCH}[window_steps]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole = simulate(plan, x)
        alone = [simulate(plan, x[:, b:b + 1]) for b in range(x.shape[1])]
    finally:
        torch.set_num_threads(threads)
    for b, one in enumerate(alone):
        for n in ("if1", "if2"):
            assert torch.equal(whole.spikes[n][:, b:b + 1], one.spikes[n]), (b, n)
        assert torch.equal(whole.logits[b:b + 1], one.logits), b
    assert len({int(one.spikes["if2"].sum()) for one in alone}) > 3  # the rows differ: a leak would show
    _same(whole, simulate(plan, x, fast=False))
