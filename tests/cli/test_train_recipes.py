"""Recipes through the command line: which recipe a run uses, the order recipe < --config < flags
(checked on what the run really trained with), the recipe in the checkpoint, --help, --resume,
and one-line errors for bad recipes."""
import json
import math
import re

import pytest
import torch

from kdsnn import recipes
from kdsnn.cli import main

FAKE = "fake:1x8x8:4"  # 512 training images


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kdsnn: error: ")
    return err[0]


def test_recipe_then_config_then_flags(tmp_path, capsys):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('family = "student"\nsource = "a test"\n[options]\nepochs = 2\nlr = 0.03\nbatch-size = 64\n'
                      'momentum = 0.8\nwarmup-epochs = 0.5\naugment = "shift:pad=1"\ntimesteps = 3\n'
                      '[kd.none]\n')
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'recipe = "{recipe}"\nlr = 0.02\nbatch-size = 32\n')
    out = tmp_path / "run"
    assert main(["distill", "--config", str(cfg), "--dataset", FAKE, "--kd", "none", "--width", "0.25",
                 "--batch-size", "16", "--out", str(out), "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["recipe"] == "tiny"
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    c = ckpt["config"]
    # flag > config > recipe > built-in defaults, each checked on the value the run used
    assert c["batch_size"] == 16 and c["lr"] == 0.02 and c["epochs"] == 2 and c["momentum"] == 0.8
    assert c["timesteps"] == 3 and ckpt["model_spec"]["timesteps"] == 3
    assert c["weight_decay"] == recipes.builtin("default-student").options["weight_decay"]
    assert ckpt["recipe"] == {"name": "tiny", "origin": str(recipe), "family": "student", "source": "a test"}
    group = ckpt["optimizer"]["param_groups"][0]
    assert group["initial_lr"] == 0.02 and group["momentum"] == 0.8
    steps = 2 * math.ceil(512 / 16)  # two epochs of 32 batches, stepped per iteration
    assert ckpt["scheduler"]["last_epoch"] == steps
    warmup = 16  # half an epoch
    expected = 0.02 * 0.5 * (1 + math.cos(math.pi * (steps - warmup) / (steps - warmup)))
    assert group["lr"] == pytest.approx(expected, abs=1e-12)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    mid = 0.02 * 0.5 * (1 + math.cos(math.pi * (32 - warmup) / (steps - warmup)))  # after epoch 1
    assert records[0]["lr"] == pytest.approx(mid)


def test_each_data_set_gets_its_recipe_by_default(tmp_path, capsys):
    assert main(["distill", "--kd", "none", "--width", "0.25", "--epochs", "1", "--out", str(tmp_path / "d"),
                 "--quiet", "--json"]) == 0
    ckpt = torch.load(tmp_path / "d" / "checkpoint.pt", weights_only=True)
    digits = recipes.builtin("digits-student")
    assert ckpt["recipe"]["name"] == "digits-student" and ckpt["recipe"]["source"] == digits.source
    assert ckpt["config"]["augment"] == digits.options["augment"] and ckpt["config"]["lr"] == digits.options["lr"]
    assert main(["train-teacher", "--dataset", FAKE, "--epochs", "1", "--out", str(tmp_path / "f"), "--quiet"]) == 0
    assert torch.load(tmp_path / "f" / "checkpoint.pt", weights_only=True)["recipe"]["name"] == "default-teacher"


def _help(command: str, capsys) -> str:
    """``--help``'s text on one line (argparse wraps lines, also after the hyphen in a name)."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return re.sub(r"(?<=\w)- (?=\w)", "-", " ".join(capsys.readouterr().out.split()))


def test_help_says_which_recipe_applies_to_which_data_set(capsys):
    text = _help("distill", capsys)
    assert "mnist → mnist-student" in text and "cifar10, cifar100 → cifar-student" in text
    assert "digits → digits-student" in text and "any other data set → default-student" in text
    mnist = recipes.builtin("mnist-student").values("snn_2conv", "response")
    assert f"mnist-student (mnist): {recipes.summary(mnist, 'response')}" in text
    assert "mnist → mnist-teacher" in _help("train-teacher", capsys)


def test_resume_refuses_other_training_options(tmp_path, capsys):
    out = tmp_path / "r"
    common = ["distill", "--dataset", FAKE, "--kd", "none", "--width", "0.25", "--epochs", "2", "--out", str(out),
              "--quiet"]
    assert main([*common, "--stop-after", "1"]) == 0
    assert main([*common, "--resume", "--lr", "0.5"]) == 2
    assert "was trained with lr = 0.05, this run asks for 0.5" in _error_line(capsys)
    assert main([*common, "--resume"]) == 0
    done = torch.load(out / "checkpoint.pt", weights_only=True)
    assert done["epoch"] == 2
    # a finished run has nothing left to continue: resuming it (as `kdsnn demo` does) keeps it as it is
    assert main([*common, "--resume", "--lr", "0.5"]) == 0
    again = torch.load(out / "checkpoint.pt", weights_only=True)
    assert again["epoch"] == 2 and all(torch.equal(again["model"][k], v) for k, v in done["model"].items())


@pytest.mark.parametrize("recipe, message", [
    ("cifar", "unknown recipe 'cifar'; choose one of"),
    ("missing/recipe.toml", "recipe file missing/recipe.toml does not exist"),
    ("cifar-teacher", "recipe cifar-teacher is a teacher recipe"),
])
def test_bad_recipe_is_one_line(tmp_path, capsys, recipe, message):
    assert main(["distill", "--dataset", FAKE, "--kd", "none", "--recipe", recipe, "--out", str(tmp_path)]) == 2
    assert message in _error_line(capsys)


def test_bad_recipe_file_and_bad_flags_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('family = "student"\nsource = "x"\n[options]\nwarmup = 1\n')
    assert main(["distill", "--dataset", FAKE, "--kd", "none", "--recipe", str(bad), "--out", str(tmp_path)]) == 2
    assert f"recipe {bad} [options]: 'warmup' is not an option" in _error_line(capsys)
    for flags, message in ((["--augment", "cutout"], "--augment: unknown augmentation 'cutout'"),
                           (["--optimizer", "lamb"], "--optimizer: unknown optimizer 'lamb'"),
                           (["--label-smoothing", "1.5"], "--label-smoothing must be in [0, 1)"),
                           (["--warmup-epochs", "20", "--epochs", "5"], "--warmup-epochs 20.0 must be >= 0 and below"),
                           (["--lr", "0"], "--lr must be > 0")):
        assert main(["distill", "--dataset", FAKE, "--kd", "none", *flags, "--out", str(tmp_path / "x")]) == 2
        assert message in _error_line(capsys)
