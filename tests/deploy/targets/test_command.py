"""``kdsnn map``: in batches, the per-core load, energy and latency of N inputs counted a batch at a time
equal those counted on all N at once (core_load.combine weighs each batch's means by its size); on a
residual student, every target lists each limit as published, derived (with how) or assumed, as its file says."""
import json

import numpy as np
import pytest

from kdsnn.cli import main
from kdsnn.deploy import batched
from kdsnn.export import nir_io
from kdsnn.export.graph import student_to_graph
from kdsnn.export.quantize import quantize_graph
from tests.helpers import calibrated_student


def _map(argv, capsys, status: int = 0) -> dict:
    assert main(argv) == status
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _close(a, b, path="") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _close(u, v, f"{path}[{i}]")
    elif isinstance(a, float):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(a)), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_map_in_batches_equals_one_batch(tmp_path, digits_preprocessing, capsys, monkeypatch):
    graph = quantize_graph(student_to_graph(calibrated_student("snn_2conv", width=0.25), digits_preprocessing,
                                            extra={"dataset": "digits"}), bits=8)
    path = nir_io.write(graph, tmp_path / "s.nir")
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.random.default_rng(0).normal(0, 1, (10, 1, 8, 8)).astype(np.float32))
    argv = ["map", str(path), "--inputs", str(inputs), "--target", "loihi2", "--target", "speck", "--json"]
    whole = _map(argv, capsys, status=1)  # speck does not fit: exit status 1
    assert whole["samples"] == 10 and whole["inputs"] == str(inputs)
    monkeypatch.setattr(batched, "WORKING_SET", 1)  # one input per batch: ten batches
    _close(_map(argv, capsys, status=1), whole)
    assert whole["targets"][0]["load"]["samples"] == 10


def _statuses(target: str) -> dict[str, dict]:
    """Each entry of a built-in target file by how it is known, read from the TOML itself: ``status``, or the
    older ``published = false`` (assumed); ``published`` when neither is given."""
    import tomllib
    from importlib import resources

    raw = tomllib.loads((resources.files("kdsnn.deploy") / "targets" / f"{target}.toml").read_text())
    out: dict[str, dict] = {"published": set(), "derived": {}, "assumed": set()}
    for section in ("neuron", "precision", "limits", "energy", "time"):
        for key, entry in raw.get(section, {}).items():
            status = entry.get("status", "published" if entry.get("published", True) else "assumed")
            if status == "derived":
                out["derived"][f"{section}.{key}"] = entry["derivation"]
            else:
                out[status].add(f"{section}.{key}")
    return out


def test_map_of_a_residual_student_lists_how_every_limit_is_known(tmp_path, digits_preprocessing, capsys):
    graph = quantize_graph(student_to_graph(calibrated_student("snn_resnet14", width=0.25), digits_preprocessing,
                                            extra={"dataset": "digits"}), bits=8)
    path = str(nir_io.write(graph, tmp_path / "r14.nir"))
    targets = ["--target", "loihi2", "--target", "speck", "--target", "xylo"]
    # with inputs, so Xylo's cycle model and input-event rule read them (map once failed there with a traceback)
    result = _map(["map", path, *targets, "--samples", "2", "--json"], capsys, status=1)  # speck: analog input
    by_target = {r["target"]: r for r in result["targets"]}
    assert set(by_target) == {"loihi2", "speck", "xylo"} and result["samples"] == 2
    # a feed-forward graph's readout into the Output is not recurrence (it was once flagged as such for Xylo)
    assert not [v for v in by_target["xylo"]["violations"] if v["rule"] == "recurrent_output"]
    for name, r in by_target.items():
        want = _statuses(name)
        prov = r["provenance"]
        assert set(prov["published"]) == want["published"], name
        assert set(prov["assumed"]) == want["assumed"], name
        assert prov["derived"] == want["derived"], name
        assert r["latency"] is not None
    # the derived Loihi 2 limits say how they were derived; Xylo's latency comes from Rockpool's cycle model
    assert "limits.neurons_per_core" in by_target["loihi2"]["provenance"]["derived"]
    assert "limits.synapses_per_core" in by_target["loihi2"]["provenance"]["derived"]
    assert "limits.fan_in_axons_per_core" in by_target["loihi2"]["provenance"]["assumed"]
    assert by_target["xylo"]["latency"]["model"].startswith("Rockpool's cycle model")
    # the residual sums are what Speck cannot run, each named
    speck_rules = {(v["node"], v["rule"]) for v in by_target["speck"]["violations"]}
    sums = [n for n, node in graph.nodes.items() if type(node).__name__ == "IF"
            and len([s for s, d in graph.edges if d == n]) > 1]
    assert sums and all(any(node == s for node, _ in speck_rules) for s in sums)
    # the text lists the same per target: one "published:" line, a "derived:" line per derived limit, one "assumed"
    assert main(["map", path, *targets, "--samples", "2"]) == 1  # speck and xylo do not fit
    text = capsys.readouterr().out
    blocks = text.split("\n\n")[1:4]  # the verdict lines first, then one block of details per target
    assert [b.split(":")[0] for b in blocks] == ["loihi2", "speck", "xylo"]
    for block, name in zip(blocks, ("loihi2", "speck", "xylo"), strict=True):
        want = _statuses(name)
        lines = block.splitlines()
        published = [ln for ln in lines if ln.startswith("  published: ")]
        assert len(published) == 1 and set(published[0][13:].split(", ")) == want["published"]
        derived = [ln for ln in lines if ln.startswith("  derived: ")]
        assert derived == [f"  derived: {k} = {v}" for k, v in want["derived"].items()]
        assumed = [ln for ln in lines if ln.startswith("  assumed (not published by the vendor): ")]
        assert len(assumed) == 1 and set(assumed[0].split(": ", 1)[1].split(", ")) == want["assumed"]


def test_graded_input_prices_the_first_layer_on_loihi2(tmp_path, digits_preprocessing, capsys):
    graph = quantize_graph(student_to_graph(calibrated_student("snn_2conv", width=0.25), digits_preprocessing,
                                            extra={"dataset": "digits"}), bits=8)
    path = str(nir_io.write(graph, tmp_path / "s.nir"))
    argv = ["map", path, "--target", "loihi2", "--target", "speck", "--samples", "4", "--json"]
    host = {r["target"]: r for r in _map(argv, capsys, status=1)["targets"]}  # speck takes no analog input
    graded = {r["target"]: r for r in _map([*argv, "--graded-input"], capsys, status=1)["targets"]}
    h, g = host["loihi2"], graded["loihi2"]
    macs = h["load"]["host_macs"]
    assert macs > 0 and g["load"]["host_macs"] == 0
    assert g["load"]["host_messages"] == h["load"]["host_messages"]  # one message per nonzero input value, both ways
    # the first layer's effective MACs become SynOps of the cores holding if1, nothing else changes
    first = [k for k, c in enumerate(g["placement"]["cores"]) if c["segments"][0][0] == "if1"]
    syn_h = sum(c["per_step"]["synops"] for c in h["placement"]["cores"]) * 4
    syn_g = sum(c["per_step"]["synops"] for c in g["placement"]["cores"]) * 4
    assert syn_g - syn_h == pytest.approx(macs)
    assert sum(g["placement"]["cores"][k]["per_step"]["synops"] for k in first) * 4 == pytest.approx(macs)
    # energy: those MACs priced at the chip's SynOp instead of the host's MAC (figures read from the target file)
    from kdsnn.deploy.targets import load_target

    t = load_target("loihi2")
    delta = macs * (t.get("energy", "synop_joules") - t.get("energy", "host_mac_joules"))
    assert g["energy"]["joules"] - h["energy"]["joules"] == pytest.approx(delta, rel=1e-9)
    assert "host_macs" not in g["energy"]["lines"] or g["energy"]["lines"]["host_macs"]["count"] == 0
    # digits: integers 0..16 after the input step 1/16, 5 bits; the option says so and is published (Lava's code)
    assert any("graded spikes (num_message_bits = 5" in n for n in g["compatibility"])
    assert not any("runs on the host" in n for n in g["compatibility"])
    assert "neuron.analog_input" in g["provenance"]["published"]
    # Speck has no host layer to move: unchanged
    assert graded["speck"]["violations"] == host["speck"]["violations"]


def _student_nir(tmp_path, digits_preprocessing):
    graph = quantize_graph(student_to_graph(calibrated_student("snn_2conv", width=0.25), digits_preprocessing,
                                            extra={"dataset": "digits"}), bits=8)
    path = nir_io.write(graph, tmp_path / "s.nir")
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.random.default_rng(0).normal(0, 1, (6, 1, 8, 8)).astype(np.float32))
    return str(path), str(inputs)


def test_map_exit_status_says_whether_every_target_fits(tmp_path, digits_preprocessing, capsys):
    """0: every target asked for fits; 1: one does not (the small student fits Loihi 2; Speck takes no analog
    input); 2: bad input. The terminal answer: verdicts first, each problem once, a closing line."""
    model, inputs = _student_nir(tmp_path, digits_preprocessing)
    assert main(["map", model, "--inputs", inputs, "--target", "loihi2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("loihi2: fits: ") and "(6 samples)" in out.splitlines()[0]
    assert out.strip().splitlines()[-1] == "loihi2 fits"

    assert main(["map", model, "--inputs", inputs, "--target", "loihi2", "--target", "speck"]) == 1
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].startswith("loihi2: fits") and lines[1].startswith("speck: does NOT fit")
    assert "; if it fit: " in lines[1] and "if it fit" not in lines[0]  # an unfit chip's figures say so
    assert "what it would cost if it fit" in out[out.index("\n\nspeck: "):]
    assert lines[2].startswith("    first problem: input: direct-encoded analog input")
    assert lines[-1] == "1 of 2 targets fit (loihi2); speck does not"
    details = out[out.index("\n\nspeck: "):]
    for v in _map(["map", model, "--inputs", inputs, "--target", "speck", "--json"], capsys, status=1)["targets"][0][
            "violations"]:
        assert details.count(v["message"]) == 1, v["message"]  # once, not again as a compatibility note
    assert "chip 0: " not in out and "(per-core detail: --cores)" in out

    assert main(["map", model, "--inputs", inputs, "--target", "loihi2", "--cores"]) == 0
    assert "core 0 chip 0: " in capsys.readouterr().out

    assert main(["map", model, "--inputs", inputs, "--target", "nosuchchip"]) == 2


def test_map_json_states_the_sample_count_and_the_overall_verdict(tmp_path, digits_preprocessing, capsys):
    model, inputs = _student_nir(tmp_path, digits_preprocessing)
    res = _map(["map", model, "--inputs", inputs, "--json"], capsys, status=1)
    assert [t["target"] for t in res["targets"]] == ["loihi2", "speck", "xylo"]  # every built-in by default
    assert res["samples"] == 6 and res["fits"] is False
    assert all(t["load"]["samples"] == 6 for t in res["targets"])
