"""Recurrent graphs other tools exported (tests/fixtures/peers/snntorch_r*, README beside them): snnTorch's
RLeaky reproduced spike for spike through ``simulate --inputs --save`` on both backends; RSynaptic, whose
delayed reset NIR's CubaLIF cannot state, read per spec (checked against the file's equations written out
here in numpy, a second method)."""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from kdsnn.cli import main
from kdsnn.export import nir_io
from tests.helpers import FIXTURES

PEERS = FIXTURES / "peers"


def _fixture(name: str) -> tuple[dict[str, np.ndarray], dict]:
    z = np.load(PEERS / f"{name}.npz")
    return {k: z[k] for k in z.files if k != "meta"}, json.loads(str(z["meta"]))


@pytest.mark.parametrize("backend", ["simulator", "pytorch"])
@pytest.mark.parametrize("name", ["snntorch_rleaky_all", "snntorch_rleaky_one"])
def test_simulate_save_reproduces_rleaky(name: str, backend: str, tmp_path, capsys) -> None:
    arrays, meta = _fixture(name)
    np.save(tmp_path / "x.npy", arrays["input"])
    rc = main(["simulate", str(PEERS / f"{name}.nir"), "--dt", "1e-4", "--backend", backend, "--inputs",
               str(tmp_path / "x.npy"), "--save", str(tmp_path / "run.npz"), "--json"])
    assert rc == 0, capsys.readouterr().err
    saved = np.load(tmp_path / "run.npz")
    for node in meta["spiking_nodes"]:
        np.testing.assert_array_equal(saved[node], arrays[f"spikes_{node}"], err_msg=node)
    assert arrays["spikes_1.lif"][1:].any() and not arrays["spikes_1.lif"].all()


def _per_spec(graph: nir.NIRGraph, x: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """NIR's Euler CubaLIF / LIF of the file, with the feedback of the step before, in float64 numpy."""
    n = graph.nodes
    f1, rec, f2, c, o = n["0"], n["1.w_rec"], n["2"], n["1.lif"], n["3"]
    w_rec = np.asarray(rec.weight, dtype=np.float64)
    b_rec = np.asarray(getattr(rec, "bias", np.zeros(w_rec.shape[0])), dtype=np.float64)
    a_s, a_m = dt / np.asarray(c.tau_syn), dt / np.asarray(c.tau_mem)
    a_o = dt / np.asarray(o.tau)
    i = v = s = np.zeros((x.shape[1], 32))
    vo = np.zeros((x.shape[1], 10))
    out1, out2 = [], []
    for t in range(x.shape[0]):
        cur = x[t] @ np.asarray(f1.weight, dtype=np.float64).T + np.asarray(f1.bias) + s @ w_rec.T + b_rec
        i = i + a_s * (np.asarray(c.w_in) * cur - i)
        h = v + a_m * (np.asarray(c.v_leak) - v + np.asarray(c.r) * i)
        s = (h > np.asarray(c.v_threshold)).astype(float)
        v = np.where(s > 0, np.asarray(c.v_reset), h)
        ho = vo + a_o * (-vo + np.asarray(o.r) * (s @ np.asarray(f2.weight, dtype=np.float64).T + np.asarray(f2.bias)))
        so = (ho > np.asarray(o.v_threshold)).astype(float)
        vo = np.where(so > 0, 0.0, ho)
        out1.append(s)
        out2.append(so)
    return {"1.lif": np.array(out1), "3": np.array(out2)}


@pytest.mark.parametrize("name", ["snntorch_rsynaptic_all", "snntorch_rsynaptic_one"])
def test_rsynaptic_reads_per_spec(name: str, tmp_path, capsys) -> None:
    arrays, meta = _fixture(name)
    np.save(tmp_path / "x.npy", arrays["input"])
    rc = main(["simulate", str(PEERS / f"{name}.nir"), "--dt", "1e-4", "--inputs", str(tmp_path / "x.npy"),
               "--save", str(tmp_path / "run.npz"), "--json"])
    assert rc == 0, capsys.readouterr().err
    saved = np.load(tmp_path / "run.npz")
    want = _per_spec(nir_io.read(PEERS / f"{name}.nir"), arrays["input"].astype(np.float64), 1e-4)
    for node in meta["spiking_nodes"]:
        np.testing.assert_array_equal(saved[node], want[node], err_msg=node)
    # and it is not what snnTorch ran (its delayed reset zeroes the whole membrane of the step after a spike)
    assert not np.array_equal(saved["1.lif"], arrays["spikes_1.lif"])
    assert "delayed" in meta["ran"]


def _cubalif_layer(node: nir.CubaLIF, cur: np.ndarray, dt: float, soft: bool) -> np.ndarray:
    """NIR's Euler CubaLIF over ``cur`` [T, B, n] in float64 numpy; reset to v_reset, or θ subtracted."""
    a_s, a_m = dt / np.asarray(node.tau_syn), dt / np.asarray(node.tau_mem)
    w_in, r, th = np.asarray(node.w_in), np.asarray(node.r), np.asarray(node.v_threshold)
    i = v = np.zeros(cur.shape[1:])
    out = []
    for t in range(cur.shape[0]):
        i = i + a_s * (w_in * cur[t] - i)
        h = v + a_m * (np.asarray(node.v_leak) - v + r * i)
        s = (h > th).astype(float)
        v = h - th * s if soft else np.where(s > 0, 0.0, h)
        out.append(s)
    return np.array(out)


def test_rockpool_recurrent_file_reads_per_spec(tmp_path, capsys) -> None:
    """Rockpool 3.1 writes LIFTorch(has_rec=True) without its recurrent weights (nir.py l. 252-270), under nir
    1.0.4: kdsnn reads the file as it stands (subtract reset by the version rule, no feedback), and says so."""
    arrays, meta = _fixture("rockpool_lif_rec")
    np.save(tmp_path / "x.npy", arrays["input"])
    rc = main(["simulate", str(PEERS / "rockpool_lif_rec.nir"), "--dt", "1e-3", "--inputs", str(tmp_path / "x.npy"),
               "--save", str(tmp_path / "run.npz"), "--json"])
    assert rc == 0, capsys.readouterr().err
    saved = np.load(tmp_path / "run.npz")
    g = nir_io.read(PEERS / "rockpool_lif_rec.nir")
    assert not any(isinstance(n, (nir.Linear, nir.Affine)) and np.asarray(n.weight).shape == (32, 32)
                   for n in g.nodes.values())  # the recurrent weights are not in the file
    x = arrays["input"].astype(np.float64)
    s1 = _cubalif_layer(g.nodes["1_LIFTorch"], x @ np.asarray(g.nodes["0_LinearTorch"].weight, float).T, 1e-3, True)
    s2 = _cubalif_layer(g.nodes["3_LIFTorch"], s1 @ np.asarray(g.nodes["2_LinearTorch"].weight, float).T, 1e-3, True)
    np.testing.assert_array_equal(saved["1_LIFTorch"], s1)
    np.testing.assert_array_equal(saved["3_LIFTorch"], s2)
    assert s1.any() and not np.array_equal(saved["1_LIFTorch"], arrays["spikes_1_LIFTorch"])
    assert "drops w_rec" in meta["kdsnn_must"]


def test_inspect_names_the_recurrent_edge(capsys) -> None:
    assert main(["inspect", str(PEERS / "snntorch_rleaky_one.nir"), "--dt", "1e-4"]) == 0
    assert "recurrent: 1.lif → 1.w_rec (carries the previous step's output)" in capsys.readouterr().out
