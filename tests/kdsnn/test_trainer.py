"""Training end to end on digits: accuracy, resume, DDP, configs and one-line errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdsnn import checkpoint
from kdsnn.cli import main
from kdsnn.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    result = train(TrainConfig(arch="mnist_cnn", epochs=3, out=str(out), quiet=True), "teacher")
    assert result["accuracy"] > 0.9
    return out / "checkpoint.pt"


def test_short_distillation_beats_chance(teacher, tmp_path, capsys):
    # 5 epochs: with response's default α = 0.9 the student leans on the (3-epoch, ~91 %) teacher's soft
    # targets and needs a few more epochs than with α = 0.5 (3 epochs: 79 % against 86 %)
    code = main(["distill", "--arch", "snn_2conv", "--teacher", str(teacher), "--kd", "response", "--epochs", "5",
                 "--out", str(tmp_path), "--quiet", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["accuracy"] > 0.85  # chance is 0.10
    assert Path(result["checkpoint"]).exists()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5]
    model, ckpt = checkpoint.load_model(result["checkpoint"])
    assert ckpt["model_spec"]["timesteps"] == 4 and ckpt["model_spec"]["neuron"]["reset"] == "hard"


def test_validate_reports_the_held_out_split(teacher, tmp_path, capsys):
    code = main(["distill", "--arch", "snn_2conv", "--width", "0.25", "--teacher", str(teacher), "--kd", "none",
                 "--epochs", "1", "--validate", "--out", str(tmp_path), "--quiet", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["split"] == "val"
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["val_accuracy"] == result["accuracy"] and "test_accuracy" not in record
    model, ckpt = checkpoint.load_model(result["checkpoint"])
    assert ckpt["model_spec"]["width"] == 0.25 and ckpt["val_accuracy"] == result["accuracy"]
    # the accuracy is the held-out fifth's, computed here a second way
    from kdsnn import data
    from kdsnn.trainer import evaluate
    assert evaluate(model, data.load("digits", "val"), torch.device("cpu")) == result["accuracy"]


def test_a_plain_student_neither_loads_nor_runs_a_teacher_it_is_given(teacher, tmp_path, capsys, monkeypatch):
    # bench/accuracy.py passes one teacher to every method; --kd none must not pay for its forward each step
    import kdsnn.trainer as trainer

    loaded = []
    real = trainer.checkpoint.load_model
    monkeypatch.setattr(trainer.checkpoint, "load_model", lambda *a, **k: loaded.append(a) or real(*a, **k))
    code = main(["distill", "--arch", "snn_2conv", "--width", "0.25", "--teacher", str(teacher), "--kd", "none",
                 "--epochs", "1", "--max-batches", "2", "--out", str(tmp_path)])
    assert code == 0
    assert f"--kd none trains without a teacher; --teacher {teacher} is not loaded or run" in capsys.readouterr().out
    assert loaded == []
    loaded.clear()
    code = main(["distill", "--arch", "snn_2conv", "--width", "0.25", "--teacher", str(teacher), "--kd", "response",
                 "--epochs", "1", "--max-batches", "2", "--out", str(tmp_path / "kd"), "--quiet"])
    assert code == 0 and [str(a[0]) for a in loaded] == [str(teacher)]  # a KD method does load it


def test_evaluate_with_noise(teacher, capsys):
    assert main(["evaluate", "--checkpoint", str(teacher), "--json"]) == 0
    clean = json.loads(capsys.readouterr().out)["accuracy"]
    assert main(["evaluate", "--checkpoint", str(teacher), "--noise", "gaussian:0.5", "--json"]) == 0
    noisy = json.loads(capsys.readouterr().out)["accuracy"]
    assert noisy < clean


def test_resume_gives_the_same_weights(tmp_path):
    common = dict(arch="snn_2conv", kd="none", epochs=3, batch_size=128, quiet=True, seed=3)
    train(TrainConfig(out=str(tmp_path / "a"), **common), "student")
    train(TrainConfig(out=str(tmp_path / "b"), stop_after=1, **common), "student")
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    train(TrainConfig(out=str(tmp_path / "b"), resume=True, **common), "student")
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_config_file_with_flag_override(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('arch = "snn_2conv"\nepochs = 5\n[distill]\nkd = "none"\ntimesteps = 2\nbatch-size = 128\n')
    assert main(["distill", "--config", str(cfg), "--epochs", "1", "--out", str(tmp_path / "r"),
                 "--quiet", "--json"]) == 0
    ckpt = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert ckpt["epochs"] == 1 and ckpt["model_spec"]["timesteps"] == 2 and ckpt["config"]["batch_size"] == 128
    bad = tmp_path / "bad.toml"
    bad.write_text("epochz = 3\n")
    assert main(["distill", "--config", str(bad)]) == 2
    assert "unknown option 'epochz'" in capsys.readouterr().err


def test_ddp_two_processes_on_cpu(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "kdsnn", "distill",
                           "--arch", "snn_2conv", "--kd", "none", "--epochs", "2", "--device", "cpu",
                           "--out", str(tmp_path), "--quiet", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 1  # rank 0 reports for the run
    assert results[0]["world_size"] == 2 and results[0]["replicas_identical"] is True
    assert results[0]["accuracy"] > 0.5
    assert (tmp_path / "checkpoint.pt").exists()


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kdsnn: error: ")
    return err[0]


def test_bad_input_gives_one_line(tmp_path, capsys):
    assert main(["train-teacher", "--arch", "resnet1000", "--out", str(tmp_path)]) == 2
    assert "unknown architecture" in _error_line(capsys)
    assert main(["train-teacher", "--dataset", "cifar10", "--arch", "resnet18", "--out", str(tmp_path)]) == 2
    assert "cifar-10-batches-py" in _error_line(capsys)
    assert main(["train-teacher", "--dataset", "mnist", "--data-root", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "train-images-idx3-ubyte" in _error_line(capsys)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(300))
    assert main(["evaluate", "--checkpoint", str(corrupt)]) == 2
    assert "not a readable kdsnn checkpoint" in _error_line(capsys)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    assert main(["evaluate", "--checkpoint", str(foreign)]) == 2
    assert "not a kdsnn checkpoint" in _error_line(capsys)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in _error_line(capsys)
    assert main(["distill", "--kd", "feature", "--out", str(tmp_path)]) == 2
    assert "needs a teacher" in _error_line(capsys)
