"""Every shipped experiment config parses against its command, names real choices, takes its
training options from its recipe, and runs end to end (one batch, on fake data of its shape)."""
from pathlib import Path

import pytest
import torch

from kdsnn import config, recipes
from kdsnn.cli import build_parser, main
from kdsnn.distill import METHODS
from kdsnn.models import STUDENTS, TEACHERS
from kdsnn.trainer import TrainConfig
from tests.helpers import REPO

CONFIGS = sorted((REPO / "configs").rglob("*.toml"))
TEACHER_CONFIGS = [p for p in CONFIGS if p.parent.name == "teachers"]
STUDENT_CONFIGS = [p for p in CONFIGS if p.parent.name != "teachers"]
FAKE = {"cifar10": "fake:3x32x32:10", "mnist": "fake:1x28x28:10"}  # no CIFAR or MNIST here: fake data of the shape


def _options(path: Path) -> tuple[str, dict]:
    command = "train-teacher" if path.parent.name == "teachers" else "distill"
    _, subs = build_parser()
    return command, config.load(str(path), command, subs[command])


def test_there_is_one_config_per_table_row():
    names = [p.parent.name for p in CONFIGS]
    assert names.count("table1") == 13 and names.count("table4") == 1 and names.count("teachers") == 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses_and_uses_its_data_sets_recipe(path):
    command, opts = _options(path)
    assert opts["dataset"] in ("cifar10", "mnist")
    kind = "teacher" if command == "train-teacher" else "student"
    family = "cifar" if opts["dataset"] == "cifar10" else "mnist"
    assert opts["recipe"] == f"{family}-{kind}" == recipes.for_dataset(kind, opts["dataset"]).name
    for key in recipes.OPTIONS:  # the training options are the recipe's, not repeated in the config
        assert key not in opts
    cfg, recipe = recipes.apply(TrainConfig(**opts), kind)
    values = recipe.values(opts["arch"], opts.get("kd") if kind == "student" else None)
    assert cfg.lr == values["lr"] and cfg.epochs == values["epochs"] and cfg.augment == values["augment"]
    if command == "distill":
        assert opts["arch"] in STUDENTS and opts["kd"] in METHODS and cfg.timesteps == 4
        teacher_cfg = Path(opts["teacher"]).parent.name  # runs/teachers/<name>/checkpoint.pt
        assert (path.parents[1] / "teachers" / f"{teacher_cfg}.toml").exists()
    else:
        assert opts["arch"] in TEACHERS


@pytest.fixture(scope="module")
def fake_teachers(tmp_path_factory):
    """Each teacher config trained for one batch on fake data of its shape: name → checkpoint."""
    out = tmp_path_factory.mktemp("teachers")
    made = {}
    for path in TEACHER_CONFIGS:
        _, opts = _options(path)
        ckpt = out / path.stem
        assert main(["train-teacher", "--config", str(path), "--dataset", FAKE[opts["dataset"]], "--epochs", "1",
                     "--warmup-epochs", "0", "--max-batches", "1", "--batch-size", "4", "--device", "cpu",
                     "--out", str(ckpt), "--quiet"]) == 0
        made[path.stem] = ckpt / "checkpoint.pt"
    return made


def test_teacher_configs_run_end_to_end(fake_teachers):
    for name, ckpt in fake_teachers.items():
        state = torch.load(ckpt, weights_only=True)
        assert state["recipe"]["name"] == ("cifar" if name.startswith("cifar") else "mnist") + "-teacher"
        assert state["epoch"] == 1 and state["config"]["max_batches"] == 1


@pytest.mark.parametrize("path", STUDENT_CONFIGS, ids=lambda p: p.stem)
def test_student_config_runs_end_to_end(path, fake_teachers, tmp_path):
    _, opts = _options(path)
    teacher = fake_teachers[Path(opts["teacher"]).parent.name]
    assert main(["distill", "--config", str(path), "--dataset", FAKE[opts["dataset"]], "--teacher", str(teacher),
                 "--epochs", "1", "--warmup-epochs", "0", "--max-batches", "1", "--batch-size", "4", "--width", "0.25",
                 "--device", "cpu", "--out", str(tmp_path), "--quiet"]) == 0
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    recipe = recipes.builtin(opts["recipe"])
    assert state["recipe"]["name"] == recipe.name and state["config"]["kd"] == opts["kd"]
    assert state["config"]["alpha"] == recipe.values(opts["arch"], opts["kd"])["alpha"]
    assert state["optimizer"]["param_groups"][0]["initial_lr"] == recipe.values(opts["arch"])["lr"]
