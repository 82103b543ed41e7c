"""Hardware targets: Speck layer memory, Loihi placement, every rule by node, energy and latency by hand.

Every expected number is worked out in the test from the published formula or from the
counters, with the arithmetic written out.
"""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from kdsnn.cli import main
from kdsnn.deploy.targets.mapping import map_graph, place, target_compatibility
from kdsnn.deploy.targets.rules import common_rules, speck_memory
from kdsnn.deploy.targets.spec import builtin_targets, load_target
from kdsnn.deploy.targets.view import encode_input, mapping_plan
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import set_meta
from kdsnn.export.graph_view import GraphView

INT_META = {"integer": True, "timesteps": 2, "encoding": "bernoulli", "reset": "hard", "readout": "spike"}


# ----------------------------------------------------------------------------- helpers

def _if(shape, theta=1.0) -> nir.IF:
    shape = tuple(np.atleast_1d(shape))
    return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, float(theta)), v_reset=np.zeros(shape))


def _conv(cin, cout, k, in_hw, stride=1, pad=0, w=1.0) -> nir.Conv2d:
    kh, kw = (k, k) if isinstance(k, int) else k
    return nir.Conv2d(input_shape=in_hw, weight=np.full((cout, cin, kh, kw), w), stride=stride, padding=pad,
                      dilation=1, groups=1, bias=np.zeros(cout))


def _out_hw(in_hw, k, stride=1, pad=0):
    return tuple((s + 2 * pad - k) // stride + 1 for s in in_hw)


def _graph(input_shape, chain: list[tuple[str, nir.NIRNode]], meta=None, extra_edges=()) -> nir.NIRGraph:
    """Input → chain (in order) → Output; ``extra_edges`` add branches."""
    nodes = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    edges, prev = [], "input"
    for name, node in chain:
        nodes[name] = node
        edges.append((prev, name))
        prev = name
    last = nodes[prev]
    out = (np.shape(last.v_threshold) if isinstance(last, nir.IF)
           else np.shape(getattr(last, "weight", np.ones((1, 1))))[:1])
    nodes["output"] = nir.Output(output_type={"output": np.array(out)})
    edges.append((prev, "output"))
    g = nir.NIRGraph(nodes=nodes, edges=edges + list(extra_edges), type_check=False)
    set_meta(g, dict(INT_META if meta is None else meta))
    return g


def _target(tmp_path, text: str, name="t.toml"):
    p = tmp_path / name
    p.write_text(text)
    return load_target(str(p))


def _entries(**kw) -> str:
    out = []
    for key, v in kw.items():
        section, k = key.split("__")
        val = json.dumps(v) if not isinstance(v, bool) else str(v).lower()
        out.append(f"[{section}.{k}]\nvalue = {val}\nsource = \"test\"\n")
    return "\n".join(out)


def _speck_net(c2=16, k2=5) -> nir.NIRGraph:
    """2×16×16 events → conv 2→8 3×3 pad 1 → IF → 2×2 sum pool → conv 8→c2 k2×k2 → IF → flatten → fc → IF."""
    h2 = _out_hw((8, 8), k2)
    return _graph((2, 16, 16), [
        ("conv1", _conv(2, 8, 3, (16, 16), pad=1)), ("if1", _if((8, 16, 16))),
        ("pool1", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))),
        ("conv2", _conv(8, c2, k2, (8, 8))), ("if2", _if((c2, *h2))),
        ("flat", nir.Flatten(input_type={"input": np.array([c2, *h2])}, start_dim=0, end_dim=-1)),
        ("fc", nir.Affine(weight=np.ones((10, c2 * h2[0] * h2[1])), bias=np.zeros(10))), ("if3", _if(10))])


# ----------------------------------------------------------------------------- target files

def test_builtin_targets_load_and_every_entry_has_a_source():
    assert {"loihi2", "speck", "xylo"} <= set(builtin_targets())
    for name in builtin_targets():
        t = load_target(name)
        for section, entries in t.entries.items():
            for key, e in entries.items():
                assert e.source.strip(), f"{name}: {section}.{key} has no source"


@pytest.mark.parametrize("text, says", [
    ('name="x"\nkind="cores"\nbogus=1', "unknown top-level key"),
    ('name="x"\nkind="spiky"', "'kind' must be one of"),
    ('name="x"\nkind="cores"\n[limits.neurons_per_core]\nvalue = 3', "must be a table with 'source'"),
    ('name="x"\nkind="cores"\n[limits.neurons_per_core]\nsource = "?"', "mark it 'status = \"assumed\"'"),
    ('name="x"\nkind="cores"\n[limits.neuron_per_core]\nvalue = 3\nsource = "?"',
     "unknown key(s) limits.neuron_per_core"),
    ('name="x"\nkind="cores"\n[limits.neurons_per_core]\nvalue = "many"\nsource = "?"', "must be a integer"),
    ('name="x"\nkind="cores"\n[time.cycles_per_synop]\nvalue = 3\nsource = "?"', "needs time.clock_hz"),
    ('name = [', "not valid TOML"),
])
def test_bad_target_files_are_one_line_errors(tmp_path, text, says):
    with pytest.raises(KdsnnError) as exc:
        _target(tmp_path, text)
    assert says in str(exc.value) and "\n" not in str(exc.value)


def test_cycles_become_seconds_with_the_clock(tmp_path):
    t = _target(tmp_path, 'name="c"\nkind="dense"\n' + _entries(time__clock_hz=50e6, time__cycles_per_synop=7))
    assert t.get("time", "synop_seconds") == pytest.approx(7 / 50e6)  # 140 ns


# ----------------------------------------------------------------------------- Speck memory

@pytest.mark.parametrize("c, f, k, out_hw, kernel, neuron", [
    # SynSense's own example (docs/speck/overview.md): 16→32, 3×3, 64×64 output: 16·2^(4+5) = 8 Ki, 32·2^(6+6) = 128 Ki
    (16, 32, (3, 3), (64, 64), 16 * 2 ** (4 + 5), 32 * 2 ** (6 + 6)),
    # 2→8, 3×3 (⌈log2 9⌉ = 4, log2 8 = 3), 16×16 output: 2·2^7 = 256; 8·2^(4+4) = 2048
    (2, 8, (3, 3), (16, 16), 256, 2048),
    # 3→10, 5×5 (⌈log2 25⌉ = 5, ⌈log2 10⌉ = 4), 13×13 output (⌈log2 13⌉ = 4): 3·2^9 = 1536; 10·2^8 = 2560
    (3, 10, (5, 5), (13, 13), 1536, 2560),
    # 1×1 kernel, 1 output channel, 1×1 output: c·2^0 = 64; 1·2^0 = 1
    (64, 1, (1, 1), (1, 1), 64, 1),
])
def test_speck_memory_from_the_published_formula(c, f, k, out_hw, kernel, neuron):
    m = speck_memory(c, f, k, out_hw)
    assert (m["kernel_memory"], m["neuron_memory"], m["bias_memory"]) == (kernel, neuron, f)


def test_speck_network_layers_by_hand():
    r = map_graph(_speck_net(), "speck")
    assert r["fits"], r["violations"]
    mem = {c["segments"][0][0]: c["memory"] for c in r["placement"]["cores"]}
    # conv1: c 2, f 8, 3×3, 16×16 out → 2·2^(4+3) = 256 kernel, 8·2^(4+4) = 2048 neuron
    assert (mem["if1"]["kernel"], mem["if1"]["neuron"]) == (256, 2048)
    # conv2 on the pooled 8×8 map: c 8, f 16, 5×5 → 4×4 out: 8·2^(5+4) = 4096, 16·2^(2+2) = 256
    assert (mem["if2"]["kernel"], mem["if2"]["neuron"]) == (4096, 256)
    # fc on the 16×4×4 map = a 4×4 conv, c 16, f 10: 16·2^(4+4) = 4096; neuron 10·2^0 = 10
    assert (mem["if3"]["kernel"], mem["if3"]["neuron"]) == (4096, 10)
    assert r["placement"]["cores_used"] == 3 and all(c["label"].startswith("layer ") for c in r["placement"]["cores"])


# ----------------------------------------------------------------------------- Loihi placement

LOIHI_SMALL = ('name = "tiny"\nkind = "cores"\n' + _entries(
    limits__neurons_per_core=4, limits__synaptic_memory_bits_per_core=160, limits__synapse_bits=8,
    limits__fan_in_axons_per_core=100, limits__fan_out_axons_per_core=100, limits__cores_per_chip=4))


def _dense_net() -> nir.NIRGraph:
    """6 inputs → fc1 (10) → IF → fc2 (3) → IF → Output; dense: every neuron has fan-in 6, then 10."""
    return _graph((6,), [("fc1", nir.Affine(weight=np.ones((10, 6)), bias=np.zeros(10))), ("if1", _if(10)),
                         ("fc2", nir.Affine(weight=np.ones((3, 10)), bias=np.zeros(3))), ("if2", _if(3))])


def test_loihi_style_placement_by_hand(tmp_path):
    t = _target(tmp_path, LOIHI_SMALL)
    p = place(mapping_plan(_dense_net()), t)
    got = [(c.segments[0], c.neurons, c.synapses, c.fan_in_axons) for c in p.cores]
    # memory 160 bits / 8 bits = 20 synapses per core binds before the 4-neuron limit:
    # if1 (fan-in 6): 3 neurons = 18 synapses, a 4th would make 24 > 20 → slices 3, 3, 3, 1
    # if2 (fan-in 10): 2 neurons = 20 synapses fit exactly, a 3rd would make 30 → slices 2, 1
    assert got == [(("if1", 0, 3), 3, 18, 6), (("if1", 3, 6), 3, 18, 6), (("if1", 6, 9), 3, 18, 6),
                   (("if1", 9, 10), 1, 6, 6), (("if2", 0, 2), 2, 20, 10), (("if2", 2, 3), 1, 10, 10)]
    assert [c.chip for c in p.cores] == [0, 0, 0, 0, 1, 1] and p.chips == 2  # 4 cores per chip
    r = map_graph(_dense_net(), t)
    # fan-out axons: every if1 neuron reaches both if2 cores → 3·2, 3·2, 3·2, 1·2
    assert [c["fan_out_axons"] for c in r["placement"]["cores"]] == [6, 6, 6, 2, 0, 0]
    assert r["fits"]


def test_loihi_neuron_limit_binds_and_single_neuron_over_memory_is_named(tmp_path):
    roomy = _target(tmp_path, LOIHI_SMALL.replace("value = 160", "value = 8000"))
    assert [c.neurons for c in place(mapping_plan(_dense_net()), roomy).cores] == [4, 4, 2, 3]
    tight = _target(tmp_path, LOIHI_SMALL.replace("value = 160", "value = 72"), "tight.toml")  # 9 synapses
    r = map_graph(_dense_net(), tight)
    bad = [v for v in r["violations"] if v["rule"] == "fan_in"]
    assert [v["node"] for v in bad] == ["if2"] and "needs 10 stored weights" in bad[0]["message"]


# ----------------------------------------------------------------------------- every rule names its node

def _rules(graph, target, **kw):
    return {(v["node"], v["rule"]) for v in map_graph(graph, target, **kw)["violations"]}


def test_shared_rules_name_the_node():
    net = _dense_net()
    direct = _graph((6,), [("fc1", nir.Affine(weight=np.ones((10, 6)), bias=np.zeros(10))), ("if1", _if(10))],
                    meta={**INT_META, "encoding": "direct"})
    assert ("input", "analog_input") in _rules(direct, "speck")
    assert ("graph", "integer") in _rules(_graph((6,), [("fc1", nir.Affine(weight=np.ones((3, 6)), bias=np.zeros(3))),
                                                        ("if1", _if(3))],
                                                 meta={**INT_META, "integer": False}), "loihi2")
    heavy = _graph((6,), [("fc1", nir.Affine(weight=np.full((3, 6), 200.0), bias=np.full(3, 10000.0))),
                          ("if1", _if(3, 40000))])
    assert {("fc1", "weight_range"), ("if1", "threshold_range")} <= _rules(heavy, "speck")  # 200 > 127; 40000 > 32767
    assert ("fc1", "bias_range") in _rules(heavy, "loihi2")  # 10000 > 4095 (13-bit signed bias mantissa)
    soft = _graph((6,), [("fc1", nir.Affine(weight=np.ones((3, 6)), bias=np.zeros(3))), ("if1", _if(3))],
                  meta={**INT_META, "reset": "soft"})
    assert ("if1", "reset") in _rules(soft, "loihi2")
    assert ("if1", "reset") in _rules(net, "xylo")  # Xylo resets by subtraction only
    lif = _graph((6,), [("fc1", nir.Affine(weight=np.ones((2, 6)), bias=np.zeros(2))),  # Loihi's integer LIF
                        ("lif1", nir.LIF(tau=np.full(2, 8.0), r=np.full(2, 8.0), v_leak=np.zeros(2),
                                         v_threshold=np.ones(2), v_reset=np.zeros(2)))])
    assert ("lif1", "neuron_model") in {(v.node, v.rule) for v in common_rules(GraphView.of(lif), load_target("speck"))}
    over = common_rules(GraphView.of(net), load_target("speck"), max_membrane={"if1": 40000.0})
    assert ("if1", "state_bits") in {(v.node, v.rule) for v in over}  # 40000 ≥ 2^15


def test_loihi_weights_are_a_mantissa_times_a_shared_exponent():
    """Loihi holds m·2^e (|m| ≤ 127, one e ≤ 7 per layer): 256 = 64·4 and −128 = −32·4 fit, 255 (odd) does not;
    Speck, whose file states no exponent, still holds [−128, 127] only."""
    def net(w):
        return _graph((2,), [("fc1", nir.Affine(weight=np.array([w, w], dtype=np.float64), bias=np.zeros(2))),
                             ("if1", _if(2, 300))])
    assert ("fc1", "weight_range") not in _rules(net([256.0, -128.0]), "loihi2")
    assert ("fc1", "weight_range") in _rules(net([255.0, 2.0]), "loihi2")
    assert ("fc1", "weight_range") in _rules(net([127.0 * 256, 0.0]), "loihi2")  # e = 8 > 7
    assert ("fc1", "weight_range") in _rules(net([256.0, -128.0]), "speck")


def test_speck_rules_name_the_node():
    def one(conv, in_shape, pool=None):
        chain = [("pool", pool)] if pool is not None else []
        c = conv.weight.shape[0]
        ih, iw = in_shape[1:] if pool is None else (in_shape[1] // 3, in_shape[2] // 3)
        s, p = int(np.atleast_1d(conv.stride)[0]), int(np.atleast_1d(conv.padding)[0])
        hw = (_out_hw((ih,), conv.weight.shape[2], s, p)[0], _out_hw((iw,), conv.weight.shape[3], s, p)[0])
        return _graph(in_shape, [*chain, ("conv", conv), ("if", _if((c, *hw)))])

    assert ("conv", "kernel") in _rules(one(_conv(1, 1, (3, 5), (8, 8)), (1, 8, 8)), "speck")  # not square
    assert ("conv", "kernel") in _rules(one(_conv(1, 1, 17, (20, 20)), (1, 20, 20)), "speck")  # 17 > 16
    assert ("conv", "stride") in _rules(one(_conv(1, 1, 3, (9, 9), stride=3), (1, 9, 9)), "speck")  # 3 ∉ {1,2,4,8}
    assert ("conv", "padding") in _rules(one(_conv(1, 1, 3, (4, 4), pad=8), (1, 4, 4)), "speck")  # 8 > 7
    assert ("conv", "channels") in _rules(one(_conv(1025, 1, 1, (2, 2)), (1025, 2, 2)), "speck")  # 1025 > 1024
    assert ("conv", "input_size") in _rules(one(_conv(1, 1, 3, (130, 130), stride=4), (1, 130, 130)), "speck")
    assert ("conv", "output_size") in _rules(one(_conv(1, 1, 1, (65, 65)), (1, 65, 65)), "speck")  # 65 > 64
    pool3 = nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([3, 3]), padding=np.array([0, 0]))
    assert ("pool", "pooling") in _rules(one(_conv(1, 1, 1, (3, 3)), (1, 9, 9), pool3), "speck")  # 3 ∉ {1,2,4}
    big = _graph((64, 4, 4), [("conv", _conv(64, 128, 3, (4, 4), pad=1)), ("if", _if((128, 4, 4)))])
    assert ("if", "layer_memory") in _rules(big, "speck")  # 64·2^(4+7) = 131072 > 65536 (largest layer)
    readout = _graph((4,), [("fc1", nir.Affine(weight=np.ones((3, 4)), bias=np.zeros(3))), ("if1", _if(3)),
                            ("fc2", nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)))])
    assert ("fc2", "readout") in _rules(readout, "speck")
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "fa": nir.Affine(weight=np.ones((4, 4)), bias=np.zeros(4)), "src": _if(4),
             **{f"f{i}": nir.Affine(weight=np.ones((2, 4)), bias=np.zeros(2)) for i in range(3)},
             **{f"n{i}": _if(2) for i in range(3)}, "sum": nir.Affine(weight=np.ones((1, 2)), bias=np.zeros(1)),
             "skip": nir.Affine(weight=np.ones((1, 2)), bias=np.zeros(1)), "last": _if(1),
             "output": nir.Output(output_type={"output": np.array([1])})}
    edges = [("input", "fa"), ("fa", "src"), *[("src", f"f{i}") for i in range(3)],
             *[(f"f{i}", f"n{i}") for i in range(3)],
             ("n0", "sum"), ("n1", "skip"), ("sum", "last"), ("skip", "last"), ("last", "output")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    set_meta(g, INT_META)
    got = _rules(g, "speck")
    assert ("src", "fan_out") in got and ("last", "residual") in got  # src feeds 3 layers; last sums 2 inputs
    deep = _graph((4,), [x for i in range(10)
                         for x in ((f"fc{i}", nir.Affine(weight=np.ones((4, 4)), bias=np.zeros(4))),
                                   (f"if{i}", _if(4)))])
    assert ("graph", "layers") in _rules(deep, "speck")  # 10 layers > 9


def test_speck_second_conv_memory_fits_when_small():
    # c2 = 128, k 3: conv2 kernel memory 8·2^(⌈log2 9⌉ + log2 128) = 8·2^11 = 16384 — fits a 16 Ki layer,
    # but then fc on 128×6×6 becomes a 6×6 conv: 128·2^(⌈log2 36⌉ + ⌈log2 10⌉) = 128·2^(6+4) = 131072 > 65536
    r = map_graph(_speck_net(c2=128, k2=3), "speck")
    mem = {c["segments"][0][0]: c["memory"] for c in r["placement"]["cores"]}
    assert mem["if2"]["kernel"] == 16384 and mem["if3"]["kernel"] == 131072
    assert {v["node"] for v in r["violations"] if v["rule"] == "layer_memory"} == {"if3"}


def test_xylo_rules_name_the_node():
    wide = _graph((20,), [("fc1", nir.Affine(weight=np.ones((1001, 20)), bias=np.zeros(1001))), ("if1", _if(1001)),
                          ("fc2", nir.Affine(weight=np.ones((9, 1001)), bias=np.zeros(9))), ("if2", _if(9))],
                  meta={**INT_META, "reset": "soft"})
    got = _rules(wide, "xylo")
    # 20 > 16, 1001 > 1000, 9 > 8
    assert {("input", "input_channels"), ("if1", "hidden_neurons"), ("if2", "output_neurons")} <= got
    assert not any(rule == "reset" for _, rule in got)  # soft reset is Xylo's
    two = _graph((16,), [("fc1", nir.Affine(weight=np.ones((600, 16)), bias=np.zeros(600))), ("if1", _if(600)),
                         ("fc2", nir.Affine(weight=np.ones((600, 600)), bias=np.zeros(600))), ("if2", _if(600)),
                         ("fc3", nir.Affine(weight=np.ones((8, 600)), bias=np.zeros(8))), ("if3", _if(8))],
                 meta={**INT_META, "reset": "soft"})
    # 600 + 600 = 1,200 hidden neurons > 1,000: a total over two layers is the graph's, not if1's
    assert ("graph", "hidden_neurons") in _rules(two, "xylo")
    single = _graph((4,), [("fc1", nir.Affine(weight=np.ones((2, 4)), bias=np.zeros(2))), ("if1", _if(2))],
                    meta={**INT_META, "reset": "soft"})
    assert ("graph", "neuron_layers") in _rules(single, "xylo")  # one neuron layer < 2


def test_loihi_fan_out_axons_split_the_source_and_name_it(tmp_path):
    def with_fan_out(limit):
        return _target(tmp_path, LOIHI_SMALL.replace("[limits.fan_out_axons_per_core]\nvalue = 100",
                                                     f"[limits.fan_out_axons_per_core]\nvalue = {limit}"),
                       f"fo{limit}.toml")

    # if2 is placed first (2 cores); every if1 neuron then reaches 2 cores, so at most 5 axons per core allows
    # 2 neurons (2·2 = 4; a 3rd makes 6 > 5), tighter than the memory's 3: if1 splits into 5 cores of 2
    r = map_graph(_dense_net(), with_fan_out(5))
    if1 = [c for c in r["placement"]["cores"] if c["segments"][0][0] == "if1"]
    assert [tuple(c["segments"][0][1:]) for c in if1] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert [c["fan_out_axons"] for c in if1] == [4] * 5 and r["fits"]
    bad = [v for v in map_graph(_dense_net(), with_fan_out(1))["violations"] if v["rule"] == "fan_out"]
    assert {v["node"] for v in bad} == {"if1"} and "reaches 2 cores" in bad[0]["message"]  # 2 > 1 for one neuron


# ----------------------------------------------------------------------------- energy and latency by hand

TIMED = ('name = "timed"\nkind = "cores"\n' + _entries(
    limits__neurons_per_core=1, energy__synop_joules=10e-12, energy__neuron_update_active_joules=100e-12,
    energy__neuron_update_inactive_joules=50e-12, energy__spike_message_joules=1e-12, time__synop_seconds=1e-9,
    time__neuron_update_active_seconds=2e-9, time__neuron_update_inactive_seconds=1e-9,
    time__spike_message_seconds=0.5e-9, time__barrier_seconds=10e-9))


def test_energy_and_latency_of_a_small_run_by_hand(tmp_path):
    """2 spike inputs → fc1 [[2, 1], [1, 0]] → IF (θ 1) → fc2 [[1, 1]] → Output (membrane readout), T = 2.

    Input spikes: t0 [1, 0], t1 [1, 1].
    t0: n0 gets 2 → v 2 > 1 spikes; n1 gets 1 → v 1, silent.   t1: n0 gets 2 + 1 = 3 → spikes; n1: 1 + 1 = 2 → spikes.
    IF spikes: n0 2, n1 1. SynOps: fc1 3 input spikes × 2 targets = 6 (3 per neuron); fc2 3 spikes × 1 = 3.
    One neuron per core: core 0 = n0, core 1 = n1, core 2 = the readout.
    Active updates: n0, n1 reached at t0 and t1 → 2 each; readout reached at t0 (n0) and t1 → 2. Updates 2 per core.
    Messages: host 3 input spikes × 2 cores = 6; core 0: 2 spikes × 1 core = 2; core 1: 1.
    """
    g = _graph((2,), [("fc1", nir.Affine(weight=np.array([[2.0, 1.0], [1.0, 0.0]]), bias=np.zeros(2))), ("if1", _if(2)),
                      ("fc2", nir.Affine(weight=np.array([[1.0, 1.0]]), bias=np.zeros(1)))],
               meta={**INT_META, "readout": "membrane"})
    x = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])  # [T, B, n]
    r = map_graph(g, _target(tmp_path, TIMED), x=x)
    cores = r["placement"]["cores"]
    assert [c["per_step"]["synops"] * 2 for c in cores] == [3, 3, 3]
    assert [c["per_step"]["spikes"] * 2 for c in cores] == [2, 1, 0]
    assert [c["per_step"]["active_updates"] * 2 for c in cores] == [2, 2, 2]
    assert [c["per_step"]["messages"] * 2 for c in cores] == [2, 1, 0] and r["load"]["host_messages"] == 6
    # energy: 9 SynOps × 10 pJ + 6 active × 100 pJ + 0 inactive + (3 + 6) messages × 1 pJ = 90 + 600 + 9 = 699 pJ
    assert r["energy"]["joules"] == pytest.approx(699e-12)
    # per core per step: core 0 (3·1 + 2·2 + 2·0.5) ns / 2 = 4 ns; core 1 (3 + 4 + 0.5) / 2 = 3.75;
    # core 2 (3 + 4) / 2 = 3.5
    assert r["latency"]["per_core_step_seconds"] == pytest.approx([4e-9, 3.75e-9, 3.5e-9])
    assert r["latency"]["step_seconds"] == pytest.approx(14e-9) and r["latency"]["busiest_core"] == 0  # 4 + 10 barrier
    assert r["latency"]["inference_seconds"] == pytest.approx(28e-9)
    # the student as an ANN: fc1 4 + fc2 2 = 6 MACs × 4.6 pJ (45 nm fp32) = 27.6 pJ: the SNN costs 699 / 27.6 = 25× more
    assert r["ann"]["macs"] == 6 and r["ann"]["cmos45_fp32"]["joules"] == pytest.approx(27.6e-12)
    assert "SNN 699 pJ" in r["sentence"] and "25× more energy" in r["sentence"]


def test_per_neuron_recount_matches_the_simulator_on_a_student():
    from kdsnn import data
    from kdsnn.deploy.simulator import simulate
    from kdsnn.export.graph import student_to_graph
    from kdsnn.export.quantize import quantize_graph
    from tests.helpers import calibrated_student

    g = quantize_graph(student_to_graph(calibrated_student("snn_2conv"), data.spec("digits").preprocessing()))
    x, _ = data.sample_batch("digits", 4)
    plan = mapping_plan(g)
    sim = simulate(plan, x)
    r = map_graph(g, "loihi2", x=x, sim=sim, plan=plan)
    per = sim.per_sample()
    assert r["load"]["synops"] == pytest.approx(per["synops"])  # Σ over cores = the simulator's SynOps
    assert r["load"]["host_macs"] == pytest.approx(per["macs_effective"])  # analog conv1 runs on the host
    assert r["load"]["notes"] == []  # per-neuron active updates agree with the simulator's totals
    assert target_compatibility(plan.view, "loihi2", sim) == [
        "the analog first layer runs on the host, not on loihi2 (its MACs are priced as host MACs)"]
    assert any("θ + 1" in s for s in target_compatibility(g, "speck"))


def test_soft_reset_graphs_are_mapped_with_their_reset():
    """A kdsnn graph trained with --reset soft is simulated (load and energy), with reset by subtraction:
    3 neurons, current 4 per step (input spike × weight 4), θ = 5, T = 4: v = 4, 8 → spike → 3, 7 → spike
    → 2, 6 → spike → 1: 3 spikes each, 9 per inference (reset to 0 would give 4, 8 → 0, 4, 8: 2 each)."""
    g = _graph((3,), [("fc1", nir.Affine(weight=4 * np.eye(3), bias=np.zeros(3))), ("if1", _if(3, 5))],
               meta={**INT_META, "timesteps": 4, "reset": "soft"})
    r = map_graph(g, "speck", x=torch.ones(4, 1, 3))
    assert r["load"] is not None and r["load"]["spikes"] == 9.0 and "note" not in r
    assert ("if1", "reset") not in {(v["node"], v["rule"]) for v in r["violations"]}  # Speck subtracts too
    assert ("if1", "reset") in _rules(g, "loihi2")  # Loihi 2 resets to 0


def test_a_subtract_reset_file_of_another_tool_is_mapped_as_it_resets():
    """Sinabs 3.1.3 wrote this MLP under nir 1.0.4, whose IF subtracts θ (the file records no kdsnn reset):
    mapping reads the reset from the graph view, and the load counts the spikes Sinabs itself emitted."""
    from kdsnn.export import nir_io
    from tests.helpers import FIXTURES

    peers = FIXTURES / "peers"
    g = nir_io.read(peers / "sinabs_mlp_iaf_subtract.nir")
    z = np.load(peers / "sinabs_mlp_iaf_subtract.npz")
    r = map_graph(g, "xylo", x=torch.as_tensor(z["input"]))
    batch = z["input"].shape[1]
    assert r["load"]["spikes"] == pytest.approx((z["spikes_1"].sum() + z["spikes_3"].sum()) / batch)
    assert ("1", "reset") not in {(v["node"], v["rule"]) for v in r["violations"]}  # Xylo subtracts
    loihi = {(v["node"], v["rule"]): v["message"] for v in map_graph(g, "loihi2")["violations"]}
    assert "resets subtract" in loihi[("1", "reset")]


# ----------------------------------------------------------------------------- command line

def test_map_command_on_a_nir_file(tmp_path, capsys):
    from kdsnn.export import nir_io

    path = nir_io.write(_dense_net(), tmp_path / "net.nir")
    status = main(["map", str(path), "--target", "loihi2", "--target", "xylo", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [t["target"] for t in out["targets"]] == ["loihi2", "xylo"]
    assert out["targets"][0]["fits"] and out["targets"][0]["placement"]["cores_used"] == 2  # 10 and 3 neurons ≤ 8192
    assert status == (0 if out["fits"] else 1) and out["fits"] == all(t["fits"] for t in out["targets"])
    assert main(["map", str(path), "--target", "loihi2"]) == 0  # every target asked for fits
    assert main(["map", str(path), "--target", "speck"]) in (0, 1)
    assert "speck: " in capsys.readouterr().out
    assert main(["map", str(path), "--target", "nosuchchip"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdsnn: error: unknown target 'nosuchchip'") and "\n" not in err


# ----------------------------------------------------------------------------- report section

def test_report_section_inlines_a_load_plot_per_target(tmp_path):
    from kdsnn.deploy.report.targets import energy_line, map_targets, targets_html

    g = _dense_net()
    x = (torch.rand(2, 3, 6) < 0.5).float()  # [T, B, 6] spikes
    results, images = map_targets(g, g, x, tmp_path, ["loihi2", "speck"])
    assert [r["target"] for r in results] == ["loihi2", "speck"] and set(images) == {"loihi2", "speck"}
    page = targets_html(results, images)
    assert page.count("data:image/png;base64,") == 2 and "src=\"cores_" not in page  # inlined, one file
    assert "loihi2: fits" in page and "Is the checked integer graph the one this target runs?" in page
    # 2.8 µJ against 5.6 µJ: 5.6 / 2.8 = 2.0× less; 1 nJ against 0.5 nJ: 2.0× more
    assert (energy_line(2.8e-6, 5.6e-6, "the student as an ANN")
            == "SNN 2.8 µJ, the student as an ANN 5.6 µJ: 2.0× less energy")
    assert energy_line(1e-9, 0.5e-9, "the ANN").endswith("500 pJ: 2.0× more energy")


def test_small_spiking_student_fits_speck_with_its_memory_by_hand():
    """snn_2conv at width 0.25, Bernoulli input, spike readout: conv1 1→16 (8×8), pool, conv2 16→32 (4×4), pool,
    fc 10."""
    from kdsnn import data
    from kdsnn.deploy.simulator import simulate
    from kdsnn.export.graph import student_to_graph
    from kdsnn.export.quantize import quantize_graph
    from tests.helpers import calibrated_student

    s = calibrated_student("snn_2conv", readout="spike", encoding="bernoulli", width=0.25)
    g = quantize_graph(student_to_graph(s, data.spec("digits").preprocessing()))
    plan = mapping_plan(g)
    x = encode_input(plan.view, data.sample_batch("digits", 4)[0])
    sim = simulate(plan, x)
    r = map_graph(g, "speck", x=x, sim=sim, plan=plan)
    # kdsnn's 8-bit quantization scales weights to ±127 per layer; the biases then overflow Speck's 8 bits
    # (Sinabs discretizes them to −128..127), and the fix is Sinabs' own per-layer factor (--for speck)
    assert {v["rule"] for v in r["violations"]} == {"bias_range"}
    assert all("--for speck" in v["message"] for v in r["violations"])
    mem = [(c["memory"]["kernel"], c["memory"]["neuron"]) for c in r["placement"]["cores"]]
    # conv1: 1·2^(⌈log2 9⌉ + log2 16) = 256, 16·2^(3+3) = 1024; conv2: 16·2^(4+5) = 8192, 32·2^(2+2) = 512;
    # fc on the pooled 32×2×2 map = a 2×2 conv: 32·2^(2+⌈log2 10⌉) = 2048, 10·2^0 = 10
    assert mem == [(256, 1024), (8192, 512), (2048, 10)]
    assert r["load"]["notes"] == [] and r["load"]["synops"] == pytest.approx(sim.per_sample()["synops"])


def test_report_section_is_kdsnn_map_on_the_same_inputs(tmp_path, capsys):
    """The report's targets section and ``kdsnn map`` are one computation (issue 17): on the same inputs they give
    the same cores, energy, latency and broken rules, and the report maps whatever map maps (no limit of its own)."""
    from kdsnn.deploy.report import targets as target_report
    from kdsnn.export import nir_io

    g = _dense_net()
    x = (torch.rand(3, 5, 6) < 0.5).float()  # [T, B, 6] spikes
    results, _ = target_report.map_targets(g, g, x, tmp_path, ["loihi2", "xylo"])
    path = nir_io.write(g, tmp_path / "net.nir")
    np.save(tmp_path / "x.npy", x.numpy())
    status = main(["map", str(path), "--inputs", str(tmp_path / "x.npy"), "--target", "loihi2", "--target", "xylo",
                   "--json"])
    mapped = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == (0 if mapped["fits"] else 1) and mapped["samples"] == 5
    for r, m in zip(results, mapped["targets"], strict=True):
        assert r["load"]["samples"] == m["load"]["samples"] == 5
        assert r["placement"]["cores_used"] == m["placement"]["cores_used"]
        assert r["energy"]["joules"] == m["energy"]["joules"] and r["latency"] == m["latency"]
        assert r["violations"] == m["violations"]


# ----------------------------------------------------------------------------- Loihi 2: shared conv weights

def test_loihi_conv_stores_its_kernels_once_per_channel_as_lavas_conv_process():
    """The demo's conv2 shape: 64 → 128 channels, 3×3, padding 1, on an 8×8 map: 8192 neurons (one core's 8192),
    73,728 shared weights (128·64·9) on one core; stored per synapse it would be 8192·576 = 4,718,592 weights,
    over five cores' 937,500."""
    g = _graph((1, 8, 8), [("conv1", _conv(1, 64, 3, (8, 8), pad=1)), ("if1", _if((64, 8, 8))),
                           ("conv", _conv(64, 128, 3, (8, 8), pad=1)), ("if", _if((128, 8, 8)))])
    r = map_graph(g, "loihi2")
    assert r["fits"], r["violations"]
    cores = [c for c in r["placement"]["cores"] if c["segments"][0][0] == "if"]
    assert len(cores) == 1 and cores[0]["neurons"] == 8192 and cores[0]["weights"] == 128 * 64 * 9
    # structural synapses (borders included): per (out, in) channel pair 4 corners × 4 + 24 edge × 6 + 36 inner × 9 taps
    assert cores[0]["synapses"] == 128 * 64 * (4 * 4 + 24 * 6 + 36 * 9) and cores[0]["fan_in_axons"] == 64 * 8 * 8
    # Lava's process-graph route builds this connection as one Conv process holding exactly those weights
    # (run spike-exact in tests/deploy/lava/test_graph.py::test_sequential_graph_through_the_process_graph_route)
    from kdsnn.deploy.lava.plan import lava_graph_plan

    plan = lava_graph_plan(g)
    (conn,) = [c for c in plan.connections if c.synapse.kind == "conv"]
    assert conn.synapse.weight.size == cores[0]["weights"]


def test_loihi_conv_split_across_cores_stores_each_channels_kernels_where_they_are_used(tmp_path):
    """8 channels of 4×4 outputs (16 neurons each) from 2 input channels, 3×3: 18 weights per channel. Cores of
    20 neurons: core 0 holds neurons 0..19 = channel 0 and 4 neurons of channel 1: 2·18 = 36 weights."""
    t = _target(tmp_path, LOIHI_SMALL.replace("value = 160", "value = 100000").replace(
        "[limits.neurons_per_core]\nvalue = 4", "[limits.neurons_per_core]\nvalue = 20"))
    g = _graph((2, 4, 4), [("conv", _conv(2, 8, 3, (4, 4), pad=1)), ("if", _if((8, 4, 4)))])
    cores = map_graph(g, t)["placement"]["cores"]
    assert [c["neurons"] for c in cores] == [20, 20, 20, 20, 20, 20, 8]
    # channel runs: [0..19] ch 0,1; [20..39] ch 1,2; [40..59] ch 2,3; [60..79] ch 3,4; ... each core two channels
    assert [c["weights"] for c in cores] == [36, 36, 36, 36, 36, 36, 18]
