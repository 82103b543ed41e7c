"""The NIR paper's recurrent Braille networks (tests/fixtures/nir_paper, README there): the feedback edge found,
the reset rule of a nir 0.2.0 file and its flag, kdsnn's reading against the file's equations in numpy, the
nested version refused in one line, and the quantized network bit-exact on the simulator and Lava."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from kdsnn.deploy.verify import verify_graph
from kdsnn.errors import KdsnnError
from kdsnn.export import nir_io
from kdsnn.export.graph_view import GraphView
from kdsnn.export.quantize import quantize_graph
from kdsnn.export.runtime import GraphSNN
from tests.helpers import FIXTURES

HERE = FIXTURES / "nir_paper"
DT = 1e-4  # snnTorch's exporter: tau = dt/(1 - beta) for dt = 1e-4


def _spikes(t: int = 40, b: int = 6) -> np.ndarray:
    """Seeded taxel events [T, B, 12] (the shipped test set is not in the repository, README)."""
    return (np.random.default_rng(7).random((t, b, 12)) < 0.3).astype(np.float64)


def _by_hand(g: nir.NIRGraph, x: np.ndarray, soft: bool) -> dict[str, np.ndarray]:
    """Affine/Linear → CubaLIF with feedback of the step before → Affine/Linear → CubaLIF, NIR's Euler at DT."""
    def lin(name: str, s: np.ndarray) -> np.ndarray:
        n = g.nodes[name]
        return s @ np.asarray(n.weight, float).T + np.asarray(getattr(n, "bias", 0.0), float)

    def step(node: nir.CubaLIF, cur: np.ndarray, st: dict) -> np.ndarray:
        a_s, a_m = DT / np.asarray(node.tau_syn, float), DT / np.asarray(node.tau_mem, float)
        st["i"] = st["i"] + a_s * (np.asarray(node.w_in, float) * cur - st["i"])
        h = st["v"] + a_m * (np.asarray(node.v_leak, float) - st["v"] + np.asarray(node.r, float) * st["i"])
        th = np.asarray(node.v_threshold, float)
        s = (h > th).astype(float)
        st["v"] = h - th * s if soft else np.where(s > 0, np.asarray(node.v_reset, float), h)
        return s

    n1, n2 = g.nodes["lif1.lif"].tau_syn.size, g.nodes["lif2"].tau_syn.size
    st1 = {"i": np.zeros((x.shape[1], n1)), "v": np.zeros((x.shape[1], n1))}
    st2 = {"i": np.zeros((x.shape[1], n2)), "v": np.zeros((x.shape[1], n2))}
    s1 = np.zeros((x.shape[1], n1))
    out1, out2 = [], []
    for t in range(x.shape[0]):
        s1 = step(g.nodes["lif1.lif"], lin("fc1", x[t]) + lin("lif1.w_rec", s1), st1)
        out1.append(s1)
        out2.append(step(g.nodes["lif2"], lin("fc2", s1), st2))
    return {"lif1.lif": np.array(out1), "lif2": np.array(out2)}


@pytest.mark.parametrize("name,flag,soft", [("braille_noDelay_bias_zero", "zero", False),
                                            ("braille_noDelay_noBias_subtract", None, True)])
def test_braille_reads_as_its_equations(name: str, flag: str | None, soft: bool) -> None:
    g = nir_io.read(HERE / f"{name}.nir", dt=DT, legacy_if_reset=flag)
    view = GraphView.of(g)
    assert view.recurrent == {("lif1.lif", "lif1.w_rec")}
    assert view.reading.nir_version == "0.2.0" and view.reset == ("soft" if soft else "hard")
    x = _spikes()
    got = GraphSNN(view).run(torch.tensor(x))
    want = _by_hand(g, x, soft)
    for n in ("lif1.lif", "lif2"):
        np.testing.assert_array_equal(got.outputs[n].numpy(), want[n], err_msg=n)
    assert want["lif1.lif"][1:].any() and want["lif2"].any()
    # and by default the bias_zero file reads per nir 0.2.0's spec: subtract, other spikes
    if flag:
        default = GraphSNN(nir_io.read(HERE / f"{name}.nir", dt=DT)).run(torch.tensor(x)).outputs["lif1.lif"]
        assert not np.array_equal(default.numpy(), want["lif1.lif"])


def test_the_nested_version_is_refused_in_one_line() -> None:
    with pytest.raises(KdsnnError, match=r"could not be read as NIR \(ValueError: Edge") as err:
        nir_io.read(HERE / "braille_noDelay_bias_zero_subgraph.nir")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("flag", [None, "zero"])
def test_quantized_braille_is_bit_exact_on_every_integer_backend(flag: str | None) -> None:
    """The bias-free network quantized: the simulator always; Lava where its LIF can (reset to zero: read with
    --legacy-reset zero), refusing subtract reset in one line otherwise."""
    from kdsnn.deploy.lava import lava_available
    from kdsnn.export.graph import get_meta, set_meta

    g = nir_io.read(HERE / "braille_noDelay_noBias_subtract.nir", dt=DT, legacy_if_reset=flag)
    x = _spikes(t=20, b=4)
    set_meta(g, {**get_meta(g), "timesteps": 20})
    q = quantize_graph(g, bits=8, integer=True, calibration_max=127.0)  # spike input: step 1
    assert GraphSNN(q).run(torch.tensor(x)).outputs["lif1.lif"].sum() > 0
    checks = {c.backend: c for c in verify_graph(q, torch.tensor(x), slow_samples=2)}
    assert checks["reference simulator"].status == "agree", checks["reference simulator"].detail
    lava = next(c for label, c in checks.items() if label.startswith("Lava"))
    if not lava_available()[0]:
        pytest.skip("Lava not importable")
    if flag == "zero":
        assert lava.status == "agree" and "identical spikes at 2 populations" in lava.detail, lava.detail
    else:
        assert lava.status == "not expressible" and "reset mode 'soft'" in lava.detail, lava.detail
