"""The papers' input size through the whole command line: a residual student on 3×32×32
synthetic data (``fake:3x32x32:10``), verified on every backend (Lava on one sample) and reported."""
from __future__ import annotations

import json

import pytest

from kdsnn.cli import main
from kdsnn.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def cifar_shaped(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("scale")
    res = train(TrainConfig(arch="snn_resnet14", dataset="fake:3x32x32:10", kd="none", epochs=1, width=0.25,
                            batch_size=64, out=str(out), quiet=True), "student")
    return res["checkpoint"]


def test_verify_every_backend_at_3x32x32(cifar_shaped, capsys):
    assert main(["verify", "--checkpoint", cifar_shaped, "--samples", "2", "--lava-samples", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    status = {c["backend"]: c for c in result["checks"]}
    assert result["agree"]
    for name in ("reference simulator", "ONNX (onnxruntime)", "ONNX step (onnxruntime)", "NIR file → PyTorch"):
        assert status[name]["status"] == "agree", status[name]
    lava = status["Lava (Loihi 2 sim, fixed_pt)"]
    assert lava["status"] == "agree" and "process-graph" in lava["detail"] and "first 1 of 2" in lava["detail"]


def test_report_at_3x32x32(cifar_shaped, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--checkpoint", cifar_shaped, "--out", str(out), "--limit", "6", "--lava-samples", "1",
                 "--json"]) == 0
    rep = json.loads((out / "report.json").read_text())
    acc = rep["accuracy"]
    assert acc["quantized 8-bit (PyTorch)"]["samples"] == 6
    assert acc["quantized 8-bit (PyTorch)"]["accuracy"] == acc["reference simulator (integer)"]["accuracy"]
    assert acc["Lava (Loihi 2 sim)"]["samples"] == 1
    assert rep["per_inference"]["synops"] > 0 and (out / "report.html").stat().st_size > 10_000
