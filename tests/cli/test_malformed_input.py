"""Malformed files and options end in one line and exit status 2, naming what is wrong, never in a
traceback or a wrong answer: kdsnn's metadata in NIR and ONNX files, checkpoint fields, config values,
target and profile files, option values, and graphs whose values break the integer contract."""
from __future__ import annotations

import copy
import json
import shutil
import warnings
from pathlib import Path

import nir
import numpy as np
import onnx
import pytest
import torch

from kdsnn.cli import main
from kdsnn.deploy.targets.spec import builtin_targets
from kdsnn.export import nir_io
from tests.helpers import REPO, error_line, snapshot

TARGETS = REPO / "deploy" / "targets"


def _with_meta(src: Path, dst: Path, raw) -> Path:
    g = nir.read(src)
    g.metadata = {**(g.metadata or {}), "kdsnn": raw}
    nir.write(dst, g)
    return dst


@pytest.fixture(scope="module")
def meta(student_int_nir) -> dict:
    return json.loads(nir.read(student_int_nir).metadata["kdsnn"])


@pytest.mark.parametrize("raw, says", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is list, not a table of fields"),
    ({"timesteps": "four"}, "field 'timesteps' must be an integer ≥ 1, got 'four'"),
    ({"timesteps": -3}, "field 'timesteps' must be an integer ≥ 1, got -3"),
    ({"encoding": 7}, "field 'encoding' must be one of 'direct', 'bernoulli', 'events', got 7"),
    ({"quantization": {"conv1": {"weight_scale": "big"}}}, "quantization of 'conv1': field 'weight_scale'"),
])
@pytest.mark.parametrize("command", [["inspect"], ["simulate", "--samples", "2"]])
def test_malformed_nir_metadata(student_int_nir, meta, tmp_path, capsys, raw, says, command):
    text = raw if isinstance(raw, str) else json.dumps({**meta, **raw})
    path = _with_meta(student_int_nir, tmp_path / "bad.nir", text)
    before = snapshot(path)
    assert main([command[0], str(path), *command[1:]]) == 2
    line = error_line(capsys)
    assert str(path) in line and says in line, line
    assert snapshot(path) == before


@pytest.mark.parametrize("raw, says", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is list, not a table of fields"),
    ({"timesteps": "four"}, "field 'timesteps' must be an integer ≥ 1, got 'four'"),
    ({"timesteps": -3}, "field 'timesteps' must be an integer ≥ 1, got -3"),
])
def test_malformed_onnx_metadata(student_int_nir, tmp_path, capsys, raw, says):
    from kdsnn.export.onnx import export_onnx, run_onnx

    good = export_onnx(nir_io.read(student_int_nir), tmp_path / "good.onnx")
    model = onnx.load(good)
    prop = next(p for p in model.metadata_props if p.key == "kdsnn")
    prop.value = raw if isinstance(raw, str) else json.dumps({**json.loads(prop.value), **raw})
    bad = tmp_path / "bad.onnx"
    onnx.save(model, bad)
    assert main(["inspect", str(bad)]) == 2
    assert says in error_line(capsys)
    with pytest.raises(Exception, match="kdsnn metadata") as exc:
        run_onnx(bad, np.zeros((1, 1, 8, 8), dtype=np.float32))
    assert type(exc.value).__name__ == "KdsnnError"


def test_integer_graph_without_input_scale_is_described(student_int_nir, meta, tmp_path, capsys):
    # valid: an integer graph whose inputs are integers already records no input step
    path = _with_meta(student_int_nir, tmp_path / "raw.nir", json.dumps({**meta, "input_scale": None}))
    assert main(["inspect", str(path)]) == 0
    assert "input step none (inputs are fed as they are)" in capsys.readouterr().out


@pytest.mark.parametrize("spec_change, says", [
    ({"model_spec": "snn_2conv"}, "field 'model_spec' must be a table"),
    ({"version": "1"}, "field 'version' must be an integer ≥ 0, got '1'"),
    ({"epoch": -1}, "field 'epoch' must be an integer ≥ 0"),
    ({"model_spec": {"arch": "snn_2conv", "input_shape": [1, 8], "classes": 10}},
     "model_spec: field 'input_shape' must be a list of 3 positive integers"),
    ({"model_spec": {"arch": "snn_2conv", "input_shape": [1, 8, 8], "classes": 10, "timesteps": 4,
                     "encoding": "direct", "readout": "membrane", "neuron": {"reset": "sideways"}}},
     "model_spec.neuron: field 'reset' must be one of 'hard', 'soft'"),
])
def test_checkpoint_fields_are_validated(student_ckpt, tmp_path, capsys, spec_change, says):
    ckpt = torch.load(student_ckpt, weights_only=True)
    path = tmp_path / "bad.pt"
    torch.save({**ckpt, **copy.deepcopy(spec_change)}, path)
    for command in (["evaluate", "--checkpoint", str(path)], ["export", "--checkpoint", str(path),
                                                               "--out", str(tmp_path / "x.nir")]):
        assert main(command) == 2
        line = error_line(capsys)
        assert str(path) in line and says in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


def test_corrupt_metrics_on_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train-teacher", "--epochs", "2", "--stop-after", "1", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    (run / "metrics.jsonl").write_text('{"epoch": 1, broken\n')
    before = snapshot(run / "checkpoint.pt")
    assert main(["train-teacher", "--epochs", "2", "--out", str(run), "--resume", "--quiet"]) == 2
    line = error_line(capsys)
    assert "metrics.jsonl, line 1, is not a metrics record" in line and "--resume again" in line
    assert snapshot(run / "checkpoint.pt") == before  # nothing trained, nothing written


@pytest.mark.parametrize("config, says", [
    ("timesteps = [1, 2]", "timesteps must be a single value"),
    ("timesteps = -5", "timesteps must be an integer ≥ 1, got -5"),
    ("save = 5", "save must be a string, got 5"),
    ("quiet = 1", "quiet must be true or false"),
    ("epochs = 1.5", "epochs must be an integer"),
    ("timesteps = " + "[" * 5000 + "]" * 5000, "nests arrays or tables too deeply"),
])
def test_config_values_are_checked_before_the_work(student_int_nir, tmp_path, capsys, config, says):
    path = tmp_path / "c.toml"
    path.write_text(config + "\n")
    command = "simulate" if config.startswith("save") else "distill"
    argv = ([command, str(student_int_nir), "--samples", "2"] if command == "simulate"
            else [command, "--kd", "none", "--out", str(tmp_path / "run")])
    assert main([*argv, "--config", str(path)]) == 2
    assert says in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


@pytest.mark.parametrize("argv, says", [
    (["distill", "--timesteps", "-5"], "argument --timesteps: must be an integer ≥ 1, got -5"),
    (["simulate", "x.nir", "--timesteps", "-5"], "argument --timesteps: must be an integer ≥ 1, got -5"),
    (["distill", "--dataset", "fake:1x8x8:99999999999999999999", "--kd", "none"], "is out of range"),
    (["train-teacher", "--dataset", "fake:1x1x1:10"], "mnist_cnn cannot take 1×1×1 inputs"),
    (["simulate", "x.nir", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_options_are_one_line(tmp_path, capsys, argv, says):
    try:
        code = main([*argv, "--out", str(tmp_path / "run")] if argv[0] != "simulate" else argv)
    except SystemExit as exc:  # argparse's own refusals exit from inside the parser
        code = exc.code
    assert code == 2
    assert says in error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_empty_input_sequence(student_int_nir, tmp_path, capsys):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((4, 0, 1, 8, 8), dtype=np.float32))
    assert main(["simulate", str(student_int_nir), "--inputs", str(path)]) == 2
    assert "holds no samples" in error_line(capsys)


def _target_file(tmp_path: Path, old: str, new: str) -> Path:
    text = (TARGETS / "loihi2.toml").read_text()
    assert old in text
    path = tmp_path / "t.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("old, new, says", [
    ("[limits.neurons_per_core]\nvalue = 8192", "[limits.neurons_per_core]\nvalue = -5",
     "limits.neurons_per_core.value must be at least 1, got -5"),
    # a per-synapse memory limit beside a 0-bit synapse divided by zero before files were validated
    ("[limits.cores_per_chip]", '[limits.synaptic_memory_bits_per_core]\nvalue = 1048576\nsource = "t"\n\n'
     '[limits.synapse_bits]\nvalue = 0\nsource = "t"\n\n[limits.cores_per_chip]',
     "limits.synapse_bits.value must be at least 1, got 0"),
])
def test_target_limits_must_be_positive(student_int_nir, tmp_path, capsys, old, new, says):
    target = _target_file(tmp_path, old, new)
    assert main(["map", str(student_int_nir), "--target", str(target)]) == 2
    assert says in error_line(capsys)


def test_target_and_profile_files_are_bounded(student_int_nir, tmp_path, capsys):
    deep = tmp_path / "deep.toml"
    deep.write_text("name = " + "[" * 5000 + "]" * 5000 + "\n")
    big = tmp_path / "big.json"
    big.write_text('{"name": "' + "x" * (2 << 20) + '"}')
    for path, says in ((deep, "nests arrays or tables too deeply"), (big, "more than a target file holds")):
        assert main(["map", str(student_int_nir), "--target", str(path)]) == 2
        assert says in error_line(capsys)
    assert main(["report", str(student_int_nir), "--out", str(tmp_path / "r"), "--profile", str(deep)]) == 2
    assert "energy profile file" in error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_builtin_targets_still_load():
    from kdsnn.deploy.targets.spec import load_target

    assert [load_target(t).name for t in builtin_targets()] == builtin_targets()


def test_verify_refuses_an_unknown_target_before_running(student_int_nir, capsys):
    assert main(["verify", str(student_int_nir), "--target", "nosuch", "--samples", "2"]) == 2
    assert "unknown target 'nosuch'" in error_line(capsys)


def test_nan_in_an_integer_weight_is_refused_by_every_command(student_int_nir, tmp_path, capsys):
    g = nir.read(student_int_nir)
    conv = g.nodes["conv1"]
    weight = np.array(conv.weight, dtype=np.float64)
    weight.flat[0] = np.nan
    conv.weight = weight
    bad = tmp_path / "nan.nir"
    nir.write(bad, g)
    for argv in (["simulate", str(bad), "--samples", "2"], ["verify", str(bad), "--samples", "2"],
                 ["map", str(bad)]):
        assert main(argv) == 2
        assert "NIR node 'conv1': weight holds NaN" in error_line(capsys)


def test_a_fractional_weight_in_an_integer_graph_is_refused(student_int_nir, tmp_path, capsys):
    bad = tmp_path / "half.nir"
    shutil.copy(student_int_nir, bad)
    g = nir.read(bad)
    g.nodes["conv1"].weight = np.asarray(g.nodes["conv1"].weight, dtype=np.float64) + 0.5
    nir.write(bad, g)
    assert main(["simulate", str(bad), "--samples", "2"]) == 2
    assert "weight is not integer although the graph is marked integer" in error_line(capsys)


def test_a_fractional_delay_is_refused_by_every_command(tmp_path, capsys):
    """A Delay of 1.5 ms read at dt = 1 ms has no discrete-time reading: one line naming the node and the value."""
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "d": nir.Delay(np.array([1e-3, 1.5e-3])),
                            "fc": nir.Linear(np.eye(2)), "if1": nir.IF(r=np.ones(2), v_threshold=np.ones(2),
                                                                        v_reset=np.zeros(2)),
                            "output": nir.Output(np.array([2]))},
                     edges=[("input", "d"), ("d", "fc"), ("fc", "if1"), ("if1", "output")], type_check=False)
    bad = nir_io.write(g, tmp_path / "delay.nir")
    says = "NIR node 'd': Delay of 0.0015 s is 1.5 steps of dt = 0.001 s, not a whole number"
    for argv in (["simulate", str(bad), "--dt", "1e-3", "--timesteps", "4"],
                 ["verify", str(bad), "--dt", "1e-3", "--timesteps", "4"]):
        assert main(argv) == 2, argv
        line = error_line(capsys)
        assert says in line, line
    assert main(["inspect", str(bad), "--dt", "1e-3"]) == 0  # inspect describes the file and says why it cannot run
    assert f"kdsnn cannot run it: {says}" in capsys.readouterr().out


def _if_graph(weight: np.ndarray, n_in: int, r: float = 1.0) -> nir.NIRGraph:
    """input n_in → fc (weight) → if1 → output: a small foreign-style graph for the cases below."""
    n = weight.shape[0]
    nodes = {"input": nir.Input(np.array([n_in])), "fc": nir.Affine(weight, np.zeros(n)),
             "if1": nir.IF(r=np.full(n, r), v_threshold=np.ones(n), v_reset=np.zeros(n)),
             "output": nir.Output(np.array([n]))}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "if1"), ("if1", "output")], type_check=False)


@pytest.mark.parametrize("graph, says", [
    # numpy dropped the imaginary part with a warning on stderr, and the graph ran on other weights than the file's
    (_if_graph(np.eye(3, 4).astype(np.complex128) * (1 + 2j), 4),
     "NIR node 'fc': weight holds complex numbers (complex128)"),
    # an Input of no elements ran as if it were a network (every output 0); inspect crashed on its empty weight
    (_if_graph(np.zeros((3, 0)), 0), "NIR node 'input' has shape [0], which holds no values"),
    # Input wired to Output: the simulator and map crashed ('input' is not in list)
    (nir.NIRGraph(nodes={"input": nir.Input(np.array([4])), "output": nir.Output(np.array([4]))},
                  edges=[("input", "output")], type_check=False),
     "NIR graph connects its Input 'input' straight to its Output 'output'"),
])
def test_graphs_kdsnn_cannot_run_are_refused_by_every_command(tmp_path, capsys, graph, says):
    path = tmp_path / "g.nir"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nir itself may warn while writing the odd graph
        nir.write(path, graph)
    before = snapshot(path)
    for argv in (["simulate", str(path), "--spike-rate", "0.5", "--timesteps", "2", "--samples", "2"],
                 ["verify", str(path), "--spike-rate", "0.5", "--timesteps", "2", "--samples", "2"],
                 ["map", str(path)]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning on the way is a defect too: the user would see it
            assert main(argv) == 2, argv
        line = error_line(capsys)
        assert says in line, line
    assert main(["inspect", str(path)]) == 0  # inspect describes the file and says why kdsnn cannot run it
    assert f"kdsnn cannot run it: {says}" in capsys.readouterr().out
    assert snapshot(path) == before


def test_an_if_with_r_zero_is_described_not_divided_by(tmp_path, capsys):
    # r = 0 (the neuron never receives input) divided by zero in the note that suggests a dt
    path = tmp_path / "r0.nir"
    nir.write(path, _if_graph(np.eye(3, 4), 4, r=0.0))
    assert main(["simulate", str(path), "--spike-rate", "0.5", "--timesteps", "2", "--samples", "2"]) == 0
    assert "r = 0: the neuron never receives its input" in capsys.readouterr().out


def test_a_checkpoint_with_nan_weights_is_refused(student_ckpt, tmp_path, capsys):
    """A diverged run's weights: evaluate reported 10.00 % (every answer NaN) as the model's accuracy."""
    ckpt = torch.load(student_ckpt, weights_only=True)
    name = next(k for k, v in ckpt["model"].items() if v.is_floating_point())
    ckpt["model"][name] = torch.full_like(ckpt["model"][name], float("nan"))
    path = tmp_path / "nan.pt"
    torch.save(ckpt, path)
    before = snapshot(path)
    for argv in (["evaluate", str(path)], ["map", str(path)],
                 ["distill", "--teacher", str(path), "--out", str(tmp_path / "run"), "--epochs", "1"]):
        assert main(argv) == 2, argv
        assert f"{path}: weight '{name}' holds NaN or infinite values (the training diverged?)" in error_line(capsys)
    assert snapshot(path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["nan.pt"]


def test_a_truncated_npy_is_named_as_truncated(student_int_nir, tmp_path, capsys):
    whole = tmp_path / "whole.npy"
    np.save(whole, np.zeros((5, 1, 8, 8), dtype=np.float32))  # 1,280 bytes of data after the header
    cut = tmp_path / "cut.npy"
    cut.write_bytes(whole.read_bytes()[:-1000])
    assert main(["simulate", str(student_int_nir), "--inputs", str(cut)]) == 2
    assert (f"--inputs {cut} is truncated: its header declares shape [5, 1, 8, 8] (1,280 bytes) but it holds 280"
            in error_line(capsys))
    assert main(["simulate", str(student_int_nir), "--inputs", str(whole), "--json"]) == 0  # the control
    assert '"samples": 5' in capsys.readouterr().out
