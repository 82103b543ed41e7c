"""Every shipped experiment config parses against its command and names real choices."""
from pathlib import Path

import pytest

from kdsnn import config
from kdsnn.cli import build_parser
from kdsnn.distill import METHODS
from kdsnn.models import STUDENTS, TEACHERS
from tests.helpers import REPO

CONFIGS = sorted((REPO / "configs").rglob("*.toml"))


def test_there_is_one_config_per_table_row():
    names = [p.parent.name for p in CONFIGS]
    assert names.count("table1") == 13 and names.count("table4") == 1 and names.count("teachers") == 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses(path):
    _, subs = build_parser()
    command = "train-teacher" if path.parent.name == "teachers" else "distill"
    opts = config.load(str(path), command, subs[command])
    assert opts["dataset"] in ("cifar10", "mnist")
    if command == "distill":
        assert opts["arch"] in STUDENTS and opts["kd"] in METHODS and opts["timesteps"] == 4
        teacher_cfg = Path(opts["teacher"]).parent.name  # runs/teachers/<name>/checkpoint.pt
        assert (path.parents[1] / "teachers" / f"{teacher_cfg}.toml").exists()
    else:
        assert opts["arch"] in TEACHERS
