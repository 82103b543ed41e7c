"""ONNX export (unrolled and step forms) run with onnxruntime against GraphSNN.

Tolerances: integer graphs must match GraphSNN bit for bit (every value is an integer that
float32 holds exactly; the input quantization and the logits' scaling run in float64 as in
GraphSNN). Float graphs: onnxruntime's convolutions sum in another order than PyTorch's, so
currents differ in the last bits (~1e-7); the spikes are identical on these inputs and the
logits agree within ``FLOAT_ATOL`` = 1e-4 (measured: at most 1.2e-7 here, 1.4e-6 on a
trained snn_2conv). The step form looped over T runs the same operators in the same order
as the unrolled form: identical outputs.
"""
from __future__ import annotations

import functools

import nir
import numpy as np
import onnx
import pytest
import torch

from kdsnn import data
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import student_to_graph
from kdsnn.export.onnx import FLOAT_ATOL, OnnxModel, build_onnx, export_onnx, run_onnx, run_steps
from kdsnn.export.quantize import quantize_graph
from kdsnn.export.runtime import GraphSNN
from kdsnn.models import STUDENTS
from tests.helpers import calibrated_student

PRE = data.spec("digits").preprocessing()


@functools.cache
def graphs(arch: str, readout: str = "membrane", encoding: str = "direct") -> tuple[nir.NIRGraph, nir.NIRGraph]:
    g = student_to_graph(calibrated_student(arch, readout=readout, encoding=encoding), PRE)
    return g, quantize_graph(g)


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return data.sample_batch("digits", 8)[0]


def _check_file(path) -> None:
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17
    batch = model.graph.input[0].type.tensor_type.shape.dim
    assert any(d.dim_param == "batch" for d in batch)  # dynamic batch axis


def _compare(g: nir.NIRGraph, x: torch.Tensor, tmp_path, name: str) -> None:
    ref = GraphSNN(g).run(x)
    expected = ref.logits.float().numpy()
    unrolled = export_onnx(g, tmp_path / f"{name}.onnx")
    step = export_onnx(g, tmp_path / f"{name}_step.onnx", form="step")
    for p in (unrolled, step):
        _check_file(p)
    got = run_onnx(unrolled, x)
    stepped = run_steps(step, x)
    assert got.dtype == np.float32 and got.shape == expected.shape
    if GraphSNN(g).integer:
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(stepped.outputs, ref.output_seq.float().numpy())
    else:
        np.testing.assert_allclose(got, expected, atol=FLOAT_ATOL, rtol=0)
        np.testing.assert_allclose(stepped.outputs, ref.output_seq.float().numpy(), atol=FLOAT_ATOL, rtol=0)
    np.testing.assert_array_equal(stepped.logits, got)  # step form looped over T == unrolled
    np.testing.assert_array_equal(run_onnx(step, x), got)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("arch", STUDENTS)
def test_onnx_matches_graphsnn(arch, x, tmp_path):
    float_graph, int_graph = graphs(arch)
    _compare(int_graph, x, tmp_path, f"{arch}_int")
    _compare(float_graph, x, tmp_path, f"{arch}_float")


@pytest.mark.parametrize("arch", ["snn_2conv", "snn_resnet14"])
def test_onnx_spike_readout(arch, x, tmp_path):
    float_graph, int_graph = graphs(arch, "spike")
    ref = GraphSNN(int_graph).run(x)
    assert float(ref.logits.sum()) > 0  # the output layer spikes: counts are not trivially zero
    _compare(int_graph, x, tmp_path, f"{arch}_spike_int")
    _compare(float_graph, x, tmp_path, f"{arch}_spike_float")
    m = OnnxModel(tmp_path / f"{arch}_spike_int_step.onnx")
    assert "acc" not in m.inputs  # a spiking readout's state is its membrane; counts are summed outside
    assert m.info["readout"] == "spike" and m.info["integer"]


def test_step_form_streams_state(x, tmp_path):
    """Feeding states back by hand, one step at a time, reproduces the T-step run and its membranes."""
    _, q = graphs("snn_2conv")
    path = export_onnx(q, tmp_path / "s.onnx", form="step")
    m = OnnxModel(path)
    assert set(m.inputs) == {"input", "v_if1", "v_if2", "acc"}
    full = run_steps(m, x)
    first = run_steps(m, torch.stack([x, x]))  # two steps of a stream ...
    rest = run_steps(m, torch.stack([x, x]), states=first.states)  # ... then two more from its state
    np.testing.assert_array_equal(np.concatenate([first.outputs, rest.outputs]), full.outputs)
    for k in full.states:
        np.testing.assert_array_equal(rest.states[k], full.states[k])
    # the readout accumulator is GraphSNN's summed readout current
    np.testing.assert_array_equal(full.states["acc"], GraphSNN(q).run(x).outputs["output"].sum(0).numpy())


def test_bernoulli_model_takes_spike_trains(tmp_path):
    g, _ = graphs("snn_2conv", encoding="bernoulli")
    x = data.sample_batch("digits", 4)[0]
    torch.manual_seed(0)
    spikes = torch.bernoulli(x.clamp(0, 1).unsqueeze(0).expand(4, *x.shape))
    path = export_onnx(g, tmp_path / "b.onnx")
    assert [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim][:1] == [4]
    np.testing.assert_allclose(run_onnx(path, spikes), GraphSNN(g).run(spikes).logits.numpy(), atol=FLOAT_ATOL, rtol=0)
    with pytest.raises(KdsnnError, match="expects"):
        run_onnx(path, x)  # analog input: sampling is the caller's job


def test_foreign_graph_hand_computed(tmp_path):
    """The hand-built graph of test_export_nir (worked by hand there): counts 1 and 2."""
    g = nir.NIRGraph(
        nodes={"in": nir.Input(input_type={"input": np.array([2])}),
               "fc_a": nir.Affine(weight=np.array([[0.5, 0.0], [0.0, 0.75]]), bias=np.array([0.0, 0.25])),
               "lif_a": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
               "fc_b": nir.Affine(weight=np.array([[1.0, 1.0]]), bias=np.array([0.0])),
               "lif_b": nir.IF(r=np.ones(1), v_threshold=np.array([1.5]), v_reset=np.zeros(1)),
               "out": nir.Output(output_type={"output": np.array([1])})},
        edges=[("in", "fc_a"), ("fc_a", "lif_a"), ("lif_a", "fc_b"), ("fc_b", "lif_b"), ("lif_b", "out")])
    x = np.array([[1.0, 1.0], [0.0, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(run_onnx(export_onnx(g, tmp_path / "h.onnx"), x), [[1.0], [2.0]])
    stepped = run_steps(export_onnx(g, tmp_path / "hs.onnx", form="step"), x)
    assert stepped.outputs[:, :, 0].T.tolist() == [[0, 0, 1, 0], [0, 1, 0, 1]]
    # membranes after step 4 by hand: a0 = 0.5, a1 = 0 (spiked), b: 1 (sample 0), 0 (sample 1)
    np.testing.assert_array_equal(stepped.states["v_lif_a"], [[0.5, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(stepped.states["v_lif_b"], [[1.0], [0.0]])


class Foreign(nir.NIRNode):
    """A node type that is no NIR primitive (another tool's own extension)."""

    def __init__(self) -> None:
        self.input_type = {"input": np.array([2])}
        self.output_type = {"output": np.array([2])}


def test_unsupported_and_out_of_range_graphs_are_refused(tmp_path):
    lif = nir.NIRGraph(nodes={"in": nir.Input(input_type={"input": np.array([2])}),
                              "syn": nir.Affine(weight=np.eye(2), bias=np.zeros(2)),
                              "leaky": Foreign(),
                              "out": nir.Output(output_type={"output": np.array([2])})},
                       edges=[("in", "syn"), ("syn", "leaky"), ("leaky", "out")])
    with pytest.raises(KdsnnError, match="'leaky' of type Foreign cannot be exported to ONNX"):
        export_onnx(lif, tmp_path / "l.onnx")
    assert not (tmp_path / "l.onnx").exists()
    with pytest.raises(KdsnnError, match="unknown ONNX form"):
        build_onnx(graphs("snn_2conv")[1], form="loop")
    # an integer graph whose currents float32 cannot hold exactly
    _, q = graphs("snn_2conv")
    big = nir.NIRGraph(nodes=dict(q.nodes), edges=list(q.edges), metadata=dict(q.metadata))
    big.nodes["conv2"] = nir.Conv2d(input_shape=(4, 4), weight=np.asarray(q.nodes["conv2"].weight) * 2 ** 12,
                                    stride=1, padding=1, dilation=1, groups=1, bias=np.asarray(q.nodes["conv2"].bias))
    with pytest.raises(KdsnnError, match="'conv2'.*2\\^24"):
        export_onnx(big, tmp_path / "big.onnx")
    # a float value in a graph marked integer
    frac = nir.NIRGraph(nodes=dict(q.nodes), edges=list(q.edges), metadata=dict(q.metadata))
    frac.nodes["fc1"] = nir.Affine(weight=np.asarray(q.nodes["fc1"].weight) + 0.5, bias=np.asarray(q.nodes["fc1"].bias))
    with pytest.raises(KdsnnError, match="'fc1': weight is not integer"):
        export_onnx(frac, tmp_path / "frac.onnx")


def test_run_onnx_errors(x, tmp_path):
    path = export_onnx(graphs("snn_2conv")[1], tmp_path / "m.onnx")
    with pytest.raises(KdsnnError, match=r"shape \(8, 1, 28, 28\)"):
        run_onnx(path, torch.zeros(8, 1, 28, 28))
    with pytest.raises(KdsnnError, match="only accepted by a step-form"):
        run_onnx(path, x, states={})
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(KdsnnError, match="could not be loaded"):
        run_onnx(bad, x)
    with pytest.raises(KdsnnError, match="does not exist"):
        run_onnx(tmp_path / "none.onnx", x)
    step = export_onnx(graphs("snn_2conv")[1], tmp_path / "s.onnx", form="step")
    with pytest.raises(KdsnnError, match="states are"):
        run_steps(step, x, states={"v_if1": np.zeros((8, 64, 8, 8), np.float32)})
    with pytest.raises(KdsnnError, match="onnxruntime refused"):
        run_steps(step, x, states={"v_if1": np.zeros((8, 64, 8, 8), np.float32), "v_if2": np.zeros((8, 3), np.float32),
                                   "acc": np.zeros((8, 10), np.float32)})


def test_linear_and_multi_axis_affine(tmp_path):
    """Nodes our students do not use but other tools write: Linear, and Affine over the last of two axes."""
    rng = np.random.default_rng(0)
    g = nir.NIRGraph(nodes={"in": nir.Input(input_type={"input": np.array([3, 4])}),
                            "a": nir.Affine(weight=rng.normal(size=(5, 4)), bias=rng.normal(size=5)),
                            "n": nir.IF(r=np.ones((3, 5)), v_threshold=np.full((3, 5), 0.5), v_reset=np.zeros((3, 5))),
                            "l": nir.Linear(weight=rng.normal(size=(2, 5))),
                            "o": nir.Output(output_type={"output": np.array([3, 2])})},
                     edges=[("in", "a"), ("a", "n"), ("n", "l"), ("l", "o")], type_check=False)
    x = torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(0))
    path = export_onnx(g, tmp_path / "lin.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "MatMul" in ops and "Gemm" not in ops
    ref = GraphSNN(g).run(x)
    assert 0 < float(ref.outputs["n"].mean()) < 1
    np.testing.assert_allclose(run_onnx(path, x), ref.logits.numpy(), atol=FLOAT_ATOL, rtol=0)
