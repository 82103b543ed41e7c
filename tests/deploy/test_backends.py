"""deploy/backends.py: the registry names each backend once; the simulator's earlier name still works,
and the options and help texts read the registry."""
from __future__ import annotations

import json

import pytest

from kdsnn.cli import build_parser, main
from kdsnn.deploy.backends import BACKENDS, BASELINE, get, names_text
from kdsnn.errors import KdsnnError
from tests.helpers import FIXTURES


def test_names_say_what_they_are() -> None:
    assert BASELINE == "pytorch" and BACKENDS[BASELINE].label == "PyTorch graph runtime"
    assert get("simulator") is get("reference") is BACKENDS["simulator"]  # "reference": its earlier name
    assert "reference" not in BACKENDS
    with pytest.raises(KdsnnError, match="unknown backend 'nosuch'; choose one of pytorch, nir-file, simulator"):
        get("nosuch")


def test_help_texts_and_options_read_the_registry() -> None:
    slow = [b.name for b in BACKENDS.values() if b.slow]
    assert slow and names_text(slow_only=True) == ", ".join(slow)
    assert "simulator (or reference)" in names_text()
    _, commands = build_parser()
    for command in ("verify", "report"):
        for flag in ("--slow-samples", "--lava-samples"):  # the earlier spelling is the same option
            args = commands[command].parse_args(["x.nir", flag, "3"] + (["--out", "r"] if command == "report" else []))
            assert args.slow_samples == 3
        assert names_text(slow_only=True) in " ".join(commands[command].format_help().split())


def test_simulate_takes_the_earlier_name(capsys) -> None:
    graph = FIXTURES / "peers" / "sj_mlp_if_dt1.nir"
    runs = {}
    for name in ("simulator", "reference"):
        assert main(["simulate", str(graph), "--backend", name, "--dataset", "digits", "--samples", "4",
                     "--timesteps", "4", "--json"]) == 0
        runs[name] = json.loads(capsys.readouterr().out)
    assert runs["reference"]["backend"] == "reference"  # the JSON says what the user typed
    assert {k: v for k, v in runs["reference"].items() if k != "backend"} == \
        {k: v for k, v in runs["simulator"].items() if k != "backend"}
    assert "per_inference" in runs["simulator"]  # the simulator's counters
