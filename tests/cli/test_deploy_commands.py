"""verify, report, simulate and doctor from the command line, on a small trained student."""
import json
import os
from html.parser import HTMLParser

import nir
import numpy as np
import pytest
import torch

from kdsnn.cli import main
from kdsnn.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    teacher = train(TrainConfig(arch="mnist_cnn", epochs=2, out=str(root / "teacher"), quiet=True), "teacher")
    student = train(TrainConfig(arch="snn_2conv", kd="response", teacher=teacher["checkpoint"], epochs=3,
                                out=str(root / "student"), quiet=True), "student")
    resnet = train(TrainConfig(arch="snn_resnet14", kd="none", epochs=1, out=str(root / "resnet"), quiet=True),
                   "student")
    return {"teacher": teacher["checkpoint"], "student": student["checkpoint"], "resnet": resnet["checkpoint"],
            "accuracy": student["accuracy"], "root": root}


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_verify_all_backends_agree(trained, capsys):
    assert main(["verify", "--checkpoint", trained["student"], "--samples", "4", "--json"]) == 0
    result = _json(capsys)
    assert result["agree"]
    status = {c["backend"]: c["status"] for c in result["checks"]}
    for backend in ("NIR file → PyTorch", "reference simulator", "ONNX (onnxruntime)", "ONNX step (onnxruntime)",
                    "Lava (Loihi 2 sim, fixed_pt)", "Norse 1.1 (from_nir)"):
        assert status[backend] == "agree", (backend, status)
    # per target: is the checked integer graph what the chip runs? A direct-encoded student is not, on Speck
    # (analog input) nor, as such, on Loihi 2 (its analog first layer runs on the host)
    assert set(result["targets"]) == {"loihi2", "speck", "xylo"}
    assert any("analog" in p for p in result["targets"]["speck"])
    assert any("host" in p for p in result["targets"]["loihi2"])


def test_verify_residual_student_lists_what_cannot_run(trained, capsys):
    assert main(["verify", "--checkpoint", trained["resnet"], "--samples", "2", "--json"]) == 0
    status = {c["backend"]: c["status"] for c in _json(capsys)["checks"]}
    assert status["reference simulator"] == "agree" and status["ONNX (onnxruntime)"] == "agree"
    assert status["Lava (Loihi 2 sim, fixed_pt)"] == "agree"  # residual students run on Lava as a process graph
    assert status["Norse 1.1 (from_nir)"] == "not expressible"


def test_verify_names_the_first_differing_layer_and_step():
    from kdsnn.deploy.compare import first_mismatch

    ref = {"if1": np.zeros((4, 2, 3)), "if2": np.zeros((4, 2, 5))}
    other = {"if1": np.zeros((4, 2, 3)), "if2": np.zeros((4, 2, 5))}
    other["if2"][2, 1, 4] = 1
    other["if2"][3, 0, 0] = 1
    mm = first_mismatch(ref, other, ["if1", "if2"])
    assert (mm.node, mm.step, mm.differing) == ("if2", 2, 1)
    assert first_mismatch(ref, ref, ["if1", "if2"]) is None


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables = [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag == "table":
            self.tables += 1


def test_report_files_are_produced_and_well_formed(trained, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--checkpoint", trained["student"], "--out", str(out), "--lava-samples", "4", "--json"]) == 0
    rep = json.loads((out / "report.json").read_text())
    acc = rep["accuracy"]
    assert acc["float (PyTorch student)"]["accuracy"] == pytest.approx(trained["accuracy"])
    assert acc["quantized 8-bit (PyTorch)"]["accuracy"] == acc["reference simulator (integer)"]["accuracy"]
    assert acc["Lava (Loihi 2 sim)"]["samples"] == 4
    per = rep["per_inference"]
    assert per["synops"] > 0 and per["macs_effective"] > 0 and per["neuron_updates"] == (64 * 8 * 8 + 128 * 4 * 4) * 4
    assert {e["profile"] for e in rep["energy"]} == {"cmos45_fp32", "cmos45_int8", "loihi"}
    assert any(k.startswith("teacher") for k in rep["ann_macs"])
    for png in ("firing_rates.png", "synops.png", "energy.png", "raster.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = _Collector()
    page.feed((out / "report.html").read_text())
    assert [t["target"] for t in rep["targets"]] == ["loihi2", "speck", "xylo"]  # one section per built-in target
    assert len(page.images) == 4 + 3 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.tables >= 3


def test_simulate_reference_and_lava_agree_on_accuracy(trained, tmp_path, capsys):
    path = tmp_path / "s.nir"
    assert main(["export", "--checkpoint", trained["student"], "--format", "nir", "--out", str(path)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(path), "--samples", "6", "--json"]) == 0
    ref = _json(capsys)
    assert main(["simulate", str(path), "--backend", "lava", "--samples", "6", "--json"]) == 0
    lava = _json(capsys)
    assert ref["samples"] == lava["samples"] == 6 and ref["accuracy"] == lava["accuracy"]
    for name, st in lava["layers"].items():
        assert st["spikes"] == ref["layers"][name]["spikes"]


def test_doctor_lists_every_backend(capsys):
    assert main(["doctor", "--json"]) == 0
    rows = {r["backend"]: r for r in _json(capsys)}
    assert rows["Lava (Loihi 2 sim)"]["usable"] and rows["NIR"]["usable"]
    assert "reference simulator" in rows


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kdsnn: error: "), err
    return err[0]


def test_bad_inputs_give_one_line(trained, tmp_path, capsys):
    assert main(["verify", "--checkpoint", trained["teacher"]]) == 2
    assert "only student SNNs" in _error(capsys)
    foreign = tmp_path / "foreign.nir"
    foreign.write_bytes(os.urandom(256))
    assert main(["simulate", str(foreign)]) == 2
    assert "not a NIR file" in _error(capsys)
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([4])}),
                                "fc": nir.Affine(weight=np.eye(3, 4), bias=np.zeros(3)),
                                "output": nir.Output(output_type={"output": np.array([3])})},
                         edges=[("input", "fc"), ("fc", "output")])
    path = tmp_path / "other.nir"
    nir.write(path, graph)
    assert main(["simulate", str(path)]) == 2
    assert "pass --dataset" in _error(capsys)
    assert main(["simulate", str(path), "--dataset", "digits", "--timesteps", "2"]) == 2
    assert "shape" in _error(capsys)
    assert main(["report", "--checkpoint", trained["student"], "--out", str(tmp_path / "r"), "--profile", "tpu9"]) == 2
    assert "tpu9" in _error(capsys)


def test_verify_and_report_a_checkpoint_on_your_own_inputs(trained, tmp_path, capsys):

    from kdsnn import data
    from kdsnn.export.runtime import GraphSNN
    from kdsnn.export.student import load_student_graphs

    x, y = data.sample_batch("digits", 5, split="train")     # samples the test split does not hold
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "y.npy", y.numpy())
    assert main(["verify", "--checkpoint", trained["student"], "--inputs", str(tmp_path / "x.npy"),
                 "--lava-samples", "2", "--json"]) == 0
    result = _json(capsys)
    assert result["agree"]
    lava = next(c for c in result["checks"] if c["backend"].startswith("Lava"))
    assert "first 2 of 5" in lava["detail"]
    out = tmp_path / "rep"
    assert main(["report", "--checkpoint", trained["student"], "--inputs", str(tmp_path / "x.npy"), "--labels",
                 str(tmp_path / "y.npy"), "--lava-samples", "2", "--out", str(out), "--json"]) == 0
    acc = json.loads((out / "report.json").read_text())["accuracy"]
    # the quantized accuracy worked out independently: the integer graph run on the same five samples
    dep = load_student_graphs(trained["student"])
    integer = GraphSNN(dep.int_graph).run(x).logits.argmax(1)
    want = float((integer == y).double().mean())
    # the integer graph and the reference simulator predict alike (every backend agrees on integer graphs)
    assert acc["quantized 8-bit (PyTorch)"] == {"accuracy": want, "samples": 5, "agreement": 1.0}
    # the float student's agreement: its own predictions against the integer graph's, on the same five
    with torch.no_grad():
        floats = dep.model(x).logits.argmax(1)
    assert acc["float (PyTorch student)"]["agreement"] == float((floats == integer).double().mean())
    assert acc["Lava (Loihi 2 sim)"]["samples"] == 2
    capsys.readouterr()
    assert main(["report", "--checkpoint", trained["student"], "--inputs", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "r2")]) == 2
    assert "--labels" in _error(capsys)
