"""NIR export and import: BN folding, quantization, file round trip, foreign graphs, Norse.

Norse 1.1 as an independent reader (``norse.torch.from_nir``, IAF: ``v > θ``, reset to 0, no
delay). What it can and cannot read, measured here:

- ``snn_2conv`` (Conv2d, IF, SumPool2d → ``LPPool2d(1)``, Flatten, Affine): read and run
  step-exactly. Norse builds ``Flatten(start_dim=0)`` literally as ``torch.nn.Flatten(0, -1)``,
  which would also flatten a batch axis, so it is fed one unbatched sample ``[C, H, W]`` per step.
- ``nir.Scale`` (our identity shortcuts): not mapped; ``from_nir`` fails with ``KeyError`` on the
  node. Even with the shortcut rewritten as a 1×1 ``Conv2d``, Norse's executor (nirtorch 2.6's
  ``GraphExecutor``) orders nodes depth-first, so a residual sum runs before its shortcut branch
  (the shortcut arrives one step late) and the last-executed node, not ``Output``, is returned.
  Residual students are therefore checked with Norse's own node mapping (its IAF cells, convs and
  pools) wired by nirtorch's newer interpreter ``nir_to_torch``, plus a one-line ``Scale``.
"""
from __future__ import annotations

import copy
import functools
import warnings

import h5py
import nir
import numpy as np
import pytest
import torch

from kdsnn import data
from kdsnn.errors import KdsnnError
from kdsnn.export import nir_io
from kdsnn.export.graph import get_meta, student_to_graph
from kdsnn.export.quantize import quantize_graph
from kdsnn.export.runtime import GraphSNN
from kdsnn.models import STUDENTS, build_model
from kdsnn.neurons import IFNeuron
from tests.helpers import calibrated_student

PRE = data.spec("digits").preprocessing()
RESIDUAL = ["snn_wrn16_2", "snn_resnet14", "snn_resnet18"]


@functools.cache
def student(arch: str, readout: str = "membrane") -> torch.nn.Module:
    return calibrated_student(arch, readout=readout)


@functools.cache
def graphs(arch: str, readout: str = "membrane") -> tuple[nir.NIRGraph, nir.NIRGraph]:
    """(float graph, integer 8-bit graph) of the calibrated student."""
    g = student_to_graph(student(arch, readout), PRE)
    return g, quantize_graph(g)


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return data.sample_batch("digits", 8)[0]


def if_nodes(g: nir.NIRGraph) -> list[str]:
    return [n for n, node in g.nodes.items() if isinstance(node, nir.IF)]


# ----------------------------------------------------------------------------- BN folding

@pytest.mark.parametrize("arch", STUDENTS)
def test_bn_folding_keeps_every_spike(arch, x):
    """The PyTorch student (conv → BN → IF) vs GraphSNN of the BN-folded float graph."""
    m = student(arch)
    spikes: list[torch.Tensor] = []
    hooks = [mod.register_forward_hook(lambda _m, _i, out: spikes.append(out.detach()))
             for mod in m.modules() if isinstance(mod, IFNeuron)]
    try:
        with torch.no_grad():
            logits = m(x).logits
    finally:
        for h in hooks:
            h.remove()
    g, _ = graphs(arch)
    run = GraphSNN(g).run(x)
    names = if_nodes(g)  # the exporter names IF populations in the order the student's neurons run
    assert len(names) == len(spikes)
    for name, s in zip(names, spikes, strict=True):
        assert torch.equal(run.outputs[name], s), name
    assert 0.05 < float(spikes[-1].mean()) < 0.5  # the last hidden layer really spikes
    assert not any(isinstance(n, nir.IF) for n in [g.nodes[p] for p, d in g.edges if d == "output"])  # membrane readout
    torch.testing.assert_close(run.logits, logits, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- quantization

def _weights(node: nir.NIRNode) -> np.ndarray:
    return np.asarray(node.scale if isinstance(node, nir.Scale) else node.weight, dtype=np.float64)


@pytest.mark.parametrize("arch", ["snn_2conv", "snn_resnet14", "snn_vgg11"])
def test_quantization_error_within_half_a_step(arch):
    g, q = graphs(arch)
    report = get_meta(q)["quantization"]
    synaptic = [n for n, node in g.nodes.items() if isinstance(node, (nir.Conv2d, nir.Affine, nir.Scale))]
    assert set(synaptic) <= set(report)
    for name in synaptic:
        step = report[name]["weight_scale"]
        w, w_int = _weights(g.nodes[name]), _weights(q.nodes[name])
        assert np.all(w_int == np.round(w_int)) and np.abs(w_int).max() <= 127
        assert np.abs(w - w_int * step).max() <= step / 2 * (1 + 1e-9), name
        if hasattr(g.nodes[name], "bias"):
            c = report[name]["current_scale"]
            b, b_int = np.asarray(g.nodes[name].bias), np.asarray(q.nodes[name].bias)
            assert np.all(b_int == np.round(b_int))
            assert np.abs(b - b_int * c).max() <= c / 2 * (1 + 1e-9), name
    for name in if_nodes(q):
        c = report[name]["current_scale"]
        th_int = np.asarray(q.nodes[name].v_threshold)
        assert np.all(th_int == np.round(th_int)) and np.all(np.asarray(q.nodes[name].v_reset) == 0)
        assert np.abs(1.0 - th_int * c).max() <= c / 2 * (1 + 1e-9)  # θ = 1 in the float student


def test_quantization_scales_by_hand():
    """First conv of snn_2conv: digits arrive in steps of 1/16, so c = max|W|·(1/16)/127."""
    g, q = graphs("snn_2conv")
    meta = get_meta(q)
    assert meta["integer"] and meta["bits"] == 8 and meta["input_scale"] == 1 / 16
    w = np.asarray(g.nodes["conv1"].weight)
    c = np.abs(w).max() / 16 / 127
    assert meta["quantization"]["conv1"]["current_scale"] == pytest.approx(c, rel=1e-12)
    np.testing.assert_array_equal(np.asarray(q.nodes["conv1"].weight), np.round(w / 16 / c))
    assert np.abs(np.asarray(q.nodes["conv1"].weight)).max() == 127
    assert np.asarray(q.nodes["if1"].v_threshold).max() == np.round(1 / c)
    # a residual population with an identity shortcut: the shortcut weight 1/c is an integer
    _, qr = graphs("snn_resnet14")
    rep = get_meta(qr)["quantization"]
    skip = next(n for n, node in qr.nodes.items() if isinstance(node, nir.Scale))
    n_int = np.unique(np.asarray(qr.nodes[skip].scale))
    assert n_int.size == 1 and n_int[0] == round(1 / rep[skip]["current_scale"]) and 1 <= n_int[0] <= 127


def test_integer_graph_is_exactly_integer(x):
    _, q = graphs("snn_resnet14")
    for name, node in q.nodes.items():
        for key in ("weight", "bias", "scale", "v_threshold", "v_reset"):
            if hasattr(node, key):
                a = np.asarray(getattr(node, key))
                assert np.all(a == np.round(a)), (name, key)
    run = GraphSNN(q).run(x)
    for name, out in run.outputs.items():  # every value the network computes is an integer
        assert torch.equal(out, torch.round(out)), name
    assert torch.equal(run.outputs["input"][0], torch.round(x.double() * 16))  # the raw digits 0..16


# ----------------------------------------------------------------------------- NIR files

@pytest.mark.parametrize("arch", STUDENTS)
def test_nir_file_round_trip_identical(arch, x, tmp_path):
    float_graph, int_graph = graphs(arch)
    for g in [float_graph, int_graph] if arch in ("snn_2conv", "snn_resnet14") else [int_graph]:
        path = nir_io.write(g, tmp_path / f"{arch}.nir")
        back = nir_io.read(path)
        assert get_meta(back) == get_meta(g)
        assert sorted(back.nodes) == sorted(g.nodes) and sorted(back.edges) == sorted(g.edges)
        ref, got = GraphSNN(g).run(x), nir_io.load_snn(path).run(x)
        for name in if_nodes(g):
            assert torch.equal(got.outputs[name], ref.outputs[name]), name
        assert torch.equal(got.logits, ref.logits)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temp file left


def hand_graph() -> nir.NIRGraph:
    """Input(2) → Affine → IF → Affine → IF → Output, written as another tool would (no kdsnn metadata)."""
    return nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([2])}),
            "fc_a": nir.Affine(weight=np.array([[0.5, 0.0], [0.0, 0.75]]), bias=np.array([0.0, 0.25])),
            "lif_a": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
            "fc_b": nir.Affine(weight=np.array([[1.0, 1.0]]), bias=np.array([0.0])),
            "lif_b": nir.IF(r=np.ones(1), v_threshold=np.array([1.5]), v_reset=np.zeros(1)),
            "out": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("in", "fc_a"), ("fc_a", "lif_a"), ("lif_a", "fc_b"), ("fc_b", "lif_b"), ("lif_b", "out")],
    )


# Worked by hand, T = 4 (the default without metadata), input held constant (direct):
# sample 0, x = (1, 1): currents (0.5, 1.0).
#   neuron a0: v = 0.5, 1.0 (not > 1), 1.5 → spike, 0.5          → 0 0 1 0
#   neuron a1: v = 1.0 (not > 1), 2.0 → spike, 1.0, 2.0 → spike  → 0 1 0 1
#   layer b gets 0, 1, 1, 1: v = 0, 1, 2 → spike (> 1.5), 1       → 0 0 1 0, count 1
# sample 1, x = (0, 2): currents (0, 1.75): a0 silent, a1 spikes every step → b gets 1 each
#   step: v = 1, 2 → spike, 1, 2 → spike                          → 0 1 0 1, count 2
HAND_A = [[[0, 0], [0, 1]], [[0, 1], [0, 1]], [[1, 0], [0, 1]], [[0, 1], [0, 1]]]
HAND_B = [[[0], [0]], [[0], [1]], [[1], [0]], [[0], [1]]]


def test_foreign_nir_graph_imports_with_hand_computed_spikes(tmp_path):
    path = tmp_path / "foreign.nir"
    nir.write(path, hand_graph())
    snn = nir_io.load_snn(path)
    assert snn.timesteps == 4 and not snn.integer
    run = snn.run(torch.tensor([[1.0, 1.0], [0.0, 2.0]]))
    assert run.outputs["lif_a"].tolist() == HAND_A
    assert run.outputs["lif_b"].tolist() == HAND_B
    assert run.logits.tolist() == [[1.0], [2.0]]  # spike counts: the readout is spiking


# ----------------------------------------------------------------------------- error paths

def test_soft_reset_student_is_refused():
    m = build_model("snn_2conv", (1, 8, 8), 10, neuron={"reset": "soft"})
    with pytest.raises(KdsnnError, match="soft reset"):
        student_to_graph(m, PRE)


def test_corrupt_truncated_and_foreign_files(tmp_path):
    junk = tmp_path / "junk.nir"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(KdsnnError, match="not a NIR file"):
        nir_io.read(junk)
    real = nir_io.write(graphs("snn_2conv")[1], tmp_path / "real.nir")
    cut = tmp_path / "cut.nir"
    cut.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    with pytest.raises(KdsnnError) as err:
        nir_io.read(cut)
    assert "\n" not in str(err.value) and "cut.nir" in str(err.value)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["images"] = np.zeros((3, 4))
    with pytest.raises(KdsnnError, match="not a NIR graph"):
        nir_io.read(foreign)
    with pytest.raises(KdsnnError, match="does not exist"):
        nir_io.read(tmp_path / "missing.nir")


def test_wrong_input_shape_is_refused():
    snn = GraphSNN(graphs("snn_2conv")[0])
    with pytest.raises(KdsnnError, match="input shape"):
        snn.run(torch.zeros(2, 1, 28, 28))
    with pytest.raises(KdsnnError, match="input shape"):
        snn.run(torch.zeros(8, 8))


# ----------------------------------------------------------------------------- Norse

def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def _step_per_sample(module, seq: torch.Tensor, record: list[str] | None = None):
    from kdsnn.deploy.norse_backend import step_per_sample

    return step_per_sample(module, seq, record)


def _logits(seq: torch.Tensor, spiking: bool, scale: float) -> torch.Tensor:
    return (seq.double().sum(0) if spiking else seq.double().mean(0)) * scale


@pytest.mark.parametrize("readout", ["membrane", "spike"])
def test_norse_reads_snn_2conv_step_exactly(readout, x):
    norse = pytest.importorskip("norse")
    for g in graphs("snn_2conv", readout):
        snn = GraphSNN(g)
        ref = snn.run(x)
        module = _quiet(norse.torch.from_nir, g)
        out, nodes = _step_per_sample(module, snn.prepare_input(x).float(), if_nodes(g))
        for name in if_nodes(g):  # identical spikes at every IF population, output side included
            assert torch.equal(nodes[name].double(), ref.outputs[name]), name
        logits = _logits(out, snn.spiking_output, snn.output_scale)
        if snn.integer or readout == "spike":
            assert torch.equal(logits, ref.logits.double())
        else:
            torch.testing.assert_close(logits, ref.logits.double(), atol=1e-5, rtol=0)
    assert float(ref.outputs["if2"].mean()) > 0.05


def test_norse_cannot_read_scale_nodes():
    norse = pytest.importorskip("norse")
    g, _ = graphs("snn_resnet14")
    skips = [n for n, node in g.nodes.items() if isinstance(node, nir.Scale)]
    assert skips
    with pytest.raises(KeyError, match=skips[0]):
        _quiet(norse.torch.from_nir, g)


class _Scale(torch.nn.Module):
    """``nir.Scale``: y = s·x (the one node Norse does not map)."""

    def __init__(self, node: nir.Scale) -> None:
        super().__init__()
        self.register_buffer("s", torch.as_tensor(np.asarray(node.scale), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.s


@pytest.mark.parametrize("arch,readout", [("snn_resnet14", "spike"), ("snn_wrn16_2", "membrane")])
def test_norse_neurons_on_residual_graphs(arch, readout, x):
    pytest.importorskip("norse")
    import nirtorch
    from norse.torch.utils.import_nir import _import_norse_module

    node_map = {t: _import_norse_module for t in (nir.Conv2d, nir.Affine, nir.Flatten, nir.IF, nir.SumPool2d)}
    node_map.update({nir.Scale: _Scale, nir.Input: lambda n: torch.nn.Identity(),
                     nir.Output: lambda n: torch.nn.Identity()})
    for g in graphs(arch, readout):
        snn = GraphSNN(g)
        ref = snn.run(x)
        module = _quiet(nirtorch.nir_to_torch, copy.deepcopy(g), node_map)
        out, _ = _step_per_sample(module, snn.prepare_input(x).float())
        if snn.spiking_output or snn.integer:
            assert torch.equal(out.double(), ref.output_seq.double())  # output spikes / integer readout currents
        else:
            torch.testing.assert_close(out.double(), ref.output_seq.double(), atol=1e-5, rtol=0)
        torch.testing.assert_close(_logits(out, snn.spiking_output, snn.output_scale), ref.logits.double(),
                                   atol=1e-5 if not snn.integer else 0, rtol=0)
        if snn.spiking_output:
            assert float(ref.output_seq.sum()) > 0
