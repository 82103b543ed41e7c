"""The MNIST path end to end: a data root in torchvision's layout, read by the shipped configs.

No MNIST exists on this machine, so the files are written here in MNIST's own IDX format
from real digits images (scikit-learn's 8×8 scans, upscaled to 28×28): torchvision reads
them exactly as it reads the real MNIST.
"""
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from kdsnn.cli import main
from tests.helpers import REPO

CONFIGS = REPO / "configs"


def _write_idx(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        if array.ndim == 3:
            f.write(struct.pack(">IIII", 0x0803, *array.shape))
        else:
            f.write(struct.pack(">II", 0x0801, array.shape[0]))
        f.write(array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    d = load_digits()
    img = F.interpolate(torch.from_numpy(d.images).float().unsqueeze(1) / 16, size=(28, 28), mode="bilinear")
    img = (img.squeeze(1).numpy() * 255).round()
    _write_idx(raw / "train-images-idx3-ubyte", img[:256])
    _write_idx(raw / "train-labels-idx1-ubyte", d.target[:256])
    _write_idx(raw / "t10k-images-idx3-ubyte", img[256:320])
    _write_idx(raw / "t10k-labels-idx1-ubyte", d.target[256:320])
    return root


def test_table4_configs_run_once_the_data_root_is_given(mnist_root, tmp_path, capsys):
    teacher_out = tmp_path / "teacher"
    assert main(["train-teacher", "--config", str(CONFIGS / "teachers" / "mnist-resnet18.toml"), "--data-root",
                 str(mnist_root), "--epochs", "1", "--warmup-epochs", "0", "--out", str(teacher_out), "--quiet",
                 "--json"]) == 0
    t = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert t["arch"] == "resnet18" and t["dataset"] == "mnist"
    assert main(["distill", "--config", str(CONFIGS / "table4" / "mnist-2conv-from-resnet18.toml"), "--data-root",
                 str(mnist_root), "--teacher", t["checkpoint"], "--epochs", "1", "--warmup-epochs", "0",
                 "--out", str(tmp_path / "student"),
                 "--quiet", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["arch"] == "snn_2conv" and s["kd"] == "response" and s["timesteps"] == 4
    ckpt = torch.load(s["checkpoint"], weights_only=True)
    assert ckpt["model_spec"]["input_shape"] == [1, 28, 28] and ckpt["dataset"] == "mnist"
    assert main(["evaluate", "--checkpoint", s["checkpoint"], "--data-root", str(mnist_root), "--noise",
                 "rotation_background", "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["accuracy"] <= 1.0


def test_mnist_images_are_what_torchvision_reads(mnist_root):
    """The bytes kept per image give exactly ToTensor's float image (no PIL image per sample)."""
    from torchvision.datasets import MNIST
    from torchvision.transforms import ToTensor

    from kdsnn import data

    for train, split in ((True, "train"), (False, "test")):
        ref = MNIST(str(mnist_root), train=train, download=False, transform=ToTensor())
        mine = data.load("mnist", split, str(mnist_root))
        assert len(mine) == len(ref)
        for i in range(len(ref)):
            (a, ya), (b, yb) = ref[i], mine[i]
            assert torch.equal(a, b) and ya == yb
