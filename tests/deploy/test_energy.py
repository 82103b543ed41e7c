"""Energy profiles (data files with sources) and the energy report's arithmetic."""
from __future__ import annotations

import json

import pytest
import torch

from kdsnn.atomic import write_text
from kdsnn.deploy.energy import builtin_profiles, energy_report, load_profile
from kdsnn.errors import KdsnnError

STATS = {"synops": 1_000_000, "macs_effective": 20_000, "neuron_updates": 50_000, "active_neuron_updates": 30_000}


def test_builtin_profiles_cite_a_source_for_every_constant():
    assert set(builtin_profiles()) >= {"cmos45_fp32", "cmos45_int8", "loihi"}
    for name in builtin_profiles():
        p = load_profile(name)
        assert p.name == name and all(op.source.strip() for op in p.ops.values())
    fp = load_profile("cmos45_fp32").ops
    assert (fp["mac"].joules, fp["synop"].joules) == (4.6e-12, 0.9e-12)  # Horowitz: 3.7 + 0.9 pJ; 0.9 pJ
    i8 = load_profile("cmos45_int8").ops
    assert i8["synop"].joules == 0.03e-12 and i8["mac"].joules == pytest.approx(0.2e-12 + 0.03e-12)
    lo = load_profile("loihi").ops
    assert (lo["synop"].joules, lo["neuron_update_active"].joules, lo["neuron_update_inactive"].joules) == \
        (23.6e-12, 81e-12, 52e-12)


def test_energy_arithmetic_cmos_by_hand():
    r = energy_report(STATS, {"teacher": 10_000_000, "student_ann": 2_000_000}, "cmos45_fp32")
    # 1e6 SynOps × 0.9 pJ = 0.9 µJ; 2e4 MACs × 4.6 pJ = 92 nJ; 5e4 updates × 0.9 pJ = 45 nJ
    assert r["snn"]["synops"]["joules"] == pytest.approx(0.9e-6)
    assert r["snn"]["first_layer_macs"]["joules"] == pytest.approx(92e-9)
    assert r["snn"]["neuron_updates"]["joules"] == pytest.approx(45e-9)
    assert r["snn"]["total_joules"] == pytest.approx(1.037e-6)
    assert r["ann"]["teacher"]["joules"] == pytest.approx(46e-6)          # 1e7 × 4.6 pJ
    assert r["ann"]["student_ann"]["joules"] == pytest.approx(9.2e-6)
    assert r["ann"]["teacher"]["snn_saving"] == pytest.approx(46e-6 / 1.037e-6)
    assert r["unit"] == "J per inference" and "Horowitz" in r["sources"]["mac"]


def test_energy_arithmetic_loihi_splits_active_and_inactive_updates():
    r = energy_report(STATS, {"teacher": 10_000_000}, "loihi")
    s = r["snn"]
    # 1e6 × 23.6 pJ = 23.6 µJ; 2e4 host MACs × 4.6 pJ = 0.092 µJ; 3e4 active × 81 pJ = 2.43 µJ;
    # (5e4 − 3e4) inactive × 52 pJ = 1.04 µJ; total 27.162 µJ
    assert s["synops"]["joules"] == pytest.approx(23.6e-6)
    assert s["neuron_updates_active"]["count"] == 30_000 and s["neuron_updates_inactive"]["count"] == 20_000
    assert s["neuron_updates_active"]["joules"] == pytest.approx(2.43e-6)
    assert s["neuron_updates_inactive"]["joules"] == pytest.approx(1.04e-6)
    assert s["total_joules"] == pytest.approx(27.162e-6)
    assert r["ann"]["teacher"]["snn_saving"] == pytest.approx(46e-6 / 27.162e-6)


def test_report_from_a_simulation_uses_per_inference_counts():
    import nir
    import numpy as np

    from kdsnn.deploy.simulator import simulate
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                            "fc": nir.Linear(weight=np.ones((3, 2))),
                            "if": nir.IF(r=np.ones(3), v_threshold=np.full(3, 0.5), v_reset=np.zeros(3)),
                            "output": nir.Output(output_type={"output": np.array([3])})},
                     edges=[("input", "fc"), ("fc", "if"), ("if", "output")], type_check=False)
    x = torch.zeros(2, 4, 2)  # T = 2, B = 4; 6 input spikes in all
    x[0, :3, 0] = 1
    x[1, :3, 1] = 1
    res = simulate(g, x)
    # per inference: 6 spikes × 3 synapses / 4 samples = 4.5 SynOps; 3 neurons × 2 steps = 6 updates,
    # of which active: 3 samples × 2 steps × 3 neurons / 4 = 4.5
    r = energy_report(res, {}, "loihi")
    assert r["snn"]["synops"]["count"] == 4.5
    assert r["snn"]["neuron_updates_active"]["count"] == 4.5 and r["snn"]["neuron_updates_inactive"]["count"] == 1.5
    assert r["snn"]["total_joules"] == pytest.approx(4.5 * 23.6e-12 + 4.5 * 81e-12 + 1.5 * 52e-12)


def test_user_profiles_toml_and_json(tmp_path):
    toml = tmp_path / "chip.toml"
    write_text(toml, 'name = "chip"\n[ops.synop]\njoules = 2e-12\nsource = "datasheet p. 3"\n'
                     '[ops.mac]\njoules = 5e-12\nsource = "datasheet p. 4"\n'
                     '[ops.neuron_update]\njoules = 1e-12\nsource = "datasheet p. 5"\n')
    p = load_profile(toml)
    assert p.name == "chip" and p.ops["synop"].source == "datasheet p. 3"
    r = energy_report(STATS, {"teacher": 1000}, str(toml))
    assert r["snn"]["total_joules"] == pytest.approx(1e6 * 2e-12 + 2e4 * 5e-12 + 5e4 * 1e-12)
    js = tmp_path / "chip2.json"
    write_text(js, json.dumps({"ops": {k: {"joules": 1e-12, "source": "s"}
                                       for k in ("synop", "mac", "neuron_update")}}))
    assert load_profile(js).name == "chip2"


@pytest.mark.parametrize("content, message", [
    ("[ops.synop\njoules = 1", "not valid TOML"),
    ('[ops.synop]\njoules = 1e-12\n[ops.mac]\njoules = 1e-12\nsource = "x"\n'
     '[ops.neuron_update]\njoules = 0\nsource = "x"',
     "exactly 'joules' and 'source'"),
    ('[ops.synop]\njoules = -1.0\nsource = "x"', "finite number"),
    ('[ops.synapse]\njoules = 1.0\nsource = "x"', "unknown operation"),
    ('[ops.synop]\njoules = 1.0\nsource = "x"\n[ops.mac]\njoules = 1.0\nsource = "x"', "either ops.neuron_update"),
    ('[ops.synop]\njoules = 1.0\nsource = "  "', "must say where"),
    ('units = "pJ"', "unknown top-level key"),
])
def test_malformed_profiles_raise(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    write_text(path, content)
    with pytest.raises(KdsnnError, match=message):
        load_profile(path)


def test_unknown_profile_and_bad_counts_raise(tmp_path):
    with pytest.raises(KdsnnError, match="unknown energy profile 'truenorth'.*loihi"):
        load_profile("truenorth")
    with pytest.raises(KdsnnError, match="does not exist"):
        load_profile(tmp_path / "missing.toml")
    with pytest.raises(KdsnnError, match="lack 'neuron_updates'"):
        energy_report({"synops": 1, "macs_effective": 1}, {}, "cmos45_fp32")
    with pytest.raises(KdsnnError, match="active neuron updates"):
        energy_report({**STATS, "active_neuron_updates": 60_000}, {}, "loihi")
    with pytest.raises(KdsnnError, match="ANN MAC count"):
        energy_report(STATS, {"teacher": -5}, "cmos45_fp32")


# --- leaky neurons: decays on top of the IF update ------------------------------------------------------

def test_builtin_profiles_price_a_decay_with_its_source():
    fp, i8, lo = (load_profile(n).ops["decay"] for n in ("cmos45_fp32", "cmos45_int8", "loihi"))
    assert fp.joules == pytest.approx(3.7e-12 + 0.9e-12) and "Horowitz" in fp.source     # fp32 mult + add
    assert i8.joules == pytest.approx(3.1e-12 + 0.1e-12) and "Horowitz" in i8.source     # int32 mult + add
    assert lo.joules == 0 and "Davies" in lo.source and "in hardware" in lo.source       # inside the update


def test_energy_adds_decays_by_hand():
    stats = {**STATS, "leaky_neuron_updates": 20_000, "decays": 40_000}
    fp = energy_report(stats, {}, "cmos45_fp32")["snn"]
    # 1.037 µJ as above + 4e4 decays × 4.6 pJ = 184 nJ
    assert fp["decays"]["count"] == 40_000 and fp["decays"]["joules"] == pytest.approx(184e-9)
    assert fp["total_joules"] == pytest.approx(1.221e-6)
    # int8: 1e6 × 0.03 pJ = 30 nJ; 2e4 × 0.23 pJ = 4.6 nJ; 5e4 × 0.1 pJ = 5 nJ; 4e4 × 3.2 pJ = 128 nJ
    assert energy_report(stats, {}, "cmos45_int8")["snn"]["total_joules"] == pytest.approx(167.6e-9)
    lo = energy_report(stats, {}, "loihi")["snn"]
    assert lo["decays"]["joules"] == 0 and lo["total_joules"] == pytest.approx(27.162e-6)
    assert "decays" not in energy_report(STATS, {}, "cmos45_fp32")["snn"]   # an IF graph: no line


def test_a_profile_without_decay_refuses_leaky_counts(tmp_path):
    path = tmp_path / "chip.toml"
    write_text(path, 'name = "chip"\n[ops.synop]\njoules = 2e-12\nsource = "a"\n[ops.mac]\njoules = 5e-12\n'
                     'source = "b"\n[ops.neuron_update]\njoules = 1e-12\nsource = "c"\n')
    assert energy_report({**STATS, "decays": 0}, {}, str(path))["snn"]["total_joules"] > 0
    with pytest.raises(KdsnnError, match=r"chip does not price a leaky neuron's decay \(ops.decay\).*7 decays"):
        energy_report({**STATS, "decays": 7}, {}, str(path))


def _leaky_mix(readout: str = "LI"):
    """fc → LIF(5; τ = 8, 8, ∞, 1, 2) → fc → CubaLIF(3; τ_syn = 1, 2, 2; τ_mem = 4) → fc → IF(3) → fc
    → LI(2) or I(2)."""
    import nir
    import numpy as np

    from kdsnn.export.graph import set_meta

    tau = np.array([8.0, 8.0, np.inf, 1.0, 2.0])
    fc = lambda o, i: nir.Affine(weight=np.ones((o, i)), bias=np.zeros(o))  # noqa: E731
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}), "fc1": fc(5, 4),
             "lif": nir.LIF(tau=tau, r=np.where(np.isinf(tau), 1.0, tau), v_leak=np.zeros(5), v_threshold=np.ones(5),
                            v_reset=np.zeros(5)),
             "fc2": fc(3, 5),
             "cuba": nir.CubaLIF(tau_syn=np.array([1.0, 2.0, 2.0]), tau_mem=np.full(3, 4.0), r=np.full(3, 4.0),
                                 v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3),
                                 w_in=np.array([1.0, 2.0, 2.0])),
             "fc3": fc(3, 3), "if": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)), "fc4": fc(2, 3),
             "ro": nir.LI(tau=np.full(2, 4.0), r=np.full(2, 4.0), v_leak=np.zeros(2)) if readout == "LI" else
             nir.I(r=np.ones(2)),
             "output": nir.Output(output_type={"output": np.array([2])})}
    chain = list(nodes)
    g = nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:], strict=True)), type_check=False)
    set_meta(g, {"producer": "kdsnn", "timesteps": 4, "encoding": "direct", "integer": False, "readout": "membrane"})
    return g


def test_leaky_counts_by_hand():
    from kdsnn.deploy.synops import leaky_counts

    # per step: LIF decays where 0 < dt/τ < 1: τ = 8, 8, 2 (∞: no leak; 1: nothing kept) → 3 neurons, 3 decays;
    # CubaLIF: current decays where τ_syn = 2 (2 neurons), membrane everywhere (3) → 3 neurons, 5 decays;
    # IF: none; LI: 2 neurons, 2 decays. T = 4: 8 leaky neurons × 4 = 32 updates, 10 decays × 4 = 40
    assert leaky_counts(_leaky_mix(), 4) == {"leaky_neuron_updates": 32.0, "decays": 40.0}
    assert leaky_counts(_leaky_mix("I"), 4) == {"leaky_neuron_updates": 24.0, "decays": 32.0}   # an Integrator: none


def test_graph_report_counts_and_prices_leaky_updates(tmp_path):
    from kdsnn.deploy.report.graph import build_graph_report

    x = torch.ones(2, 4)
    rep = build_graph_report(_leaky_mix(), "mix", tmp_path, x, None, "ones", profiles=["cmos45_fp32", "loihi"])
    per = rep["per_inference"]
    # 13 neurons × 4 steps = 52 updates, 32 of them leaky, 40 decays (above)
    assert (per["neuron_updates"], per["leaky_neuron_updates"], per["decays"]) == (52.0, 32.0, 40.0)
    fp = rep["energy"][0]["snn"]
    assert fp["neuron_updates"]["joules"] == pytest.approx(52 * 0.9e-12)
    assert fp["decays"]["joules"] == pytest.approx(40 * 4.6e-12)
    assert rep["energy"][1]["snn"]["decays"]["joules"] == 0
