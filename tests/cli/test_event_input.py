"""A student trained on event recordings (N-MNIST's files, written here) goes through map, simulate and verify."""
from __future__ import annotations

import json

import pytest

from kdsnn.cli import main
from kdsnn.trainer import TrainConfig, train
from tests.helpers import write_nmnist_tree


@pytest.fixture(scope="module")
def events_student(tmp_path_factory):
    root = tmp_path_factory.mktemp("events")
    write_nmnist_tree(root / "data", {"Train": 24, "Test": 6})
    result = train(TrainConfig(arch="snn_2conv", width=0.125, dataset="nmnist", data_root=str(root / "data"),
                               kd="none", epochs=4, timesteps=4, readout="spike", lr=0.1, batch_size=8,
                               out=str(root / "run"), quiet=True), "student")
    return {"checkpoint": result["checkpoint"], "accuracy": result["accuracy"], "data": str(root / "data"),
            "root": root}


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_the_student_learns_the_recordings(events_student):
    # each of the 3 digits' events fall on their own rows and columns: learnable in 4 short epochs
    assert events_student["accuracy"] > 0.9


def test_map_takes_the_events_as_the_chip_would(events_student, capsys):
    status = main(["map", events_student["checkpoint"], "--target", "speck", "--target", "loihi2",
                   "--data-root", events_student["data"], "--samples", "4", "--json"])
    answer = _json(capsys)
    result = {t["target"]: t for t in answer["targets"]}
    assert status == (0 if all(t["fits"] for t in result.values()) else 1)  # 1: a target does not fit
    for target in ("speck", "loihi2"):
        assert not [v for v in result[target]["violations"] if v["rule"] == "analog_input"]
    notes = " ".join(result["speck"]["compatibility"])
    assert "2×34×34 input can come from speck's 128×128 DVS" in notes and "sensor pooling 2" in notes
    assert "host" not in " ".join(result["loihi2"]["compatibility"])  # no analog first layer to run on the host
    load = result["loihi2"]["load"]  # the events reach the first layer's cores as spike messages, not host MACs
    assert load["synops"] > 0 and load["host_macs"] == 0 and load["host_messages"] > 0


def test_simulate_and_verify_on_event_input(events_student, capsys, tmp_path):
    nir_file = str(tmp_path / "int8.nir")
    assert main(["export", "--checkpoint", events_student["checkpoint"], "--data-root", events_student["data"],
                 "--out", nir_file]) == 0
    capsys.readouterr()
    assert main(["simulate", nir_file, "--data-root", events_student["data"], "--samples", "6", "--json"]) == 0
    sim = _json(capsys)
    assert sim["samples"] == 6 and sim["accuracy"] > 0.8
    assert sim["per_inference"]["macs_effective"] == 0  # spike input: SynOps from the first layer, no MACs
    assert main(["verify", "--checkpoint", events_student["checkpoint"], "--data-root", events_student["data"],
                 "--samples", "3", "--json"]) == 0
    status = {c["backend"]: c["status"] for c in _json(capsys)["checks"]}
    for backend in ("NIR file → PyTorch", "reference simulator", "ONNX (onnxruntime)", "Norse 1.1 (from_nir)"):
        assert status[backend] == "agree", (backend, status)


def test_event_options_are_refused_where_they_do_not_apply(events_student, capsys, tmp_path):
    from tests.helpers import error_line

    out = str(tmp_path / "r")
    assert main(["distill", "--arch", "snn_2conv", "--dataset", "digits", "--encoding", "events", "--kd", "none",
                 "--out", out]) == 2
    assert "--encoding events needs an event data set" in error_line(capsys)
    assert main(["distill", "--arch", "snn_2conv", "--dataset", "nmnist", "--data-root", events_student["data"],
                 "--encoding", "bernoulli", "--kd", "none", "--out", out]) == 2
    assert "already spikes: drop --encoding bernoulli" in error_line(capsys)


def test_an_events_graph_takes_only_event_frames(events_student):
    import torch

    from kdsnn.errors import KdsnnError
    from kdsnn.export.encoding import encode
    from kdsnn.export.graph_view import GraphView
    from kdsnn.export.student import load_student_graphs

    dep = load_student_graphs(events_student["checkpoint"], data_root=events_student["data"])
    view = GraphView.of(dep.int_graph)
    assert view.encoding == "events" and view.spike_input
    frames = torch.zeros(4, 2, 2, 34, 34)
    frames[1, 0, 1, 3, 4] = 1
    assert torch.equal(encode(view, frames), frames.double())  # taken as they are: no input scale, no sampling
    with pytest.raises(KdsnnError, match="takes event frames"):
        encode(view, torch.zeros(2, 2, 34, 34))
    with pytest.raises(KdsnnError, match="takes event frames"):
        dep.model(torch.zeros(2, 2, 34, 34))


@pytest.fixture(scope="module")
def gesture_student(tmp_path_factory):
    """snn_2conv (width 0.125) on DVS128 Gesture recordings pooled to 32×32 (Speck's DVS pooling 4): soft reset,
    spike readout, as Speck runs it."""
    from tests.helpers import write_gesture_tree

    root = tmp_path_factory.mktemp("gesture")
    write_gesture_tree(root / "data", {"train": 8, "test": 2})
    result = train(TrainConfig(arch="snn_2conv", width=0.125, dataset="dvsgesture:32", data_root=str(root / "data"),
                               kd="none", epochs=4, timesteps=4, readout="spike", reset="soft", lr=0.1, batch_size=4,
                               out=str(root / "run"), quiet=True), "student")
    return {"checkpoint": result["checkpoint"], "accuracy": result["accuracy"], "data": str(root / "data")}


def test_gesture_student_goes_to_speck_and_sinabs_runs_it(gesture_student, capsys, tmp_path):
    import numpy as np
    import torch

    from kdsnn import data
    from kdsnn.deploy.targets import speck
    from kdsnn.export import nir_io
    from kdsnn.export.graph_view import GraphView
    from tests.vendor_env import run_probe

    out = tmp_path / "speck.nir"
    assert main(["export", "--checkpoint", gesture_student["checkpoint"], "--for", "speck", "--out", str(out),
                 "--data-root", gesture_student["data"], "--json"]) == 0
    result = _json(capsys)
    assert result["map"]["fits"], result["map"]["violations"]
    assert main(["map", str(out), "--target", "speck", "--data-root", gesture_student["data"], "--json"]) == 0
    mapped = _json(capsys)["targets"][0]
    assert mapped["fits"] and any("2×32×32 input can come from speck's 128×128 DVS" in n and "sensor pooling 4" in n
                                  for n in mapped["compatibility"])
    # Sinabs reads the file and runs the recorded gestures' events: spike for spike what kdsnn's Speck lowering runs
    events, _ = data.sample_batch("dvsgesture:32", 6, gesture_student["data"], timesteps=4)
    np.save(tmp_path / "events.npy", events.numpy())
    sinabs = run_probe("sinabs_probe.py", out, tmp_path / "events.npy", tmp_path / "sinabs.npz")
    assert sinabs["nir"] == "1.0.4"
    net = speck.lower(GraphView.of(nir_io.read(out)))
    theirs = np.load(tmp_path / "sinabs.npz")
    ours = speck.run(net, events)
    for i, lay in enumerate(net.layers):
        assert np.array_equal(ours[lay.population].numpy().reshape(theirs[str(i)].shape), theirs[str(i)])
    assert float(torch.as_tensor(theirs[str(len(net.layers) - 1)]).sum()) > 0
