"""Graphs that snnTorch 1.0, Norse 1.1, Sinabs 3.1.3 and SpikingJelly 2.0 exported themselves
(tests/fixtures/peers/, README beside them): kdsnn reproduces each exporter's own spikes exactly
where the file states the exporter's semantics (with ``--dt`` / ``--legacy-if-reset`` where the
file cannot say them), reads the file per spec where it cannot state what the library ran, and
refuses in one line where the file's parameters are undefined. Installs and runs no peer library.
"""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from kdsnn.errors import KdsnnError
from kdsnn.export import nir_io
from kdsnn.export.graph_view import GraphView
from kdsnn.export.runtime import GraphSNN
from tests.helpers import FIXTURES

PEERS = FIXTURES / "peers"

# fixture → the reading options that state what the library ran
EXACT: dict[str, dict] = {
    "snntorch_mlp_beta09_zero": {"dt": 1e-4},
    "snntorch_conv_beta09_zero": {"dt": 1e-4},
    "norse_mlp_iaf": {},
    "norse_mlp_iaf_bernoulli": {},
    "norse104_mlp_iaf": {"legacy_if_reset": "zero"},
    "norse_mlp_lifbox_dt1": {},
    "sinabs_mlp_iaf_subtract": {},
    "sinabs_conv_iaf_subtract": {},
    "sinabs_mlp_iaf_zero": {"legacy_if_reset": "zero"},
    "sinabs_conv_iaf_zero": {"legacy_if_reset": "zero"},
    "sj_mlp_if_dt1": {},
    "sj_conv_if_dt1": {},
    "sj_mlp_if_dt1e-4": {"dt": 1e-4},
    "sj_conv_if_dt1e-4": {"dt": 1e-4},
    "sj_mlp_lif_dt1": {},
    "sj_mlp_lif_dt1e-4": {"dt": 1e-4},
    # recurrent (issue 15): the edge 1.lif → 1.w_rec carries the previous step, as snnTorch's V(s[t-1])
    "snntorch_rleaky_all": {"dt": 1e-4},
    "snntorch_rleaky_one": {"dt": 1e-4},
    "sj_conv1d_if": {},  # Conv1d (issue 15)
}
# fixture → (options, words the one-line refusal must contain)
REFUSE: dict[str, tuple[dict, str]] = {
    "snntorch_mlp_beta1_zero": ({}, "undefined"),
    "snntorch_mlp_beta1_subtract": ({}, "undefined"),
    "snntorch_conv_beta1_subtract": ({"dt": 1e-4}, "undefined"),
    "norse_mlp_lifbox_dt1e-3": ({"dt": 1e-3}, "dt/τ = 100 > 1"),
    "norse_mlp_cubalif_dt1e-3": ({"dt": 1e-3}, "> 1"),
}
# fixture → (options, the fixture whose library spikes the per-spec reading gives, or None)
DIFFERS: dict[str, tuple[dict, str | None]] = {
    "snntorch_mlp_beta09_subtract": ({"dt": 1e-4}, "snntorch_mlp_beta09_zero"),
    "sinabs_mlp_iaf_subtract_multispike": ({}, "sinabs_mlp_iaf_subtract"),
    "norse_mlp_cubalif_dt1": ({}, None),
    # snnTorch 1.0's RSynaptic runs a delayed reset (its reset_delay=False fails): tests/export/test_reading_recurrent
    "snntorch_rsynaptic_all": ({"dt": 1e-4}, None),
    "snntorch_rsynaptic_one": ({"dt": 1e-4}, None),
    # Rockpool 3.1 drops LIFTorch's w_rec on export: tests/export/test_reading_recurrent_peers.py
    "rockpool_lif_rec": ({"dt": 1e-3}, None),
}
# read without the options: what the file states per spec is not what the library ran
DEFAULT_DIFFERS = ["norse104_mlp_iaf", "sinabs_mlp_iaf_zero", "sinabs_conv_iaf_zero", "sj_mlp_if_dt1e-4"]


def _load(name: str) -> tuple[dict, dict]:
    z = np.load(PEERS / f"{name}.npz")
    meta = json.loads(str(z["meta"]))
    return {k: z[k] for k in z.files if k != "meta"}, meta


def _run(name: str, **opts) -> dict[str, np.ndarray]:
    arrays, meta = _load(name)
    snn = GraphSNN(nir_io.read(PEERS / f"{name}.nir", **opts))
    run = snn.run(torch.as_tensor(arrays["input"]))
    return {n: run.outputs[n].numpy() for n in meta["spiking_nodes"]} | {"output": run.output_seq.numpy()}


def test_every_fixture_is_covered() -> None:
    names = {p.stem for p in PEERS.glob("*.nir")}
    assert names == set(EXACT) | set(REFUSE) | set(DIFFERS), names ^ (set(EXACT) | set(REFUSE) | set(DIFFERS))


@pytest.mark.parametrize("name", list(EXACT))
def test_reproduces_the_exporters_spikes(name: str) -> None:
    arrays, meta = _load(name)
    got = _run(name, **EXACT[name])
    for node in meta["spiking_nodes"]:
        np.testing.assert_array_equal(got[node], arrays[f"spikes_{node}"], err_msg=f"{name}: node {node}")
    np.testing.assert_array_equal(got["output"], arrays["output"])
    assert arrays["output"].any() and not arrays["output"].all()  # the comparison means something


@pytest.mark.parametrize("name", list(REFUSE))
def test_refuses_undefined_files_in_one_line(name: str) -> None:
    opts, words = REFUSE[name]
    with pytest.raises(KdsnnError) as err:
        GraphView(nir_io.read(PEERS / f"{name}.nir", **opts))
    msg = str(err.value)
    assert "\n" not in msg and words in msg and "node '1'" in msg, msg


def test_refuses_at_the_default_dt_too() -> None:
    """Files written for dt = 1e-4 cannot run at dt = 1 (dt/τ = 1000): the refusal names --dt."""
    with pytest.raises(KdsnnError, match=r"dt/τ = 1000 > 1 .*--dt"):
        GraphView(nir_io.read(PEERS / "snntorch_mlp_beta09_zero.nir"))


@pytest.mark.parametrize("name", list(DIFFERS))
def test_reads_per_spec_what_the_file_cannot_state(name: str) -> None:
    opts, same_as = DIFFERS[name]
    arrays, meta = _load(name)
    got = _run(name, **opts)
    assert not all(np.array_equal(got[n], arrays[f"spikes_{n}"]) for n in meta["spiking_nodes"])
    if same_as is not None:
        other, _ = _load(same_as)
        for node in meta["spiking_nodes"]:
            np.testing.assert_array_equal(got[node], other[f"spikes_{node}"])


@pytest.mark.parametrize("name", DEFAULT_DIFFERS)
def test_without_the_options_the_file_reads_per_spec(name: str) -> None:
    arrays, meta = _load(name)
    got = _run(name)
    assert not np.array_equal(got["output"], arrays["output"])


def test_reset_rule_follows_the_writers_nir_version() -> None:
    """nir 1.0.8's reader fills v_reset = 0 into nir-1.0.4 IF nodes; the file's version decides."""
    g = nir_io.read(PEERS / "sinabs_mlp_iaf_subtract.nir")
    assert np.all(g.nodes["1"].v_reset == 0)            # what nir.read alone would suggest
    view = GraphView(g)
    assert view.reset == "soft" and "1.0.4" in view.reading.reset_why
    assert view.models["1"].reset == "soft"
    assert GraphView(nir_io.read(PEERS / "sj_mlp_if_dt1.nir")).reset == "hard"
    zero = GraphView(nir_io.read(PEERS / "sinabs_mlp_iaf_zero.nir", legacy_if_reset="zero"))
    assert zero.reset == "hard" and "--legacy-reset zero" in zero.reading.reset_why
    ignored = GraphView(nir_io.read(PEERS / "sj_mlp_if_dt1.nir", legacy_if_reset="subtract"))
    assert ignored.reset == "hard" and any("ignored" in n for n in ignored.notes)


def test_batch_axis_on_input_is_accepted_with_a_note() -> None:
    view = GraphView(nir_io.read(PEERS / "norse_mlp_iaf.nir"))
    assert view.input_shape == (64,)
    assert any("batch axis" in n for n in view.notes) and any("type check" in n for n in view.notes)


def test_dt_is_applied_with_r() -> None:
    """SpikingJelly's IF(r = 10⁴): r·dt = 1 at dt = 1e-4, a gain of 10⁴ at dt = 1 (per spec)."""
    assert GraphView(nir_io.read(PEERS / "sj_mlp_if_dt1e-4.nir", dt=1e-4)).models["_1"].unit_gain
    view = GraphView(nir_io.read(PEERS / "sj_mlp_if_dt1e-4.nir"))
    assert float(view.models["_1"].gain.max()) == 1e4 and "default" in view.reading.dt_why


def test_cubalif_states_norses_jump_with_w_in() -> None:
    """Norse's LIFCell adds its input to the current (i += x): NIR's CubaLIF states it with
    w_in = τ_syn/dt (5 here). With that one change the file gives Norse's own spikes."""
    arrays, meta = _load("norse_mlp_cubalif_dt1")
    g = nir_io.read(PEERS / "norse_mlp_cubalif_dt1.nir")
    for n in meta["spiking_nodes"]:
        node = g.nodes[n]
        g.nodes[n] = nir.CubaLIF(tau_syn=node.tau_syn, tau_mem=node.tau_mem, r=node.r, v_leak=node.v_leak,
                                 v_threshold=node.v_threshold, v_reset=node.v_reset,
                                 w_in=np.asarray(node.tau_syn) / 1.0)
    run = GraphSNN(g).run(torch.as_tensor(arrays["input"]))
    for n in meta["spiking_nodes"]:
        np.testing.assert_array_equal(run.outputs[n].numpy(), arrays[f"spikes_{n}"])


@pytest.mark.parametrize("name,opts", [("sinabs_mlp_iaf_zero", {"legacy_if_reset": "zero"}),
                                       ("sinabs_mlp_iaf_subtract", {}),
                                       ("sj_mlp_lif_dt1e-4", {"dt": 1e-4}),
                                       ("snntorch_conv_beta09_zero", {"dt": 1e-4})])
def test_reexported_foreign_graph_keeps_its_meaning(name: str, opts: dict, tmp_path) -> None:
    """Written again by kdsnn (nir 1.0.8), the file records the rule and dt it was read with."""
    arrays, _ = _load(name)
    path = nir_io.write(nir_io.read(PEERS / f"{name}.nir", **opts), tmp_path / "again.nir")
    got = GraphSNN(nir_io.read(path)).run(torch.as_tensor(arrays["input"])).output_seq.numpy()
    np.testing.assert_array_equal(got, arrays["output"])


@pytest.mark.parametrize("name", [n for n in EXACT if not any(
    isinstance(node, (nir.LIF, nir.CubaLIF)) for node in nir_io.read(PEERS / f"{n}.nir").nodes.values())])
def test_reference_simulator_reproduces_the_exporters_spikes(name: str) -> None:
    """The event-driven simulator (IF populations, either reset) gives the exporters' spikes too."""
    from kdsnn.deploy.simulator import simulate

    arrays, meta = _load(name)
    res = simulate(nir_io.read(PEERS / f"{name}.nir", **EXACT[name]), torch.as_tensor(arrays["input"]))
    for node in meta["spiking_nodes"]:
        np.testing.assert_array_equal(res.spikes[node].numpy(), arrays[f"spikes_{node}"], err_msg=f"{name}: {node}")
