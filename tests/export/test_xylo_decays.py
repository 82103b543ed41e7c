"""Xylo's bit-shift decays as a quantize target (issue 15): ``kdsnn quantize FILE.nir --target xylo`` turns each LIF
decay into the nearest ``dash`` (Rockpool's own choice, asked in its environment), reports the error it makes in τ,
and the integer graph runtime and simulator run ``v ← v − (v >> dash) + x`` bit-exact, as worked out by hand."""
from __future__ import annotations

import json
import math

import nir
import numpy as np
import pytest
import torch

from kdsnn.cli import main
from kdsnn.deploy.simulator import simulate
from kdsnn.errors import KdsnnError
from kdsnn.export import nir_io
from kdsnn.export.graph import set_meta
from kdsnn.export.graph_view import GraphView
from kdsnn.export.quantize import quantize_graph, xylo_shift
from kdsnn.export.runtime import GraphSNN

TAUS_MS = (3.0, 5.0, 12.0)  # dt = 1 ms: dt/τ = 1/3, 1/5, 1/12


def _float_lif_graph() -> nir.NIRGraph:
    """Input(4) → fc1 → LIF(τ = 3 ms) → fc2 → LIF(τ = 5 ms) → fc3 → LIF(τ = 12 ms) → Output, meant at dt = 1 ms."""
    rng = np.random.default_rng(3)
    nodes: dict = {"input": nir.Input(np.array([4]))}
    edges, prev, n_in = [], "input", 4
    for k, (tau, n) in enumerate(zip(TAUS_MS, (6, 5, 3), strict=True), 1):
        nodes[f"fc{k}"] = nir.Linear(rng.normal(0.6, 0.8, size=(n, n_in)))
        nodes[f"lif{k}"] = nir.LIF(tau=np.full(n, tau * 1e-3), r=np.full(n, tau), v_leak=np.zeros(n),
                                   v_threshold=np.full(n, 0.5), v_reset=np.zeros(n))
        edges += [(prev, f"fc{k}"), (f"fc{k}", f"lif{k}")]
        prev, n_in = f"lif{k}", n
    nodes["output"] = nir.Output(np.array([3]))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> tuple[dict, nir.NIRGraph, np.ndarray]:
    tmp = tmp_path_factory.mktemp("xylo")
    nir_io.write(_float_lif_graph(), tmp / "f.nir")
    x = np.random.default_rng(4).uniform(0, 2, (8, 4))
    np.save(tmp / "x.npy", x)
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["quantize", str(tmp / "f.nir"), "--dt", "1e-3", "--timesteps", "12", "--target", "xylo",
                   "--inputs", str(tmp / "x.npy"), "--out", str(tmp / "q.nir"), "--json"])
    assert rc == 0
    return json.loads(out.getvalue()), nir_io.read(tmp / "q.nir"), x


def test_the_nearest_bit_shift_and_its_error_in_tau(quantized) -> None:
    """τ/dt = 3, 5, 12 → dash = round(log2(τ/dt)) = round(1.58), round(2.32), round(3.58) = 2, 2, 4: τ becomes 4, 4
    and 16 steps, off by +33.3 %, −20 % and +33.3 %."""
    res, q, _ = quantized
    shifts = res["bit_shifts"]
    assert [shifts[f"lif{k}"]["dash"] for k in (1, 2, 3)] == [2, 2, 4]
    for k, (tau, xylo) in enumerate(zip(TAUS_MS, (4, 4, 16), strict=True), 1):
        assert shifts[f"lif{k}"]["tau_steps_xylo"] == xylo
        assert shifts[f"lif{k}"]["tau_relative_error"] == pytest.approx(xylo / tau - 1)
    view = GraphView.of(q)
    assert view.decays == "xylo" and view.dt == 1.0
    assert [float(view.models[f"lif{k}"].leak.flat[0]) for k in (1, 2, 3)] == [0.25, 0.25, 1 / 16]
    assert [xylo_shift(1 / t) for t in (1.0, 1.4, 1.5, 2 ** 20)] == [0, 0, 1, 15]  # 0 ≤ dash ≤ 15 (Xylo's 4 bits)


def test_the_integer_runtime_decays_by_the_shift_as_by_hand(quantized) -> None:
    """lif3 (dash 4) from its input current, recomputed by hand: h = v − floor(v / 16) + x, spike iff h > θ, reset
    to 0; the graph runtime and the reference simulator give those spikes (bit-exact)."""
    _, q, x = quantized
    run = GraphSNN(q).run(torch.as_tensor(x))
    th = float(q.nodes["lif3"].v_threshold[0])
    cur = (run.outputs["fc3"]).numpy()
    v = np.zeros(cur.shape[1:])
    spikes = []
    for t in range(cur.shape[0]):
        h = v - np.floor(v / 16) + cur[t]
        s = h > th
        v = np.where(s, 0.0, h)
        spikes.append(s)
    assert np.array_equal(np.array(spikes), run.outputs["lif3"].numpy() > 0)
    assert 0 < run.outputs["lif3"].mean() < 0.9 and (cur < 0).any()  # negative membranes decay by the floor too
    sim = simulate(q, torch.as_tensor(x))
    for k in (1, 2, 3):
        assert torch.equal(sim.spikes[f"lif{k}"], run.outputs[f"lif{k}"].to(sim.spikes[f"lif{k}"].dtype))


def test_negative_membranes_shift_toward_minus_infinity() -> None:
    """The arithmetic shift floors: −5 >> 2 = −2, so −5 decays to −3 (not −4, as truncation toward zero would)."""
    from kdsnn.neuron_models import LIFModel

    m = LIFModel(tau=np.array([4.0]), r=np.array([4.0]), v_leak=np.zeros(1), threshold=np.array([100.0]),
                 v_reset=np.zeros(1), integer=True, decays="xylo")
    assert m.charge(np.zeros(3), np.array([-5.0, 5.0, 7.0])).tolist() == [-3.0, 4.0, 6.0]  # 7 − (7 >> 2) = 6


def test_lava_and_other_models_refuse_xylo_decays_in_one_line(quantized) -> None:
    from kdsnn.deploy.lava import lava_supports

    _, q, _ = quantized
    ok, why = lava_supports(q)
    assert not ok and "decays by Xylo's bit shift" in why and "\n" not in why
    li = _float_lif_graph()
    li.nodes["lif3"] = nir.LI(tau=np.full(3, 12e-3), r=np.full(3, 12.0), v_leak=np.zeros(3))
    set_meta(li, {"dt": 1e-3, "timesteps": 4})
    from kdsnn.deploy.norse_backend import norse_supports

    ok, why = norse_supports(q)
    assert not ok and "Xylo's bit-shift decays (integer mode) are not Norse's float ones" in why
    with pytest.raises(KdsnnError, match="LI node 'lif3': Xylo's bit-shift decays are stated for LIF"):
        quantize_graph(li, 8, True, calibration_max=2.0, decays="xylo")


def test_rockpool_chooses_the_same_shifts() -> None:
    """Rockpool 3.1's own rule (calc_bitshift_decay, in the vendor environment) picks kdsnn's dash for each τ."""
    from tests.vendor_env import run_probe

    taus = [1.0, 1.4, 1.5, 3.0, 5.0, 12.0, 100.0, 3000.0]
    got = run_probe("rockpool_dash_probe.py", 1.0, *taus, standin=False)
    assert got["dash"] == [xylo_shift(1 / t) for t in taus]
    assert got["keep"] == [1 - 2.0 ** -xylo_shift(1 / t) for t in taus]
    assert math.isclose(got["keep"][3], 0.75)


def _decay_rules(graph: nir.NIRGraph, target: str) -> dict[str, str]:
    from kdsnn.deploy.targets.mapping import map_graph

    return {v["node"]: v["message"] for v in map_graph(graph, target)["violations"] if v["rule"] == "decay"}


def test_map_names_decays_the_chip_cannot_hold(quantized, tmp_path) -> None:
    """``kdsnn map``: Xylo holds only bit-shift decays and floors; Loihi only 12-bit fractions. τ = 3, 5, 12 steps
    are no bit shift (nearest dash 2, 2, 4, as quantize picks); the Xylo-quantized graph fits Xylo's rule and
    not Loihi's; the same graph quantized for Loihi (1365/4096, ... rounded toward zero) does not fit Xylo's."""
    in_steps = _float_lif_graph()
    for k, tau in enumerate(TAUS_MS, 1):
        in_steps.nodes[f"lif{k}"].tau = np.full(in_steps.nodes[f"lif{k}"].tau.shape, tau)
    got = _decay_rules(in_steps, "xylo")
    assert set(got) == {"lif1", "lif2", "lif3"}
    assert "nearest is dash 2 (τ 3 → 4 steps)" in got["lif1"] and "dash 4 (τ 12 → 16 steps)" in got["lif3"]
    assert _decay_rules(in_steps, "loihi2") == {}  # a float graph: the integer rule asks to quantize first

    _, xylo_q, _ = quantized
    assert _decay_rules(xylo_q, "xylo") == {}
    assert set(_decay_rules(xylo_q, "loihi2")) == {"lif1", "lif2", "lif3"}

    nir_io.write(_float_lif_graph(), tmp_path / "f.nir")
    np.save(tmp_path / "x.npy", np.random.default_rng(4).uniform(0, 2, (8, 4)))
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["quantize", str(tmp_path / "f.nir"), "--dt", "1e-3", "--timesteps", "12", "--inputs",
                     str(tmp_path / "x.npy"), "--out", str(tmp_path / "loihi.nir")]) == 0
    loihi_q = nir_io.read(tmp_path / "loihi.nir")
    assert _decay_rules(loihi_q, "loihi2") == {}
    xylo_of_loihi = _decay_rules(loihi_q, "xylo")
    assert set(xylo_of_loihi) == {"lif1", "lif2", "lif3"}  # 1365/4096 etc.: no bit shift at all
    assert "not a bit-shift decay" in xylo_of_loihi["lif1"]

    powers = _float_lif_graph()  # τ = 4, 8, 16 ms: dt/τ are bit shifts, but Loihi's quantization rounds toward zero
    for k, tau in enumerate((4e-3, 8e-3, 16e-3), 1):
        powers.nodes[f"lif{k}"].tau = np.full(powers.nodes[f"lif{k}"].tau.shape, tau)
    nir_io.write(powers, tmp_path / "p.nir")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["quantize", str(tmp_path / "p.nir"), "--dt", "1e-3", "--timesteps", "12", "--inputs",
                     str(tmp_path / "x.npy"), "--out", str(tmp_path / "p_loihi.nir")]) == 0
    rounding = _decay_rules(nir_io.read(tmp_path / "p_loihi.nir"), "xylo")
    assert set(rounding) == {"lif1", "lif2", "lif3"} and "follows Loihi's rounding" in rounding["lif2"]
