"""``kdsnn map`` in batches: the per-core load, energy and latency of N inputs counted a batch at a time
equal those counted on all N at once (core_load.combine weighs each batch's means by its size)."""
import json

import numpy as np

from kdsnn.cli import main
from kdsnn.deploy import batched
from kdsnn.export import nir_io
from kdsnn.export.graph import student_to_graph
from kdsnn.export.quantize import quantize_graph
from tests.helpers import calibrated_student


def _map(argv, capsys, status: int = 0) -> dict:
    assert main(argv) == status
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _close(a, b, path="") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _close(u, v, f"{path}[{i}]")
    elif isinstance(a, float):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(a)), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_map_in_batches_equals_one_batch(tmp_path, digits_preprocessing, capsys, monkeypatch):
    graph = quantize_graph(student_to_graph(calibrated_student("snn_2conv", width=0.25), digits_preprocessing,
                                            extra={"dataset": "digits"}), bits=8)
    path = nir_io.write(graph, tmp_path / "s.nir")
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.random.default_rng(0).normal(0, 1, (10, 1, 8, 8)).astype(np.float32))
    argv = ["map", str(path), "--inputs", str(inputs), "--target", "loihi2", "--target", "speck", "--json"]
    whole = _map(argv, capsys, status=1)  # speck does not fit: exit status 1
    assert whole["samples"] == 10 and whole["inputs"] == str(inputs)
    monkeypatch.setattr(batched, "WORKING_SET", 1)  # one input per batch: ten batches
    _close(_map(argv, capsys, status=1), whole)
    assert whole["targets"][0]["load"]["samples"] == 10


def _student_nir(tmp_path, digits_preprocessing):
    graph = quantize_graph(student_to_graph(calibrated_student("snn_2conv", width=0.25), digits_preprocessing,
                                            extra={"dataset": "digits"}), bits=8)
    path = nir_io.write(graph, tmp_path / "s.nir")
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.random.default_rng(0).normal(0, 1, (6, 1, 8, 8)).astype(np.float32))
    return str(path), str(inputs)


def test_map_exit_status_says_whether_every_target_fits(tmp_path, digits_preprocessing, capsys):
    """0: every target asked for fits; 1: one does not (the small student fits Loihi 2; Speck takes no analog
    input); 2: bad input. The terminal answer: verdicts first, each problem once, a closing line."""
    model, inputs = _student_nir(tmp_path, digits_preprocessing)
    assert main(["map", model, "--inputs", inputs, "--target", "loihi2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("loihi2: fits: ") and "(6 samples)" in out.splitlines()[0]
    assert out.strip().splitlines()[-1] == "loihi2 fits"

    assert main(["map", model, "--inputs", inputs, "--target", "loihi2", "--target", "speck"]) == 1
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].startswith("loihi2: fits") and lines[1].startswith("speck: does NOT fit")
    assert lines[2].startswith("    first problem: input: direct-encoded analog input")
    assert lines[-1] == "1 of 2 targets fit (loihi2); speck does not"
    details = out[out.index("\n\nspeck: "):]
    for v in _map(["map", model, "--inputs", inputs, "--target", "speck", "--json"], capsys, status=1)["targets"][0][
            "violations"]:
        assert details.count(v["message"]) == 1, v["message"]  # once, not again as a compatibility note
    assert "chip 0: " not in out and "(per-core detail: --cores)" in out

    assert main(["map", model, "--inputs", inputs, "--target", "loihi2", "--cores"]) == 0
    assert "core 0 chip 0: " in capsys.readouterr().out

    assert main(["map", model, "--inputs", inputs, "--target", "nosuchchip"]) == 2


def test_map_json_states_the_sample_count_and_the_overall_verdict(tmp_path, digits_preprocessing, capsys):
    model, inputs = _student_nir(tmp_path, digits_preprocessing)
    res = _map(["map", model, "--inputs", inputs, "--json"], capsys, status=1)
    assert [t["target"] for t in res["targets"]] == ["loihi2", "speck", "xylo"]  # every built-in by default
    assert res["samples"] == 6 and res["fits"] is False
    assert all(t["load"]["samples"] == 6 for t in res["targets"])
