"""``--config`` values are checked against their options' types, as the command line checks flags."""
import argparse

import pytest

from kdsnn import config
from kdsnn.arg_types import positive_int
from kdsnn.errors import KdsnnError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--timesteps", type=positive_int, default=4)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--save", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--target", action="append", default=None)
    p.add_argument("--reset", default="hard", choices=("hard", "soft"))
    return p


def _load(tmp_path, text: str) -> dict:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config.load(str(path), "distill", _parser())


def test_values_of_the_right_type_pass(tmp_path):
    got = _load(tmp_path, 'timesteps = 8\nlr = 1\nsave = "a.npz"\nquiet = true\ntarget = ["loihi2", "x.toml"]\n'
                          '[distill]\nepochs = 3\nreset = "soft"\n')
    assert got == {"timesteps": 8, "lr": 1.0, "save": "a.npz", "quiet": True, "target": ["loihi2", "x.toml"],
                   "epochs": 3, "reset": "soft"}
    assert isinstance(got["lr"], float)
    assert _load(tmp_path, 'target = "loihi2"\n') == {"target": ["loihi2"]}  # one value of a repeatable option


@pytest.mark.parametrize("text, says", [
    ("timesteps = [1, 2]", "timesteps must be a single value, got list [1, 2]"),
    ("timesteps = 0", "timesteps must be an integer ≥ 1, got 0"),
    ("timesteps = true", "timesteps must be an integer, got True"),
    ("epochs = 2.0", "epochs must be an integer, got 2.0"),
    ("lr = \"fast\"", "lr must be a number, got 'fast'"),
    ("save = 5", "save must be a string, got 5"),
    ("quiet = \"yes\"", "quiet must be true or false, got 'yes'"),
    ("target = [1]", "target must be a string, got 1"),
    ("reset = \"sideways\"", "reset must be one of hard, soft, got 'sideways'"),
    ("lr = " + "[" * 3000 + "]" * 3000, "nests arrays or tables too deeply"),
])
def test_wrong_values_are_one_line(tmp_path, text, says):
    with pytest.raises(KdsnnError) as exc:
        _load(tmp_path, text + "\n")
    assert says in str(exc.value) and "\n" not in str(exc.value)


def test_a_huge_file_is_refused(tmp_path):
    with pytest.raises(KdsnnError, match="a config file holds options"):
        _load(tmp_path, "# " + "x" * (config.MAX_BYTES + 10) + "\n")
