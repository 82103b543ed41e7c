"""``kdsnn quantize FILE.nir`` (issue 15): foreign float graphs (IF, LIF, CubaLIF, recurrent) to integers with
Loihi's 12-bit decays; the float-vs-integer agreement on the user's inputs; the integer file bit-exact on every
integer backend (graph runtime, simulator, ONNX unrolled and step, Lava)."""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from kdsnn.cli import main
from kdsnn.deploy.verify import verify_graph
from kdsnn.export import nir_io
from kdsnn.export.graph_view import GraphView
from kdsnn.export.quantize import quantize_graph
from kdsnn.export.runtime import GraphSNN
from tests.export.test_reading_peers import EXACT
from tests.helpers import FIXTURES

PEERS = FIXTURES / "peers"
OPTIONS = {**EXACT, "snntorch_rsynaptic_all": {"dt": 1e-4}, "snntorch_rsynaptic_one": {"dt": 1e-4}}


def _quantize(name: str, tmp_path, capsys, bits: int = 8) -> tuple[dict, np.ndarray]:
    z = np.load(PEERS / f"{name}.npz")
    np.save(tmp_path / "x.npy", z["input"])
    args = ["quantize", str(PEERS / f"{name}.nir"), "--bits", str(bits), "--inputs", str(tmp_path / "x.npy"),
            "--out", str(tmp_path / "q.nir"), "--json"]
    opts = OPTIONS[name]
    if "dt" in opts:
        args += ["--dt", str(opts["dt"])]
    if "legacy_if_reset" in opts:
        args += ["--legacy-reset", opts["legacy_if_reset"]]
    rc = main(args)
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out), z["input"]


@pytest.mark.parametrize("name", [*EXACT, "snntorch_rsynaptic_all"])
def test_quantized_fixture_is_bit_exact_on_the_simulator(name: str, tmp_path, capsys) -> None:
    res, x = _quantize(name, tmp_path, capsys)
    q = nir_io.read(tmp_path / "q.nir")
    view = GraphView.of(q)
    assert view.integer and view.timesteps == x.shape[0]
    checks = {c.backend: c for c in verify_graph(q, torch.as_tensor(x), slow_samples=1)}
    # ONNX too, both forms: Loihi's decays in int64, the analog sequence quantized per step like the runtime
    for label in ("reference simulator", "ONNX (onnxruntime)", "ONNX step (onnxruntime)"):
        assert checks[label].status == "agree", (label, checks[label].detail)
    rep = res["agreement"]
    assert rep["samples"] == x.shape[1] and set(rep["populations"]) == set(view.populations)
    # quantization moves a few spikes, not the network: counts within 20 % of the float graph's
    for p in rep["populations"].values():
        assert abs(p["integer_spikes"] - p["float_spikes"]) <= 0.2 * max(p["float_spikes"], 10), (name, p)


@pytest.mark.parametrize("name", ["snntorch_rleaky_all", "snntorch_rleaky_one"])
def test_quantized_recurrent_fixture_runs_bit_exact_on_lava(name: str, tmp_path, capsys) -> None:
    from kdsnn.deploy.lava import lava_available

    ok, why = lava_available()
    if not ok:
        pytest.skip(f"Lava not importable: {why}")
    res, x = _quantize(name, tmp_path, capsys)
    assert res["agreement"]["same_class"] >= 0.75
    checks = {c.backend: c for c in verify_graph(nir_io.read(tmp_path / "q.nir"), torch.as_tensor(x), slow_samples=2)}
    lava = next(c for label, c in checks.items() if label.startswith("Lava"))
    assert lava.status == "agree" and "identical spikes at 2 populations" in lava.detail, lava.detail


def test_fit_line_follows_maps_loihi_rule(tmp_path, capsys) -> None:
    """A recurrent first layer sums analog input and spikes: its spike synapse gets an 8-bit mantissa times 2^e
    (here e = 6: |w| ≤ 127·64 = 8128), which Loihi holds; quantize's fit line and ``kdsnn map``'s loihi2 rules
    (export/loihi.py, one rule) both say it fits, and the analog synapse stays within the mantissa."""
    from kdsnn.deploy.targets.mapping import map_graph

    res, _ = _quantize("snntorch_rsynaptic_all", tmp_path, capsys)
    assert res["range_problems"] == []
    q = nir_io.read(tmp_path / "q.nir")
    rep = GraphView.of(q).meta["quantization"]
    e = rep["1.w_rec"]["weight_exponent"]
    w = np.abs(q.nodes["1.w_rec"].weight)
    assert e >= 1 and rep["1.w_rec"]["fits_loihi_weight"] and w.max() > 127 and np.all(w % 2 ** e == 0)
    assert np.abs(w / 2 ** e).max() <= 127 and np.abs(q.nodes["0"].weight).max() <= 127
    violations = {(v["node"], v["rule"]) for v in map_graph(q, "loihi2")["violations"]}
    assert not {r for r in violations if r[1] in ("weight_range", "bias_range", "threshold_range")}, violations


def test_agreement_is_measured_on_the_users_inputs(tmp_path, capsys) -> None:
    """The command's numbers are the two runtimes' own: recomputed here from the float and integer files."""
    res, x = _quantize("snntorch_rsynaptic_one", tmp_path, capsys)
    fl = GraphSNN(nir_io.read(PEERS / "snntorch_rsynaptic_one.nir", dt=1e-4)).run(torch.as_tensor(x))
    qi = GraphSNN(nir_io.read(tmp_path / "q.nir")).run(torch.as_tensor(x))
    same = float((fl.logits.argmax(1) == qi.logits.argmax(1)).double().mean())
    assert res["agreement"]["same_class"] == same
    assert res["agreement"]["populations"]["1.lif"]["integer_spikes"] == float(qi.outputs["1.lif"].sum())


def test_decays_become_twelve_bit_fractions_and_gains_fold_into_weights() -> None:
    """LIF(τ = 5, r = 3) at dt = 1: dt/τ = 0.2 → dv = round(819.2) = 819, gain r·dt/τ = 0.6 folded into W."""
    w = np.array([[1.0, -0.5], [0.25, 0.75]])
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "fc": nir.Linear(w),
                            "n": nir.LIF(tau=np.full(2, 5.0), r=np.full(2, 3.0), v_leak=np.zeros(2),
                                         v_threshold=np.full(2, 0.5), v_reset=np.zeros(2)),
                            "output": nir.Output(np.array([2]))},
                     edges=[("input", "fc"), ("fc", "n"), ("n", "output")], type_check=False)
    q = quantize_graph(g, bits=8, integer=True, calibration_max=1.0)
    m = GraphView.of(q).models["n"]
    assert m.integer and float(m.leak.flat[0]) == 819 / 4096 and float(m.gain.flat[0]) == 1.0
    c = 1.0 * (1 / 127) * 0.6 / 127  # peak |W|·input step·gain over 127 levels
    assert np.array_equal(q.nodes["fc"].weight, np.round(w * (1 / 127) * 0.6 / c))
    assert float(q.nodes["n"].v_threshold[0]) == np.round(0.5 / c)


def test_a_nir_file_without_inputs_is_refused_in_one_line(tmp_path, capsys) -> None:
    rc = main(["quantize", str(PEERS / "sj_mlp_lif_dt1.nir"), "--out", str(tmp_path / "q.nir")])
    err = capsys.readouterr().err
    assert rc == 2 and "needs --inputs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "q.nir").exists()
