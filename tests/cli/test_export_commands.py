"""``kdsnn quantize / export / inspect`` in-process, on a tiny student trained for one epoch."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from kdsnn import checkpoint, data
from kdsnn.cli import main
from kdsnn.export import nir_io
from kdsnn.export.graph import get_meta, student_to_graph
from kdsnn.export.onnx import run_onnx
from kdsnn.export.quantize import quantize_graph
from kdsnn.export.runtime import GraphSNN
from kdsnn.models import build_model
from kdsnn.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    """snn_2conv, T = 2, one epoch on digits (about 95 % test accuracy, a few seconds)."""
    out = tmp_path_factory.mktemp("run")
    result = train(TrainConfig(arch="snn_2conv", kd="none", epochs=1, timesteps=2, batch_size=32, out=str(out),
                               quiet=True), "student")
    return result["checkpoint"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_quantize_reports_accuracies(ckpt, tmp_path, capsys):
    path = tmp_path / "q.nir"
    code, out, err = run(capsys, "quantize", "--checkpoint", ckpt, "--out", path, "--json")
    assert code == 0 and err == ""
    res = json.loads(out)
    assert out.count("\n") == 1 and res["out"] == str(path) and res["integer"] and res["bits"] == 8
    stored = checkpoint.load(ckpt)
    assert res["float_accuracy"] == stored["test_accuracy"]  # the trainer's own evaluation of the same model
    # the quantized accuracy, recomputed independently from the written file
    test = data.load("digits", "test")
    xs = torch.stack([test[i][0] for i in range(len(test))])
    ys = torch.tensor([test[i][1] for i in range(len(test))])
    graph = nir_io.read(path)
    acc = float((GraphSNN(graph).run(xs).logits.argmax(1) == ys).double().mean())
    assert res["quantized_accuracy"] == pytest.approx(acc, abs=1e-12)
    assert abs(res["quantized_accuracy"] - res["float_accuracy"]) < 0.03 and res["float_accuracy"] > 0.8
    assert res["range_problems"] == []
    meta = get_meta(graph)
    assert meta["integer"] and meta["timesteps"] == 2 and meta["source"] == ckpt

    code, out, _ = run(capsys, "quantize", "--checkpoint", ckpt, "--out", tmp_path / "f.nir", "--bits", "4", "--float")
    assert code == 0 and "4-bit fake-quantized float" in out and "test accuracy: float" in out
    fake = nir_io.read(tmp_path / "f.nir")
    assert not get_meta(fake)["integer"] and get_meta(fake)["bits"] == 4
    w, step = np.asarray(fake.nodes["conv2"].weight), get_meta(fake)["quantization"]["conv2"]["weight_scale"]
    assert len(np.unique(np.round(w / step))) <= 15 and np.allclose(w / step, np.round(w / step))


@pytest.mark.parametrize("fmt,suffix", [("nir", "nir"), ("onnx", "onnx"), ("onnx-step", "onnx")])
def test_export_formats_and_check(ckpt, tmp_path, capsys, fmt, suffix):
    path = tmp_path / f"m.{suffix}"
    code, out, err = run(capsys, "export", "--checkpoint", ckpt, "--format", fmt, "--out", path, "--json")
    assert code == 0 and err == ""
    res = json.loads(out)
    assert res["check"]["passed"] is True and res["check"]["max_abs_diff"] == 0.0
    # independently: the file against the graph built here from the checkpoint
    model, stored = checkpoint.load_model(ckpt)
    graph = quantize_graph(student_to_graph(model, stored["preprocessing"]))
    x = data.sample_batch("digits", 16)[0]
    want = GraphSNN(graph).run(x).logits.float().numpy()
    got = GraphSNN(nir_io.read(path)).run(x).logits.float().numpy() if fmt == "nir" else run_onnx(path, x)
    np.testing.assert_array_equal(got, want)

    code, out, _ = run(capsys, "inspect", path)
    assert code == 0
    assert ("NIR graph" in out and "conv1" in out and "Conv2d" in out) if fmt == "nir" else "ONNX model" in out
    assert "integer 8-bit" in out
    if fmt == "onnx-step":
        assert "v_if1" in out and "step form" in out


def test_export_float_onnx_within_tolerance(ckpt, tmp_path, capsys):
    code, out, _ = run(capsys, "export", "--checkpoint", ckpt, "--format", "onnx", "--float",
                       "--out", tmp_path / "f.onnx")
    assert code == 0 and "onnxruntime vs PyTorch graph on 8 test inputs" in out
    code, out, _ = run(capsys, "export", "--checkpoint", ckpt, "--format", "nir", "--float", "--no-check",
                       "--out", tmp_path / "f.nir", "--json")
    assert code == 0 and "check" not in json.loads(out)
    assert not get_meta(nir_io.read(tmp_path / "f.nir"))["quantization"]


def test_export_netx_and_inspect(ckpt, tmp_path, capsys):
    code, out, err = run(capsys, "export", "--checkpoint", ckpt, "--format", "netx", "--no-check",
                         "--out", tmp_path / "m.net")
    assert code == 0 and err == "" and "wrote" in out
    code, out, err = run(capsys, "inspect", tmp_path / "m.net", "--json")
    assert code == 0 and json.loads(out)["format"] == "netx"


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("teacher") / "checkpoint.pt"
    model = build_model("mnist_cnn", (1, 8, 8), 10)
    checkpoint.save(path, {"kind": "teacher",
                           "model_spec": {"arch": "mnist_cnn", "input_shape": [1, 8, 8], "classes": 10},
                           "dataset": "digits", "preprocessing": data.spec("digits").preprocessing(),
                           "model": model.state_dict()})
    return str(path)


def _one_line_error(code: int, out: str, err: str, *words: str) -> None:
    assert code == 2 and out == ""
    assert err.startswith("kdsnn: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err


def test_bad_input(ckpt, teacher_ckpt, tmp_path, capsys):
    _one_line_error(*run(capsys, "export", "--checkpoint", tmp_path / "none.pt", "--out", tmp_path / "x.nir"),
                    "does not exist")
    _one_line_error(*run(capsys, "export", "--checkpoint", teacher_ckpt, "--format", "onnx",
                         "--out", tmp_path / "t.onnx"),
                    "only student SNNs")
    _one_line_error(*run(capsys, "quantize", "--checkpoint", teacher_ckpt, "--out", tmp_path / "t.nir"),
                    "only student SNNs")
    _one_line_error(*run(capsys, "export", "--checkpoint", ckpt, "--format", "tflite", "--out", tmp_path / "x"),
                    "unknown --format 'tflite'")
    _one_line_error(*run(capsys, "export", "--checkpoint", ckpt, "--out", tmp_path / "x.nir", "--bits", "1"), "--bits")
    _one_line_error(*run(capsys, "quantize", "--checkpoint", ckpt), "--out is required")
    _one_line_error(*run(capsys, "quantize", "--checkpoint", ckpt, "--out", tmp_path / "c.nir", "--dataset", "cifar10"),
                    "cifar10 has [3, 32, 32]")
    assert not list(tmp_path.iterdir())  # nothing written by a refused command
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(1).bytes(3000))
    _one_line_error(*run(capsys, "inspect", junk), "not a NIR, ONNX or netx file")
    real = tmp_path / "real.onnx"
    assert run(capsys, "export", "--checkpoint", ckpt, "--format", "onnx", "--out", real, "--no-check")[0] == 0
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(real.read_bytes()[:5000])
    _one_line_error(*run(capsys, "inspect", cut), "not a NIR, ONNX or netx file")
    _one_line_error(*run(capsys, "inspect", tmp_path / "missing.nir"), "does not exist")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["images"] = np.zeros((2, 2))
    _one_line_error(*run(capsys, "inspect", foreign), "neither NIR", "nor netx")
    empty = tmp_path / "empty.net"
    empty.write_bytes(b"")
    _one_line_error(*run(capsys, "inspect", empty), "is empty")


def test_user_inputs_calibrate_the_input_step_and_check_the_file(tmp_path, capsys):
    """--inputs: a fake-data student (normalization is not a pure scale, so the input step is
    calibrated) gets the step max|x|/127 of the user's own samples, worked out here by hand."""
    run_dir = tmp_path / "fake"
    result = train(TrainConfig(arch="snn_2conv", dataset="fake:1x8x8:10", kd="none", epochs=1, timesteps=2,
                               width=0.25, out=str(run_dir), quiet=True), "student")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (5, 1, 8, 8)).astype(np.float32)
    x[2, 0, 3, 3] = 6.35  # the largest magnitude: step 6.35 / 127 = 0.05
    np.save(tmp_path / "mine.npy", x)
    out = tmp_path / "mine.nir"
    code, text, err = run(capsys, "export", "--checkpoint", result["checkpoint"], "--inputs", tmp_path / "mine.npy",
                          "--out", out, "--json")
    assert code == 0, err
    assert json.loads(text)["check"]["passed"] is True
    assert get_meta(nir_io.read(out))["input_scale"] == pytest.approx(6.35 / 127, rel=1e-6)
    np.save(tmp_path / "wrong.npy", x[:, :, :4])
    code, _, err = run(capsys, "export", "--checkpoint", result["checkpoint"], "--inputs", tmp_path / "wrong.npy",
                       "--out", tmp_path / "w.nir")
    assert code == 2 and err.count("\n") == 1 and "wrong.npy" in err and not (tmp_path / "w.nir").exists()
