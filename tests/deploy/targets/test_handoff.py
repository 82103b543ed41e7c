"""``kdsnn export --for speck|xylo|loihi2``, proved by the vendors' own code.

Speck: the file is read by Sinabs 3.1.3 (nir 1.0.4) in its own environment, becomes a
``DynapcnnNetwork``; Sinabs' layer-to-core mapping, memory, per-layer configuration and forward
spikes equal what ``kdsnn map --target speck`` and kdsnn's Speck lowering say. Xylo: the file goes
through Rockpool 3.1.0's ``from_nir``, Xylo mapper, quantizer and cycle model with the same
verdicts, matrices, counts and cycles as kdsnn's. The vendors run in .venv-vendors/synsense
(tests/vendor_env); a samna stand-in records which calls need the real samna.
"""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from kdsnn.cli import main
from kdsnn.deploy.targets import speck, xylo
from kdsnn.deploy.targets.handoff import agreement
from kdsnn.deploy.targets.mapping import map_graph
from kdsnn.deploy.targets.nir104 import write_nir104
from kdsnn.deploy.targets.view import mapping_plan
from kdsnn.export import nir_io
from kdsnn.export.graph import set_meta
from kdsnn.export.graph_view import GraphView
from kdsnn.export.runtime import GraphSNN
from kdsnn.trainer import TrainConfig, train
from tests.vendor_env import run_probe


def _student(tmp_path_factory, name: str, **kw) -> str:
    out = tmp_path_factory.mktemp(name)
    cfg = dict(arch="snn_2conv", kd="none", epochs=1, timesteps=4, batch_size=32, out=str(out), quiet=True,
               encoding="bernoulli", readout="spike", reset="soft")
    return train(TrainConfig(**{**cfg, **kw}), "student")["checkpoint"]


@pytest.fixture(scope="module")
def speck_student(tmp_path_factory) -> str:
    """snn_2conv at width 0.25 on digits: conv 1→16 (8×8), pool, conv 16→32, pool, fc 10; soft reset, events."""
    return _student(tmp_path_factory, "speck", width=0.25)


@pytest.fixture(scope="module")
def xylo_student(tmp_path_factory) -> str:
    """A Xylo-shaped student: 16 inputs (1×4×4), conv 1→8, pool, conv 8→16, pool, fc 8 = 128 + 64 hidden, 8 out."""
    return _student(tmp_path_factory, "xylo", width=0.125, dataset="fake:1x4x4:8")


def _export(capsys, ckpt: str, chip: str, out) -> dict:
    code = main(["export", "--checkpoint", ckpt, "--for", chip, "--out", str(out), "--json"])
    text = capsys.readouterr().out
    assert code == 0, text
    return json.loads(text.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- Speck

def test_speck_file_runs_in_sinabs_as_kdsnn_maps_and_predicts_it(speck_student, tmp_path, capsys):
    result = _export(capsys, speck_student, "speck", tmp_path / "speck.nir")
    graph = nir_io.read(tmp_path / "speck.nir")  # kdsnn reads nir 1.0.4's IF as reset by subtraction
    assert GraphView.of(graph).reset == "soft" and result["map"]["fits"], result["map"]["violations"]
    net = speck.lower(GraphView.of(graph))
    assert [lay.scale for lay in net.layers] == [1.0, 1.0, 1.0]  # the file holds a fixed point of Sinabs' rule
    from kdsnn import data
    snn = GraphSNN(graph)
    torch.manual_seed(0)
    events = snn.prepare_input(data.sample_batch("digits", 6)[0])  # [T, B, 1, 8, 8] Bernoulli events
    np.save(tmp_path / "events.npy", events.numpy())
    sinabs = run_probe("sinabs_probe.py", tmp_path / "speck.nir", tmp_path / "events.npy", tmp_path / "sinabs.npz")

    # Sinabs read the nir 1.0.4 file: IF without v_reset, as IAF with MultiSpike and subtraction
    assert sinabs["file_version"] == "1.0.4" and sinabs["nir"] == "1.0.4" and "v_reset" not in sinabs["if_fields"]
    assert {(n["spike_fn"], n["reset_fn"]) for n in sinabs["neurons"]} == {("MultiSpike", "MembraneSubtract")}
    # mapping and memory: Sinabs' max-flow assignment and memory summary = kdsnn map --target speck --json
    code = main(["map", str(tmp_path / "speck.nir"), "--target", "speck", "--json"])
    mapped = json.loads(capsys.readouterr().out)["targets"][0]
    assert code == 0 and mapped["fits"]
    cores = mapped["placement"]["cores"]
    assert [f"layer {sinabs['mapping'][str(i)]}" for i in range(len(cores))] == [c["label"] for c in cores]
    for i, c in enumerate(cores):
        assert (sinabs["memory"]["kernel"][str(i)], sinabs["memory"]["neuron"][str(i)],
                sinabs["memory"]["bias"][str(i)]) == (c["memory"]["kernel"], c["memory"]["neuron"], c["memory"]["bias"])
    # each layer's chip configuration (samna's weight layout is [f, c, kx, ky]): kdsnn's integers, untouched
    for i, lay in enumerate(net.layers):
        cfg = sinabs["configs"][str(i)]
        assert np.array_equal(np.array(cfg["weights"]), lay.weight.transpose(0, 1, 3, 2))
        assert cfg["biases"] == lay.bias.astype(int).tolist()
        assert (cfg["threshold_high"], cfg["threshold_low"]) == (lay.threshold, -lay.threshold)
        assert cfg["return_to_zero"] is False
        dest = [(d["layer"], d["pooling"]) for d in cfg["destinations"]]
        assert dest == [(sinabs["mapping"][str(i + 1)], net.layers[i + 1].sources[lay.population])] \
            if i + 1 < len(net.layers) else dest == []
    # Sinabs' forward = kdsnn's Speck lowering run, spike for spike, at every layer
    theirs = np.load(tmp_path / "sinabs.npz")
    ours = speck.run(net, events)
    for i, lay in enumerate(net.layers):
        got = ours[lay.population].numpy().reshape(theirs[str(i)].shape)
        assert np.array_equal(got, theirs[str(i)]), lay.population
    assert sum(float(theirs[k].sum()) for k in theirs.files) > 100  # a realistic amount of spikes
    # what the export reports about kdsnn's own IF is the difference measured against Sinabs' spikes
    kd = snn.run(events).outputs
    sinabs_spikes = {lay.population: torch.as_tensor(theirs[str(i)]) for i, lay in enumerate(net.layers)}
    want = agreement({p: kd[p] for p in sinabs_spikes}, sinabs_spikes)
    assert result["check"]["kdsnn_vs_speck"]["layers"].keys() == want["layers"].keys()
    # building the chip configuration object is where samna is needed
    assert "SpeckConfiguration() needs the real samna" in sinabs["samna_calls"]["DynapcnnNetwork.make_config"]


def test_speck_refuses_a_student_the_file_cannot_state(tmp_path_factory, tmp_path, capsys):
    hard = _student(tmp_path_factory, "hard", width=0.25, reset="hard", epochs=1)
    code = main(["export", "--checkpoint", hard, "--for", "speck", "--out", str(tmp_path / "x.nir")])
    _, err = capsys.readouterr()
    assert code == 2 and "--reset soft" in err and "nir 1.0.4" in err and len(err.strip().splitlines()) == 1
    direct = _student(tmp_path_factory, "direct", width=0.25, encoding="direct")
    code = main(["export", "--checkpoint", direct, "--for", "speck", "--out", str(tmp_path / "y.nir")])
    _, err = capsys.readouterr()
    assert code == 2 and "--encoding bernoulli" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.nir").exists() and not (tmp_path / "y.nir").exists()


def test_speck_core_mapping_is_sinabs_maxflow_by_hand():
    """Three layers; chip layers 0..2 take kernel memory 10, 20, 30. Layer a needs 15 (fits 1, 2), b 5 (fits 0, 1,
    2), c 25 (fits 2). Breadth-first augmenting paths in Sinabs' order: a → 1, b → 0, c → 2."""
    def lay(name, kernel):
        out = speck.Layer(name, name, {}, (1, 1, 1), (1, 1, 1), (1, 1), (1, 1), (0, 0), np.zeros((1, 1, 1, 1)),
                          np.zeros(1), 1.0)
        out.memory = {"kernel_memory": kernel, "neuron_memory": 1, "bias_memory": 1}
        return out

    layers = [lay("a", 15), lay("b", 5), lay("c", 25)]
    assert speck.core_mapping(layers, [10, 20, 30], [9, 9, 9], [9, 9, 9]) == {"a": 1, "b": 0, "c": 2}
    # c needs 35: no chip layer holds it, the other two are still placed
    layers[2].memory["kernel_memory"] = 35
    assert speck.core_mapping(layers, [10, 20, 30], [9, 9, 9], [9, 9, 9]) == {"a": 1, "b": 0}


def test_sinabs_discretization_rule_by_hand():
    # positive extreme 0.5 on 8 bits: 127 / 0.5 = 254; negative extreme −0.5 (|−0.5| ≤ 0.5·128/127): still 254
    assert speck.discretization_scale(np.array([-0.5, 0.5]), 8) == pytest.approx(254)
    # negative extreme −1 beyond 0.5·128/127: 128 / 1 = 128
    assert speck.discretization_scale(np.array([-1.0, 0.5]), 8) == pytest.approx(128)
    # a layer: weights up to 0.5 (254), bias up to 2 (63.5), θ = 1 on 16 bits (32767): the bias binds, s = 63.5
    layer = speck.Layer("p", "s", {}, (1, 1, 1), (1, 1, 1), (1, 1), (1, 1), (0, 0), np.array([[[[0.5]]], [[[-0.25]]]]),
                        np.array([2.0, -1.0]), 1.0)
    speck.discretize(layer)
    assert layer.scale == pytest.approx(63.5)
    assert layer.weight.ravel().tolist() == [32.0, -16.0] and layer.bias.tolist() == [127.0, -64.0]
    assert layer.threshold == 64.0  # round(63.5) = 64 (half to even)


# ----------------------------------------------------------------------------- Xylo

def test_xylo_file_goes_through_rockpools_mapper_with_kdsnns_counts(xylo_student, tmp_path, capsys):
    result = _export(capsys, xylo_student, "xylo", tmp_path / "xylo.nir")
    counts = result["counts"]
    assert (counts["input_channels"], counts["hidden_neurons"], counts["output_neurons"]) == (16, 8 * 16 + 16 * 4, 8)
    chk = result["check"]
    rock = run_probe("rockpool_probe.py", tmp_path / "xylo.nir", chk["input_activity"], chk["hidden_activity"])
    assert rock["drc"] == "passed" and rock["drc_warnings"] == []
    spec = rock["spec"]
    w_in, w_rec = np.array(spec["weights_in"])[:, :, 0], np.array(spec["weights_rec"])[:, :, 0]
    w_out = np.array(spec["weights_out"])
    assert list(w_in.shape) == [16, counts["hidden_neurons"]] and list(w_out.shape) == [counts["hidden_neurons"], 8]
    assert (np.count_nonzero(w_in), np.count_nonzero(w_rec), np.count_nonzero(w_out)) == \
        (counts["synapses_in"], counts["synapses_rec"], counts["synapses_out"])
    fan = np.count_nonzero(w_rec, axis=1) + np.count_nonzero(w_out, axis=1)
    assert int(fan.max()) == counts["max_fan_out"] <= 64
    assert set(spec["dash_mem"]) == {xylo.DASH_MEM} and set(spec["dash_syn"]) == {xylo.DASH_SYN}
    # Rockpool's global quantization keeps kdsnn's integers (they already reach ±127): the same matrices
    from kdsnn.export.student import load_student_graphs
    g = load_student_graphs(xylo_student, soft_reset_ok=True).int_graph
    plan = mapping_plan(g)
    net = xylo.lower(plan.view, plan)
    assert np.array_equal(w_in, net.w_in.toarray()) and np.array_equal(w_rec, net.w_rec.toarray())
    assert np.array_equal(w_out, net.w_out.toarray())
    assert spec["threshold"] == net.threshold.tolist() and spec["threshold_out"] == net.threshold_out.tolist()
    # Rockpool's cycle model on the quantized configuration = kdsnn's, at the same activity
    assert rock["cycles"] == pytest.approx(chk["cycles_per_step"], rel=1e-12)
    # kdsnn map's verdict and counts come from the same lowering
    r = map_graph(g, "xylo")
    assert r["fits"], r["violations"]
    assert [c["neurons"] for c in r["placement"]["cores"]] == [counts["hidden_neurons"], 8]
    assert [c["synapses"] for c in r["placement"]["cores"]] == [counts["synapses_in"] + counts["synapses_rec"],
                                                               counts["synapses_out"]]
    assert rock["config_from_specification"].endswith("XyloConfiguration() needs the real samna")


def _dense(n_in: int, n_hid: int, n_out: int, seed: int = 0) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    w1, w2 = rng.integers(-127, 128, (n_hid, n_in)).astype(float), rng.integers(-127, 128, (n_out, n_hid)).astype(float)

    def neurons(n):
        return nir.IF(r=np.ones(n), v_threshold=np.full(n, 200.0), v_reset=np.zeros(n))

    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n_in])}),
                            "fc1": nir.Affine(weight=w1, bias=np.zeros(n_hid)), "if1": neurons(n_hid),
                            "fc2": nir.Affine(weight=w2, bias=np.zeros(n_out)), "if2": neurons(n_out),
                            "output": nir.Output(output_type={"output": np.array([n_out])})},
                     edges=[("input", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "if2"), ("if2", "output")],
                     type_check=False)
    set_meta(g, {"integer": True, "timesteps": 2, "encoding": "bernoulli", "reset": "soft", "readout": "spike"})
    return g


@pytest.mark.parametrize("shape, kdsnn_rule, rockpool_says", [
    ((16, 20, 9), "output_neurons", "Failed to allocate HW resources for output neurons"),  # 9 > 8 outputs
    ((16, 1001, 4), "hidden_neurons", "Failed to allocate HW resources for hidden neurons"),  # 1001 > 1000
])
def test_xylo_verdicts_equal_rockpools(tmp_path, shape, kdsnn_rule, rockpool_says):
    g = _dense(*shape)
    r = map_graph(g, "xylo")
    assert not r["fits"] and kdsnn_rule in {v["rule"] for v in r["violations"]}
    plan = mapping_plan(g)
    write_nir104(xylo.to_nir(xylo.lower(plan.view, plan)), tmp_path / "x.nir")
    rock = run_probe("rockpool_probe.py", tmp_path / "x.nir", 0.5, 0.5)
    assert rock["drc"].startswith("DRCError") and rockpool_says in rock["drc"]


def test_xylo_fan_out_over_64_is_named(tmp_path):
    g = _dense(16, 100, 8)  # every hidden neuron reaches all 8 outputs: fine; 100 hidden fully connected: fine
    assert map_graph(g, "xylo")["fits"]
    r = map_graph(_dense(16, 200, 8), "xylo")
    assert r["fits"]  # 200 hidden, each reaching 8 outputs
    wide = _dense(16, 70, 8)
    # hidden → hidden: a second hidden layer of 70 makes every first-layer neuron reach 70 > 64 neurons
    nodes = dict(wide.nodes)
    nodes["fc1b"] = nir.Affine(weight=np.ones((70, 70)), bias=np.zeros(70))
    nodes["if1b"] = nir.IF(r=np.ones(70), v_threshold=np.full(70, 200.0), v_reset=np.zeros(70))
    edges = [e for e in wide.edges if e != ("if1", "fc2")] + [("if1", "fc1b"), ("fc1b", "if1b"), ("if1b", "fc2")]
    g2 = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    set_meta(g2, {"integer": True, "timesteps": 2, "encoding": "bernoulli", "reset": "soft", "readout": "spike"})
    bad = [v for v in map_graph(g2, "xylo")["violations"] if v["rule"] == "fan_out"]
    assert [v["node"] for v in bad] == ["if1"] and "reaches 70 neurons" in bad[0]["message"]


def test_a_recurrent_hidden_layer_reaches_rockpools_mapper_as_w_rec(tmp_path):
    """Xylo's hidden layer is recurrent by design: a hidden population that feeds itself (NIR cycle through
    if1) is lowered with its feedback in W_rec[source, target], and Rockpool's mapper takes the file."""
    g = _dense(16, 20, 8)
    w = np.random.default_rng(3).integers(-127, 128, (20, 20)).astype(float)
    rec = nir.NIRGraph(nodes={**g.nodes, "rec": nir.Linear(weight=w)},
                       edges=[*g.edges, ("if1", "rec"), ("rec", "if1")], type_check=False)
    rec.metadata = dict(g.metadata)
    r = map_graph(rec, "xylo")
    assert r["fits"], r["violations"]
    plan = mapping_plan(rec)
    net = xylo.lower(plan.view, plan)
    assert np.array_equal(net.w_rec.toarray(), w.T)  # weight[target, source] → W_rec[source, target]
    write_nir104(xylo.to_nir(net), tmp_path / "r.nir")
    rock = run_probe("rockpool_probe.py", tmp_path / "r.nir", 0.5, 0.5)
    assert rock["drc"] == "passed", rock["drc"]
    assert np.array_equal(np.array(rock["spec"]["weights_rec"])[:, :, 0], w.T)
