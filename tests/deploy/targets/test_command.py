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


def _map(argv, capsys) -> dict:
    assert main(argv) == 0
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
    whole = _map(argv, capsys)
    assert whole["samples"] == 10 and whole["inputs"] == str(inputs)
    monkeypatch.setattr(batched, "WORKING_SET", 1)  # one input per batch: ten batches
    _close(_map(argv, capsys), whole)
    assert whole["targets"][0]["load"]["samples"] == 10
