"""Inputs without a downloaded data set: ``--dataset fake:CxHxW:K`` and the user's own ``.npy`` samples."""
import json
import math

import numpy as np
import pytest
import torch

from kdsnn import data
from kdsnn.cli import main
from kdsnn.errors import KdsnnError


def test_fake_spec_reads_shape_and_classes():
    ds = data.spec("fake:3x32x32:10")
    assert (ds.name, ds.input_shape, ds.classes) == ("fake:3x32x32:10", (3, 32, 32), 10)
    # FakeData's bytes are uniform on 0..255: mean 127.5/255, std √((256² − 1)/12)/255
    assert ds.mean == (0.5,) * 3 and ds.std == pytest.approx((math.sqrt((256 ** 2 - 1) / 12) / 255,) * 3, abs=1e-4)
    assert data.spec("fake:1x5x7:2").input_shape == (1, 5, 7)


@pytest.mark.parametrize("name", ["fake", "fake:3x32:10", "fake:3x32x32", "fake:3x32x32:ten", "fake:3X32X32:10",
                                  "fake:5x8x8:10", "fake:0x8x8:10", "fake:1x0x8:10", "fake:1x8x8:0"])
def test_fake_spec_refuses_bad_syntax(name):
    with pytest.raises(KdsnnError, match=r"fake:CxHxW:K, e\.g\. fake:3x32x32:10"):
        data.spec(name)


def test_fake_splits_are_small_seeded_distinct_and_normalized():
    name = "fake:2x6x5:3"
    train, test = data.load(name, "train"), data.load(name, "test")
    assert (len(train), len(test)) == (512, 128)
    x, y = data.sample_batch(name, 128, split="train")
    x2, y2 = data.sample_batch(name, 128, split="train")
    assert x.shape == (128, 2, 6, 5) and torch.equal(x, x2) and torch.equal(y, y2)  # fixed draw
    xt, _ = data.sample_batch(name, 128)
    assert not torch.equal(x, xt)  # test is another draw
    assert set(y.tolist()) == {0, 1, 2}
    # normalized like the other data sets: raw bytes / 255, then (x − mean) / std, so about N(0, 1)
    raw = x * data.FAKE_STD + data.FAKE_MEAN
    assert torch.allclose(raw * 255, (raw * 255).round(), atol=1e-3) and float(raw.min()) >= -1e-6
    assert float(x.mean()) == pytest.approx(0.0, abs=0.05) and float(x.std()) == pytest.approx(1.0, abs=0.05)
    assert torch.equal(train[7][0], train[7][0])  # no augmentation of noise images
    fit, val = data.load(name, "fit"), data.load(name, "val")
    assert (len(fit), len(val)) == (512 - 102, 102)  # round(0.2 · 512) = 102


def test_train_evaluate_and_simulate_on_fake_data(tmp_path, capsys):
    name = "fake:1x8x8:4"
    assert main(["train-teacher", "--dataset", name, "--epochs", "1", "--out", str(tmp_path / "t"), "--quiet",
                 "--json"]) == 0
    teacher = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert teacher["dataset"] == name
    assert main(["distill", "--dataset", name, "--arch", "snn_2conv", "--width", "0.25", "--teacher",
                 teacher["checkpoint"], "--epochs", "1", "--out", str(tmp_path / "s"), "--quiet", "--json"]) == 0
    student = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert student["kd"] == "response"
    ckpt = torch.load(student["checkpoint"], weights_only=True)
    assert ckpt["dataset"] == name and ckpt["model_spec"]["classes"] == 4
    assert main(["evaluate", "--checkpoint", student["checkpoint"], "--json"]) == 0  # the recorded data set
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == name and 0.0 <= result["accuracy"] <= 1.0
    assert main(["evaluate", "--checkpoint", student["checkpoint"], "--dataset", "digits"]) == 2
    assert "4 classes" in capsys.readouterr().err
    from kdsnn.export import nir_io
    from kdsnn.export.student import load_student_graphs

    graphs = load_student_graphs(student["checkpoint"], 8, integer=True, quantized=True)  # what `export` writes
    nir_file = nir_io.write(graphs.graph, tmp_path / "s.nir")
    assert main(["simulate", str(nir_file), "--samples", "3", "--json"]) == 0  # data set read from the graph
    sim = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sim["dataset"] == name and sim["samples"] == 3


def test_bad_fake_dataset_on_the_command_line(tmp_path, capsys):
    assert main(["train-teacher", "--dataset", "fake:3x32:10", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kdsnn: error: cannot read dataset 'fake:3x32:10': write fake:CxHxW:K")
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- load_inputs


def test_load_inputs_reads_samples_and_labels(tmp_path):
    x = np.arange(5 * 64, dtype=np.float64).reshape(5, 1, 8, 8) / 7
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.array([3, 0, 9, 1, 1], dtype=np.uint8))
    np.save(tmp_path / "yf.npy", np.array([3.0, 0.0, 9.0, 1.0, 1.0]))
    got, y = data.load_inputs(tmp_path / "x.npy", tmp_path / "y.npy", shape=(1, 8, 8), classes=10)
    assert got.dtype == torch.float32 and got.shape == (5, 1, 8, 8)
    assert torch.equal(got, torch.tensor(x, dtype=torch.float32))
    assert y.dtype == torch.int64 and y.tolist() == [3, 0, 9, 1, 1]
    assert data.load_inputs(tmp_path / "x.npy", tmp_path / "yf.npy")[1].tolist() == [3, 0, 9, 1, 1]
    flat, none = data.load_inputs(tmp_path / "x.npy")  # no expected shape: any [N, ...]
    assert none is None and flat.shape == (5, 1, 8, 8)


def _save(path, array):
    np.save(path, array)
    return path


def _write(path, blob: bytes):
    path.write_bytes(blob)
    return path


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "missing.npy", "does not exist"),
    (lambda d: _write(d / "x.txt", b"1 2 3\n"), "not a readable .npy array"),
    (lambda d: _write(d / "cut.npy", _save(d / "full.npy", np.zeros((4, 1, 8, 8), np.float32)).read_bytes()[:200]),
     "cut.npy is truncated: its header declares shape [4, 1, 8, 8] (1,024 bytes) but it holds 72"),
    (lambda d: np.savez(d / "a.npz", x=np.zeros(3)) or d / "a.npz", "is an .npz archive"),
    (lambda d: _save(d / "obj.npy", np.array([{"a": 1}], dtype=object)), "not a readable .npy array"),
    (lambda d: _save(d / "int.npy", np.zeros((2, 1, 8, 8), np.uint8)), "must be a floating-point array"),
    (lambda d: _save(d / "one.npy", np.zeros(64, np.float32)), "a batch axis first"),
    (lambda d: _save(d / "flat.npy", np.zeros((2, 64), np.float32)), "the model expects [N, 1, 8, 8]"),
    (lambda d: _save(d / "single.npy", np.zeros((1, 8, 8), np.float32)), "save x[None]"),
    (lambda d: _save(d / "empty.npy", np.zeros((0, 1, 8, 8), np.float32)), "holds no samples"),
    (lambda d: _save(d / "nan.npy", np.where(np.arange(3 * 64).reshape(3, 1, 8, 8) == 100, np.nan, 0.0)),
     "1 NaN or infinite values (first in sample 1)"),
    (lambda d: _save(d / "inf.npy", np.full((2, 1, 8, 8), np.inf, np.float32)), "128 NaN or infinite values"),
])
def test_load_inputs_refuses_bad_files(tmp_path, make, says):
    path = make(tmp_path)
    with pytest.raises(KdsnnError, match="--inputs") as info:
        data.load_inputs(path, shape=(1, 8, 8))
    assert says in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("labels, says", [
    (np.array([1, 2]), "one label per input: [3]"),
    (np.array([[1], [2], [3]]), "one label per input: [3]"),
    (np.array([1.0, 2.5, 0.0]), "must hold integer class indices"),
    (np.array(["a", "b", "c"]), "must be a numeric array"),
    (np.array([1, -1, 0]), "class indices must be 0..9"),
    (np.array([1, 10, 0]), "labels from 0 to 10"),
])
def test_load_inputs_refuses_bad_labels(tmp_path, labels, says):
    np.save(tmp_path / "x.npy", np.zeros((3, 1, 8, 8), np.float32))
    np.save(tmp_path / "y.npy", labels)
    with pytest.raises(KdsnnError, match="--labels") as info:
        data.load_inputs(tmp_path / "x.npy", tmp_path / "y.npy", shape=(1, 8, 8), classes=10)
    assert says in str(info.value)
    with pytest.raises(KdsnnError, match="--labels"):
        data.load_inputs(tmp_path / "x.npy", tmp_path / "missing.npy")
