"""netx export and the Lava backend, checked against the integer PyTorch graph.

Lava runs (``Loihi2SimCfg(select_tag='fixed_pt')``, Lava's bit-accurate CUBA/Dense/Conv models)
must give spike trains identical to ``GraphSNN(graph).run(x).outputs`` at every IF layer, on
real digits inputs, for a conv network whose pools are composed into the netx layers (spike
and membrane readouts). The pool compositions are also checked on their own against
PyTorch's sum pool + conv, and the file against what netx itself builds from it.

snn_vgg11 is exported and loaded by netx here but not run: Lava 0.10's conv is a Python loop
over (out, in) channel pairs of ``scipy.signal.convolve2d`` and takes ~45 s for one sample on
2 cores (measured identical spikes at all 9 layers, see docs/lava.md).
"""
from __future__ import annotations

import copy
import json

import h5py
import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdsnn import data
from kdsnn.deploy.lava import backend as lava_backend
from kdsnn.deploy.lava import lava_available, run_lava
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import get_meta, set_meta, student_to_graph
from kdsnn.export.netx import compose_sumpool_conv, compose_sumpool_dense, describe, export_netx, netx_plan, read_info
from kdsnn.export.nir_io import write as write_nir
from kdsnn.export.quantize import quantize_graph
from kdsnn.models import build_model
from tests.helpers import assert_same_run, calibrated_student

LAVA_OK, LAVA_WHY = lava_available()


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return data.sample_batch("digits", 4)[0]


@pytest.fixture(scope="module")
def graphs(digits_preprocessing) -> dict[str, nir.NIRGraph]:
    return {ro: quantize_graph(student_to_graph(calibrated_student("snn_2conv", readout=ro), digits_preprocessing))
            for ro in ("spike", "membrane")}


# --- Lava runs -------------------------------------------------------------------------------

def test_lava_is_importable():
    assert LAVA_OK, LAVA_WHY


def test_lava_spike_readout_matches_graph_at_every_layer(graphs, inputs, tmp_path):
    graph = graphs["spike"]
    path = export_netx(graph, tmp_path / "s.net")
    run = run_lava(graph, inputs, netx_path=path, progress=False)
    assert_same_run(graph, inputs, run)
    assert run.host_nodes == ["if1"] and run.lags == {"if2": 1, "if3": 2}
    assert run.lava_steps == 4 * 4 + 2
    assert run.logits.shape == (4, 10) and run.logits.sum() > 0  # the readout IF spikes on real inputs
    assert run.per_sample_s > 0 and run.startup_s > 0


def test_lava_membrane_readout_matches_graph(graphs, inputs):
    graph = graphs["membrane"]
    run = run_lava(graph, inputs, progress=False)  # exports to a temporary file itself
    assert_same_run(graph, inputs, run)
    assert set(run.spikes) == {"if1", "if2"}
    # the readout is the host's mean membrane of fc1, computed here a second way
    w, b = graph.nodes["fc1"].weight, graph.nodes["fc1"].bias
    pooled = F.avg_pool2d(torch.as_tensor(run.spikes["if2"]).flatten(0, 1), 2, divisor_override=1)
    by_hand = (pooled.flatten(1).numpy() @ w.T + b).reshape(4, 4, 10).mean(0) * get_meta(graph)["output_scale"]
    np.testing.assert_allclose(run.logits.numpy(), by_hand, rtol=1e-12, atol=1e-12)


def test_lava_refuses_clipped_membranes(graphs, inputs):
    # A layer driven far below Loihi's 24-bit membrane: exported with a warning, then refused
    # after the run because the actual membranes left the range Lava can hold.
    g = copy.deepcopy(graphs["membrane"])
    g.nodes["if1"].v_threshold = np.zeros_like(g.nodes["if1"].v_threshold)  # first layer fires often
    g.nodes["conv2"].weight = np.full_like(g.nodes["conv2"].weight, -40)
    g.nodes["conv2"].bias = np.full_like(g.nodes["conv2"].bias, -4000)
    plan = netx_plan(g)
    assert plan.layers[0].warnings
    with pytest.raises(KdsnnError, match="membrane reached .* Lava clipped"):
        run_lava(g, inputs, progress=False)


def test_run_lava_checks_its_inputs(graphs, inputs, tmp_path, monkeypatch):
    spike, membrane = graphs["spike"], graphs["membrane"]
    other = export_netx(membrane, tmp_path / "m.net")
    with pytest.raises(KdsnnError, match="exported from another graph"):
        run_lava(spike, inputs, netx_path=other, progress=False)
    seq = inputs.unsqueeze(0).expand(3, *inputs.shape)
    with pytest.raises(KdsnnError, match="3 time steps .* T=4"):
        run_lava(spike, seq, progress=False)
    with pytest.raises(KdsnnError, match="input shape"):
        run_lava(spike, torch.zeros(2, 1, 7, 7), progress=False)
    monkeypatch.setattr(lava_backend, "lava_available", lambda: (False, "ModuleNotFoundError: No module named 'lava'"))
    with pytest.raises(KdsnnError, match="Lava is not importable .*No module named 'lava'"):
        run_lava(spike, inputs, progress=False)


# --- the file netx reads ---------------------------------------------------------------------

def test_netx_builds_the_exported_layers(graphs, tmp_path):
    from lava.lib.dl import netx

    graph = graphs["spike"]
    path = export_netx(graph, tmp_path / "s.net")
    net = netx.hdf5.Network(net_config=str(path))
    # conv2 after the 2×2 pool: 6×6 kernel, stride 2, padding 2 on the 8×8 map (Lava's W, H, C order)
    assert [tuple(int(v) for v in layer.out.shape) for layer in net.layers] == [(4, 4, 128), (10,)]
    assert tuple(int(v) for v in net.inp.shape) == (8, 8, 64)
    with h5py.File(path, "r") as f:
        assert ([f["layer"][k]["type"][0].decode() for k in ("0", "1", "2", "3")]
                == ["input", "conv", "flatten", "dense"])
        conv, dense = f["layer/1"], f["layer/3"]
        np.testing.assert_array_equal(conv["weight"][()][:, :, ::2, ::2], graph.nodes["conv2"].weight)
        np.testing.assert_array_equal(conv["bias"][()], graph.nodes["conv2"].bias)
        assert int(conv["neuron/vThMant"][()]) == int(graph.nodes["if2"].v_threshold.flat[0])
        assert int(dense["neuron/vThMant"][()]) == int(graph.nodes["if3"].v_threshold.flat[0])
        assert (int(conv["neuron/iDecay"][()]), int(conv["neuron/vDecay"][()])) == (4096, 0)
        assert dense["weight"].shape == (10, 128 * 4 * 4)
    info = read_info(path)
    assert info["reset_interval"] == 4 and info["reset_offset"] == 1 and info["host_nodes"] == ["input", "conv1", "if1"]


def test_vgg11_exports_and_loads(digits_preprocessing, tmp_path):
    from lava.lib.dl import netx

    g = quantize_graph(student_to_graph(calibrated_student("snn_vgg11", readout="spike"), digits_preprocessing))
    path = export_netx(g, tmp_path / "v.net")
    net = netx.hdf5.Network(net_config=str(path))
    plan = netx_plan(g)
    assert [layer.neuron for layer in plan.layers] == [f"if{i}" for i in range(2, 10)]
    shapes = [tuple(int(v) for v in layer.out.shape) for layer in net.layers]
    assert shapes == [(4, 4, 128), (2, 2, 256), (2, 2, 256), (1, 1, 512), (1, 1, 512), (1, 1, 512), (1, 1, 512), (10,)]


def test_describe(graphs, tmp_path):
    graph = graphs["membrane"]
    path = export_netx(graph, tmp_path / "m.net")
    text = describe(path)
    assert "1: conv    shape (128, 4, 4)  weight (128, 64, 6, 6) in [-127, 127]  stride (2, 2) padding (2, 2)" in text
    assert f"vThMant {int(graph.nodes['if2'].v_threshold.flat[0])} iDecay 4096 vDecay 0" in text
    assert "host computes conv1 → if1" in text and "host computes pool2 → flatten1 → fc1 from if2's spikes" in text
    assert "dense" not in text.split("Lava layers")[0]  # membrane readout: no dense layer in the file


def test_describe_and_read_refuse_foreign_files(graphs, tmp_path):
    text = tmp_path / "notes.net"
    text.write_text("not a network")
    with pytest.raises(KdsnnError, match="not a netx file"):
        describe(text)
    with pytest.raises(KdsnnError, match="does not exist"):
        describe(tmp_path / "missing.net")
    nir_file = write_nir(graphs["spike"], tmp_path / "g.nir")
    with pytest.raises(KdsnnError, match="not a netx network"):
        describe(nir_file)
    good = export_netx(graphs["spike"], tmp_path / "s.net")
    cut = tmp_path / "cut.net"
    cut.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(KdsnnError):
        describe(cut)
    # a netx file another tool wrote: described, but not ours to run
    other = tmp_path / "other.net"
    with h5py.File(other, "w") as f:
        f.create_dataset("layer/0/type", (1,), "S10", [b"input"])
        f.create_dataset("layer/0/shape", data=np.array([3]))
        f.create_dataset("layer/1/type", (1,), "S10", [b"dense"])
        f.create_dataset("layer/1/shape", data=np.array([2]))
        f.create_dataset("layer/1/weight", data=np.array([[1, -2, 3], [4, 5, -6]]))
        for k, v in {"type": "CUBA", "vThMant": 80, "iDecay": 4096, "vDecay": 0}.items():
            f.create_dataset(f"layer/1/neuron/{k}", data=v)
    summary = describe(other)
    assert "1: dense   shape (2,)  weight (2, 3) in [-6, 5]  CUBA vThMant 80" in summary
    with pytest.raises(KdsnnError, match="not one kdsnn wrote"):
        read_info(other)


# --- refusals ---------------------------------------------------------------------------------

def test_refuses_float_graph(digits_preprocessing, tmp_path):
    g = student_to_graph(calibrated_student("snn_2conv"), digits_preprocessing)
    with pytest.raises(KdsnnError, match="integer graph: quantize it first"):
        export_netx(g, tmp_path / "f.net")
    assert not (tmp_path / "f.net").exists()
    with pytest.raises(KdsnnError, match="quantize"):
        export_netx(quantize_graph(g, integer=False), tmp_path / "f.net")


def test_refuses_residual_graph(digits_preprocessing, tmp_path):
    g = quantize_graph(student_to_graph(calibrated_student("snn_resnet14"), digits_preprocessing))
    with pytest.raises(KdsnnError, match=r"node 'skip\d+' is a residual shortcut .*sequential layers only"):
        export_netx(g, tmp_path / "r.net")
    assert not list(tmp_path.iterdir())
    # the same student with its identity shortcuts dropped still sums two branches
    for name in [n for n, node in g.nodes.items() if isinstance(node, nir.Scale)]:
        del g.nodes[name]
        g.edges = [e for e in g.edges if name not in e]
    with pytest.raises(KdsnnError, match=r"node 'if\d+' sums 2 inputs \(a residual connection\)"):
        export_netx(g, tmp_path / "r.net")


def test_refuses_what_lava_cannot_express(graphs, tmp_path):
    base = graphs["spike"]

    def refused(g, pattern):
        with pytest.raises(KdsnnError, match=pattern):
            export_netx(g, tmp_path / "x.net")

    soft = copy.deepcopy(base)
    set_meta(soft, {**get_meta(soft), "reset": "soft"})
    refused(soft, "reset mode 'soft'")
    vreset = copy.deepcopy(base)
    vreset.nodes["if2"].v_reset = np.full_like(vreset.nodes["if2"].v_reset, -5)
    refused(vreset, "'if2' resets to -5.0")
    per_neuron = copy.deepcopy(base)
    per_neuron.nodes["if3"].v_threshold = np.arange(10.0)
    refused(per_neuron, "'if3' has per-neuron thresholds")
    big_bias = copy.deepcopy(base)
    big_bias.nodes["conv2"].bias[0] = 5000
    refused(big_bias, r"bias range .* 13-bit")
    fraction = copy.deepcopy(base)
    fraction.nodes["fc1"].weight[0, 0] = 0.5
    refused(fraction, "'fc1': weight is not integer although the graph is marked integer")  # the graph view
    pool = copy.deepcopy(base)
    pool.nodes["pool1"].stride = np.array([1, 1])
    refused(pool, "'pool1': only non-overlapping pools")
    refused(quantize_graph(student_to_graph(calibrated_student("snn_2conv"), get_meta(base)["preprocessing"]), bits=10),
            r"weight \d+ outside netx's 8-bit range")
    assert not (tmp_path / "x.net").exists()


def test_refuses_pool_that_does_not_tile_the_map(digits_preprocessing, tmp_path):
    def graph(readout: str) -> nir.NIRGraph:
        torch.manual_seed(0)  # 10 → pool → 5 → pool: 5 is not a multiple of 2
        model = build_model("snn_2conv", (1, 10, 10), 10, readout=readout).eval()
        return quantize_graph(student_to_graph(model, digits_preprocessing))

    with pytest.raises(KdsnnError, match=r"pool 'pool2': map \(128, 5, 5\) is not a multiple of the 2×2 pool"):
        export_netx(graph("spike"), tmp_path / "p.net")
    # with a membrane readout that pool belongs to the host's readout and needs no composition
    assert netx_plan(graph("membrane")).readout_nodes == ["pool2", "flatten1", "fc1"]


# --- pool composition, on its own ----------------------------------------------------------------

@pytest.mark.parametrize("pool, kernel, stride, padding, hw", [
    ((2, 2), 3, 1, 1, (8, 8)),
    ((2, 2), 3, 2, 1, (12, 8)),
    ((3, 3), 3, 1, 0, (9, 12)),
    ((2, 2), 1, 1, 0, (4, 6)),
    ((2, 3), 3, 1, 2, (8, 9)),
])
def test_sumpool_conv_composition_is_exact(pool, kernel, stride, padding, hw):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 3, (2, 5, *hw), generator=g).double()
    w = torch.randint(-127, 128, (7, 5, kernel, kernel), generator=g).double()
    pooled = F.avg_pool2d(x, pool, pool, divisor_override=1)
    expected = F.conv2d(pooled, w, stride=stride, padding=padding)
    wc, sc, pc = compose_sumpool_conv(w.numpy(), (stride, stride), (padding, padding), pool)
    assert wc.shape == (7, 5, kernel * pool[0], kernel * pool[1])
    got = F.conv2d(x, torch.as_tensor(wc), stride=sc, padding=pc)
    assert torch.equal(got, expected)


def test_sumpool_dense_composition_is_exact():
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 2, (3, 4, 6, 4), generator=g).double()
    w = torch.randint(-127, 128, (10, 4 * 3 * 2), generator=g).double()
    expected = F.avg_pool2d(x, 2, 2, divisor_override=1).flatten(1) @ w.T
    wc = compose_sumpool_dense(w.numpy(), (4, 3, 2), (2, 2))
    assert wc.shape == (10, 4 * 6 * 4)
    assert torch.equal(x.flatten(1) @ torch.as_tensor(wc).T, expected)


def test_plan_records_the_split(graphs):
    plan = netx_plan(graphs["membrane"])
    assert plan.host_nodes == ["input", "conv1", "if1"] and plan.readout_nodes == ["pool2", "flatten1", "fc1"]
    (conv,) = plan.layers
    assert conv.kind == "conv" and conv.sources == ["pool1", "conv2"] and conv.in_shape == (64, 8, 8)
    assert (conv.stride, conv.padding, conv.out_shape) == ((2, 2), (2, 2), (128, 4, 4))
    spike = netx_plan(graphs["spike"])
    assert spike.readout_nodes == [] and spike.layers[-1].kind == "dense" and spike.layers[-1].flatten_before
    assert json.loads(json.dumps(spike.neurons)) == ["if1", "if2", "if3"]
