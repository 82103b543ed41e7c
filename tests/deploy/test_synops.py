"""The PyTorch-side SynOps/MAC counter: fan-out maps by hand, composed pooling, ANN MACs vs torch's counter."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kdsnn.deploy import synops
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import student_to_graph
from kdsnn.export.node_shapes import conv_pads
from kdsnn.export.runtime import GraphSNN
from kdsnn.models import build_model
from tests.helpers import calibrated_student
from tests.student_synops_oracle import count_student


def test_conv_fanout_maps_by_hand():
    # 3×3 kernel, padding 1, stride 1 on 3×3: corners lie in 4 windows, edges in 6, the centre in 9.
    m = synops.conv_fanout((3, 3), (3, 3), (3, 3), (1, 1), (1, 1))
    assert m.tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]
    # Stride 2, padding 1 on 4×4 → 2×2 outputs; window 0 covers rows {0,1}, window 1 rows {1,2,3}:
    # per row 1, 2, 1, 1 windows; the map is the outer product.
    m = synops.conv_fanout((4, 4), (2, 2), (3, 3), (2, 2), (1, 1))
    c = torch.tensor([1.0, 2, 1, 1], dtype=torch.float64)
    assert torch.equal(m, torch.outer(c, c))
    # 'same' with a 2×2 kernel: PyTorch pads 0 before, 1 after; windows cover rows {y, y+1}: 1, 2, 2.
    same = nir.Conv2d(input_shape=(3, 3), weight=np.ones((1, 1, 2, 2)), stride=1, padding="same", dilation=1,
                      groups=1, bias=np.zeros(1))
    pads = conv_pads(same)[:2]  # (top, left): the graph view resolves 'same' as PyTorch does
    assert pads == (0, 0)
    m = synops.conv_fanout((3, 3), (3, 3), (2, 2), (1, 1), pads)
    c = torch.tensor([1.0, 2, 2], dtype=torch.float64)
    assert torch.equal(m, torch.outer(c, c))


def test_pool_back_crops_uncovered_positions():
    fan = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], dtype=torch.float64)
    back = synops.pool_back(fan, (1, 5, 5), [2, 2], [2, 2], [0, 0])
    expect = torch.tensor([[1, 1, 2, 2, 0], [1, 1, 2, 2, 0], [3, 3, 4, 4, 0], [3, 3, 4, 4, 0], [0, 0, 0, 0, 0]],
                          dtype=torch.float64)
    assert torch.equal(back[0], expect)
    with pytest.raises(KdsnnError, match="non-overlapping"):
        synops.pool_back(fan, (1, 3, 3), [2, 2], [1, 1], [0, 0])


def _pool_dense_graph() -> nir.NIRGraph:
    """DESIGN.md's example: IF (1,5,5) → SumPool 2×2 → Flatten → Affine 4→10."""
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 5, 5])}),
             "skip": nir.Scale(scale=np.ones((1, 5, 5))),
             "if": nir.IF(r=np.ones((1, 5, 5)), v_threshold=np.full((1, 5, 5), 0.5), v_reset=np.zeros((1, 5, 5))),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=np.ones((10, 4)), bias=np.zeros(10)),
             "output": nir.Output(output_type={"output": np.array([10])})}
    chain = ["input", "skip", "if", "pool", "flat", "fc", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:], strict=True)), type_check=False)


def test_graph_fanouts_compose_pooling_with_the_dense_layer():
    g = _pool_dense_graph()
    fo = synops.graph_fanouts(g)
    assert fo["fc"].source == "if" and fo["skip"].source == "input"
    expect = torch.zeros(1, 5, 5, dtype=torch.float64)
    expect[0, :4, :4] = 10  # a spike before the 2×2 pool reaches the 10 outputs; row/col 4 reach nothing
    assert torch.equal(fo["fc"].fanout, expect)
    assert torch.equal(fo["skip"].fanout, torch.ones(1, 5, 5, dtype=torch.float64))
    assert synops.graph_ann_macs(g) == 40  # the Affine's 4×10; Scale and pooling are not MACs


def test_count_run_by_hand():
    g = _pool_dense_graph()
    x = torch.zeros(2, 1, 1, 5, 5)  # [T, B, ...] spikes
    x[0, 0, 0, 0, 1] = x[1, 0, 0, 3, 3] = x[1, 0, 0, 4, 0] = 1
    c = synops.count_run(g, GraphSNN(g, timesteps=2).run(x))
    # Scale: 3 input spikes × 1; fc: the IF copies them: (0,1) and (3,3) reach 10 each, (4,0) none.
    assert c.synops == {"skip": 3, "fc": 20}
    assert c.macs_effective == {} and c.per_sample()["synops"] == 23


def test_count_graph_analog_first_layer_by_hand():
    w = np.ones((2, 1, 3, 3))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1, 3, 3])}),
                            "conv": nir.Conv2d(input_shape=(3, 3), weight=w, stride=1, padding=1, dilation=1,
                                               groups=1, bias=np.zeros(2)),
                            "if": nir.IF(r=np.ones((2, 3, 3)), v_threshold=np.ones((2, 3, 3)),
                                         v_reset=np.zeros((2, 3, 3))),
                            "output": nir.Output(output_type={"output": np.array([2, 3, 3])})},
                     edges=[("input", "conv"), ("conv", "if"), ("if", "output")], type_check=False)
    x = torch.zeros(3, 2, 1, 3, 3)  # T = 3, B = 2
    x[:, 0, 0, 0, 0] = 0.5   # sample 0: a corner (4 windows × 2 channels = 8 per step)
    x[:, 1, 0, 1, 2] = -2.0  # sample 1: an edge (6 windows × 2 channels = 12 per step)
    c = synops.count_graph(g, {}, x)
    assert c.macs_effective == {"conv": 3 * (8 + 12)}
    assert c.macs_dense == {"conv": 3 * 2 * 2 * 49}  # every pixel, every step, every sample: 98 synapses
    assert synops.graph_ann_macs(g) == 2 * 9 * 9     # 18 outputs × 9 inputs each (dense, borders included)


def test_ann_macs_by_hand_and_against_torch_flop_counter():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(100, 10))
    assert synops.ann_macs(net, torch.zeros(3, 1, 5, 5)) == 4 * 25 * 9 + 100 * 10
    grouped = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
    assert synops.ann_macs(grouped, torch.zeros(1, 4, 6, 6)) == 8 * 3 * 3 * (2 * 9)
    for arch in ("mnist_cnn", "preresnet20"):
        teacher = build_model(arch, (1, 8, 8), 10)
        x = torch.zeros(2, 1, 8, 8)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            teacher.eval()(x[:1])
        assert synops.ann_macs(teacher, x) * 2 == counter.get_total_flops(), arch  # torch counts 2 FLOPs per MAC
    with pytest.raises(KdsnnError, match="no Conv2d or Linear"):
        synops.ann_macs(nn.ReLU(), torch.zeros(1, 3))


def test_count_student_matches_graph_count_on_the_same_spikes(digits_batch):
    student = calibrated_student("snn_2conv")
    x = digits_batch[0][:4]
    c = count_student(student, x)
    assert list(c.synops) == ["blocks.2.conv", "blocks.5.fc"] and list(c.macs_effective) == ["blocks.0.conv"]
    # by hand: an if1 spike at (c, y, x) of the 8×8 map reaches, through the 2×2 pool, the 128 channels
    # at the 4×4 positions covered by a 3×3/pad-1 window around (y//2, x//2).
    spikes = []
    hooks = [m.neuron.register_forward_hook(lambda _m, _i, o: spikes.append(o))
             for m in (student.blocks[0], student.blocks[2])]
    with torch.no_grad():
        student(x)
    for h in hooks:
        h.remove()
    cover = torch.tensor([2.0, 3, 3, 2], dtype=torch.float64)
    fan4 = 128 * torch.outer(cover, cover)
    fan8 = fan4.repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert c.synops["blocks.2.conv"] == int((spikes[0].double() * fan8).sum())
    assert c.synops["blocks.5.fc"] == int(spikes[1].double().sum()) * 10  # each pooled spike reaches 10 outputs
    assert c.macs_effective["blocks.0.conv"] == 4 * 64 * int(
        ((x != 0).double()[:, 0] * synops.conv_fanout((8, 8), (8, 8), (3, 3), (1, 1), (1, 1))).sum())
    g = student_to_graph(student)
    assert synops.ann_macs(student, x) == synops.graph_ann_macs(g)
    with pytest.raises(KdsnnError, match="student SNN"):
        count_student(build_model("mnist_cnn", (1, 8, 8), 10), x)


def test_unsupported_graph_shapes_raise():
    g = _pool_dense_graph()
    g.nodes["pool"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0]))
    g.nodes["flat"] = nir.Flatten(input_type={"input": np.array([1, 4, 4])}, start_dim=0, end_dim=-1)
    g.nodes["fc"] = nir.Affine(weight=np.ones((10, 16)), bias=np.zeros(10))
    with pytest.raises(KdsnnError, match="non-overlapping"):
        synops.graph_fanouts(g)
    with pytest.raises(KdsnnError, match=r"\[T, B, ...\]"):
        synops.count_graph(_pool_dense_graph(), {}, torch.zeros(5, 5))
