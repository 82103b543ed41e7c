"""The version rule for every reset (issue 15): before nir 1.0.6 the IF, LIF and CubaLIF docstrings all said
v ← v − θ on a spike (NIR commit 6189cac changed the three together), so an old LIF or CubaLIF file is read
as subtract by default, ``--legacy-reset zero`` (``--legacy-if-reset`` still works) reads it as reset to zero,
and ``inspect`` states the rule with its reason."""
from __future__ import annotations

from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
import torch

from kdsnn.cli import main
from kdsnn.export import nir_io
from kdsnn.export.graph_view import GraphView
from kdsnn.export.runtime import GraphSNN

W = np.array([[0.9, -0.2], [0.4, 0.8], [0.3, 0.6]])


def _old_file(tmp_path: Path, kind: str, version: str = "1.0.4") -> Path:
    """A LIF or CubaLIF graph written by nir 1.0.8, its ``version`` set to what an older nir writes."""
    if kind == "LIF":
        neuron = nir.LIF(tau=np.full(3, 4.0), r=np.full(3, 4.0), v_leak=np.zeros(3), v_threshold=np.ones(3),
                         v_reset=np.zeros(3))
    else:
        neuron = nir.CubaLIF(tau_syn=np.full(3, 2.0), tau_mem=np.full(3, 4.0), r=np.full(3, 4.0),
                             v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3), w_in=np.full(3, 2.0))
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "fc": nir.Linear(W), "n": neuron,
                            "output": nir.Output(np.array([3]))},
                     edges=[("input", "fc"), ("fc", "n"), ("n", "output")])
    path = tmp_path / f"{kind}.nir"
    nir.write(path, g)
    with h5py.File(path, "r+") as f:
        del f["version"]
        f["version"] = version
    return path


def _by_hand(kind: str, x: np.ndarray, soft: bool) -> np.ndarray:
    """Forward Euler at dt = 1 (a = 1/4, r·a = 1; CubaLIF a_s = 1/2, w_in·a_s = 1), reset by rule."""
    v, i, out = np.zeros((x.shape[1], 3)), np.zeros((x.shape[1], 3)), []
    for t in range(x.shape[0]):
        cur = x[t] @ W.T
        if kind == "LIF":
            h = v + 0.25 * (-v + 4.0 * cur)
        else:
            i = i + 0.5 * (2.0 * cur - i)
            h = v + 0.25 * (-v + 4.0 * i)
        s = (h > 1).astype(float)
        v = h - s if soft else np.where(s > 0, 0.0, h)
        out.append(s)
    return np.array(out)


@pytest.mark.parametrize("kind", ["LIF", "CubaLIF"])
def test_an_old_leaky_file_resets_by_subtraction(kind: str, tmp_path: Path) -> None:
    path = _old_file(tmp_path, kind)
    x = np.abs(np.random.default_rng(2).normal(1.0, 0.8, (8, 4, 2)))
    view = GraphView.of(nir_io.read(path))
    assert view.reset == "soft" and view.models["n"].reset == "soft" and "1.0.4" in view.reading.reset_why
    got = GraphSNN(view).run(torch.tensor(x)).outputs["n"].numpy()
    want = _by_hand(kind, x, soft=True)
    assert np.array_equal(got, want)
    assert not np.array_equal(want, _by_hand(kind, x, soft=False))  # the rule matters on this input
    zero = GraphView.of(nir_io.read(path, legacy_if_reset="zero"))
    assert zero.reset == "hard" and "--legacy-reset zero" in zero.reading.reset_why
    assert np.array_equal(GraphSNN(zero).run(torch.tensor(x)).outputs["n"].numpy(), _by_hand(kind, x, False))


def test_a_new_leaky_file_resets_to_v_reset(tmp_path: Path) -> None:
    view = GraphView.of(nir_io.read(_old_file(tmp_path, "LIF", version="1.0.8")))
    assert view.reset == "hard" and view.models["n"].reset == "hard"


@pytest.mark.parametrize("flag", ["--legacy-reset", "--legacy-if-reset"])
def test_inspect_states_the_leaky_reset_rule(flag: str, tmp_path: Path, capsys) -> None:
    path = _old_file(tmp_path, "CubaLIF")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "CubaLIF reset: subtract θ (the file was written by nir 1.0.4" in out
    assert "reset by subtracting θ" in out
    assert main(["inspect", str(path), flag, "zero"]) == 0
    assert "CubaLIF reset: to v_reset (--legacy-reset zero" in capsys.readouterr().out
