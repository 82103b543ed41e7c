"""NIR's Conv1d (issue 15): the graph runtime, the simulator (as the explicit matrix of its 1×K Conv2d) and ONNX
against a hand-written 1-D convolution, and its SynOps counted by hand."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from kdsnn.deploy.backends import BACKENDS
from kdsnn.deploy.simulator import simulate
from kdsnn.export.graph_view import GraphView
from kdsnn.export.runtime import GraphSNN

RNG = np.random.default_rng(11)
W = np.round(RNG.normal(0, 2, (3, 2, 3)))
B = np.round(RNG.normal(0, 1, 3))


def _graph(padding, stride: int = 1) -> nir.NIRGraph:
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([2, 7])),
                               "conv": nir.Conv1d(input_shape=7, weight=W, stride=stride, padding=padding, dilation=1,
                                                  groups=1, bias=B),
                               "if": nir.IF(r=np.ones(1), v_threshold=np.full(1, 2.0), v_reset=np.zeros(1)),
                               "output": nir.Output(np.array([3, 7]))},
                        edges=[("input", "conv"), ("conv", "if"), ("if", "output")], type_check=False)


def _conv_by_hand(x: np.ndarray, pad: int, stride: int) -> np.ndarray:
    """y[o, j] = b[o] + Σ_c Σ_k W[o, c, k] · x[c, j·stride + k − pad] (zeros outside)."""
    c, n = x.shape[-2:]
    xp = np.concatenate([np.zeros((*x.shape[:-1], pad)), x, np.zeros((*x.shape[:-1], pad))], axis=-1)
    out = (n + 2 * pad - 3) // stride + 1
    return np.stack([np.einsum("ock,...ck->...o", W, xp[..., j * stride:j * stride + 3]) for j in range(out)], -1) \
        + B[:, None]


@pytest.mark.parametrize("padding,stride", [(1, 1), (0, 2), ("same", 1)])
def test_conv1d_everywhere_equals_the_hand_convolution(padding, stride: int) -> None:
    g = _graph(padding, stride)
    view = GraphView.of(g)
    pad = 1 if padding in (1, "same") else 0
    assert view.shape["conv"] == (3, (7 + 2 * pad - 3) // stride + 1)
    x = (RNG.random((5, 4, 2, 7)) < 0.5).astype(float)
    cur = _conv_by_hand(x, pad, stride)
    v, want = np.zeros(cur.shape[1:]), []
    for t in range(5):
        h = v + cur[t]
        s = (h > 2).astype(float)
        v = np.where(s > 0, 0.0, h)
        want.append(s)
    want = np.array(want)
    assert np.array_equal(GraphSNN(g).run(torch.tensor(x)).outputs["if"].numpy(), want)
    res = simulate(g, torch.tensor(x))
    assert np.array_equal(res.spikes["if"].numpy(), want)
    onnx = BACKENDS["onnx-step"].run(g, torch.tensor(x))
    assert np.array_equal(np.asarray(onnx.logits), want.sum(0))
    # SynOps: each input spike reaches the output positions whose window covers it, times 3 channels
    reach = np.zeros(7)
    out_len = view.shape["conv"][1]
    for j in range(out_len):
        for k in range(3):
            i = j * stride + k - pad
            if 0 <= i < 7:
                reach[i] += 1
    assert res.layers["conv"].synops == int((x.sum(axis=(0, 1, 2)) * reach).sum()) * 3
