"""The graph commands on another tool's NIR file, as a new user runs them: inspect, simulate
(--inputs, --labels, --spike-rate, --save), verify FILE.nir and report FILE.nir (no checkpoint)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from kdsnn.cli import main
from tests.helpers import FIXTURES

PEERS = FIXTURES / "peers"


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_inspect_shows_the_reading(capsys) -> None:
    rc, out, _ = _cli(capsys, "inspect", PEERS / "sj_mlp_if_dt1e-4.nir")
    assert rc == 0
    assert "r·dt 1e+04" in out and "meant --dt 0.0001" in out and "T is not recorded" in out
    assert "IF reset: to v_reset (the file was written by nir 1.0.8" in out
    rc, out, _ = _cli(capsys, "inspect", PEERS / "sinabs_mlp_iaf_zero.nir", "--legacy-if-reset", "zero",
                      "--timesteps", 4)
    assert "IF reset: to v_reset (--legacy-if-reset zero" in out and "T = 4 (given)" in out
    assert "simulator  yes" in out
    rc, out, _ = _cli(capsys, "inspect", PEERS / "sinabs_mlp_iaf_subtract.nir")
    assert "IF reset: subtract θ (the file was written by nir 1.0.4" in out
    assert "simulator  yes" in out and "norse      no   IF node '1': Norse resets to 0" in out
    rc, out, _ = _cli(capsys, "inspect", PEERS / "snntorch_mlp_beta09_zero.nir", "--dt", "1e-4")
    assert "dt/τ 0.1" in out and "dt = 0.0001 (given (--dt))" in out


def test_simulate_save_and_inputs(capsys, tmp_path) -> None:
    z = np.load(PEERS / "sj_mlp_lif_dt1.npz")
    np.save(tmp_path / "x.npy", z["input"])                       # [T, B, 64]: a sequence
    np.save(tmp_path / "y.npy", np.arange(8) % 10)
    rc, out, err = _cli(capsys, "simulate", PEERS / "sj_mlp_lif_dt1.nir", "--backend", "pytorch", "--inputs",
                        tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--save", tmp_path / "run.npz", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["samples"] == 8 and res["accuracy"] is not None
    saved = np.load(tmp_path / "run.npz")
    assert set(saved.files) == {"output", "_1", "_3"}
    np.testing.assert_array_equal(saved["_1"], z["spikes__1"])
    np.testing.assert_array_equal(saved["output"], z["output"])
    # the reference simulator runs the leaky graph too (its LIF steps by the model's reference step): SpikingJelly's
    # own spikes at both populations
    rc, out, err = _cli(capsys, "simulate", PEERS / "sj_mlp_lif_dt1.nir", "--inputs", tmp_path / "x.npy",
                        "--save", tmp_path / "sim.npz", "--json")
    assert rc == 0, err
    sim = np.load(tmp_path / "sim.npz")
    np.testing.assert_array_equal(sim["_1"], z["spikes__1"])
    np.testing.assert_array_equal(sim["_3"], z["spikes__3"])
    # images feed a flat graph when the sizes match
    rc, out, err = _cli(capsys, "simulate", PEERS / "sj_mlp_if_dt1.nir", "--dataset", "digits", "--samples", 5,
                        "--timesteps", 4, "--save", tmp_path / "ref.npz")
    assert rc == 0, err
    assert "accuracy" in out
    assert np.load(tmp_path / "ref.npz")["output"].shape == (4, 5, 10)
    rc, out, err = _cli(capsys, "simulate", PEERS / "sj_mlp_if_dt1.nir", "--dataset", "digits")
    assert rc == 2 and "--timesteps" in err


def test_simulate_spike_rate(capsys, tmp_path) -> None:
    rc, out, err = _cli(capsys, "simulate", PEERS / "sinabs_conv_iaf_zero.nir", "--legacy-if-reset", "zero",
                        "--spike-rate", 0.3, "--timesteps", 5, "--samples", 3, "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["accuracy"] is None and res["if_reset"] == "hard" and res["per_inference"]["macs_effective"] == 0


@pytest.mark.parametrize("args,words", [
    ((), "give a NIR file"),
    ((PEERS / "sj_mlp_if_dt1.nir", "--checkpoint", "x.pt"), "not both"),
    ((PEERS / "sj_mlp_if_dt1.nir", "--labels", "y.npy"), "--labels goes with --inputs"),
    ((PEERS / "snntorch_mlp_beta1_zero.nir", "--dataset", "digits", "--timesteps", 4), "undefined"),
    ((PEERS / "sj_mlp_if_dt1.nir", "--dt", "-1"), "--dt must be a positive number"),
])
def test_verify_refuses_in_one_line(capsys, args, words) -> None:
    rc, _, err = _cli(capsys, "verify", *args)
    assert rc == 2 and words in err and err.count("\n") == 1, err


def test_verify_a_foreign_file(capsys) -> None:
    rc, out, err = _cli(capsys, "verify", PEERS / "norse_mlp_lifbox_dt1.nir", "--dataset", "digits", "--timesteps", 4,
                        "--samples", 4, "--json")
    assert rc == 0, err
    res = json.loads(out)
    by = {c["backend"]: c for c in res["checks"]}
    assert by["ONNX (onnxruntime)"]["status"] == "agree" and by["NIR file → PyTorch"]["status"] == "agree"
    assert by["reference simulator"]["status"] == "agree"  # its LIF steps by the model's reference step
    assert by["Norse 1.1 (from_nir)"]["status"] in ("agree", "unavailable")
    assert any("batch axis" in n for n in res["notes"])


def test_report_a_foreign_file(capsys, tmp_path) -> None:
    z = np.load(PEERS / "sj_conv_if_dt1.npz")
    np.save(tmp_path / "x.npy", z["input"][0])                    # [B, 1, 8, 8]: analog, repeated over T
    np.save(tmp_path / "y.npy", np.arange(8))
    rc, out, err = _cli(capsys, "report", PEERS / "sj_conv_if_dt1.nir", "--inputs", tmp_path / "x.npy", "--labels",
                        tmp_path / "y.npy", "--timesteps", 4, "--out", tmp_path / "rep")
    assert rc == 0, err
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["counted_by"] == "reference simulator" and rep["timesteps"] == 4
    assert rep["accuracy"]["PyTorch graph runtime"]["samples"] == 8
    assert rep["accuracy"]["reference simulator"]["accuracy"] == rep["accuracy"]["PyTorch graph runtime"]["accuracy"]
    assert rep["per_inference"]["synops"] > 0 and rep["energy"]
    assert (tmp_path / "rep" / "report.html").read_text().count("<h2>") >= 5
    # a leaky graph: counted by the reference simulator, and the same SynOps counted a second way (PyTorch-side
    # fan-out maps on the graph runtime's own spikes)
    rc, out, err = _cli(capsys, "report", PEERS / "snntorch_conv_beta09_zero.nir", "--dt", "1e-4", "--inputs",
                        tmp_path / "x.npy", "--timesteps", 4, "--out", tmp_path / "leaky")
    assert rc == 0, err
    rep = json.loads((tmp_path / "leaky" / "report.json").read_text())
    assert rep["counted_by"] == "reference simulator" and rep["per_inference"]["synops"] > 0
    import torch

    from kdsnn.deploy.synops import count_run
    from kdsnn.export import nir_io
    from kdsnn.export.runtime import GraphSNN
    graph = nir_io.read(PEERS / "snntorch_conv_beta09_zero.nir", dt=1e-4)
    again = count_run(graph, GraphSNN(graph, timesteps=4).run(torch.from_numpy(z["input"][0])))
    assert rep["per_inference"]["synops"] == again.per_sample()["synops"]


def test_each_graph_is_validated_once_per_command(capsys, tmp_path, monkeypatch) -> None:
    """simulate, verify and report build one GraphView per graph object (GraphView.of hands the same view to
    every consumer); a graph read back from a written file is another object, with its own view."""
    from kdsnn.export.graph_view import GraphView

    built: dict[int, int] = {}
    seen: list = []  # keeps every graph alive, so no id is reused during a command
    init = GraphView.__init__

    def counting(self, graph, *args, **kwargs) -> None:
        seen.append(graph)
        built[id(graph)] = built.get(id(graph), 0) + 1
        init(self, graph, *args, **kwargs)

    monkeypatch.setattr(GraphView, "__init__", counting)
    z = np.load(PEERS / "sj_conv_if_dt1.npz")
    np.save(tmp_path / "x.npy", z["input"][0])
    np.save(tmp_path / "y.npy", np.arange(8))
    for args in (("simulate", PEERS / "sj_mlp_if_dt1.nir", "--dataset", "digits", "--samples", 5, "--timesteps", 4),
                 ("verify", PEERS / "norse_mlp_lifbox_dt1.nir", "--dataset", "digits", "--timesteps", 4, "--samples", 4,
                  "--slow-samples", 1),
                 ("report", PEERS / "sj_conv_if_dt1.nir", "--inputs", tmp_path / "x.npy", "--labels",
                  tmp_path / "y.npy", "--timesteps", 4, "--slow-samples", 1, "--out", tmp_path / "rep")):
        built.clear()
        rc, _, err = _cli(capsys, *args)
        assert rc == 0, err
        assert built and max(built.values()) == 1, (args[0], sorted(built.values()))
