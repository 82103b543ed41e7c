"""NIR ``Delay`` (export/delay.py): delays in whole steps of the graph's dt, spike trains moved by hand, one-line
refusals (a fractional delay, a wrong count), the graph runtime's two paths (whole sequences and step by step,
recurrent), and quantization rewriting a delay in seconds into steps."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from kdsnn.cli import main
from kdsnn.errors import KdsnnError
from kdsnn.export import nir_io
from kdsnn.export.delay import delay_steps, delayed, delayed_step
from kdsnn.export.graph import set_meta
from kdsnn.export.graph_view import GraphView
from kdsnn.export.runtime import GraphSNN

TRAIN = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=np.float64)  # one spike train, by hand


def _delay_graph(delay_s, dt: float | None = None) -> nir.NIRGraph:
    """Input(3) → Delay → Output: what the Output receives is the input, delayed."""
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "d": nir.Delay(np.asarray(delay_s, dtype=np.float64)),
                            "output": nir.Output(np.array([3]))}, edges=[("input", "d"), ("d", "output")],
                     type_check=False)
    set_meta(g, {"timesteps": 8, "encoding": "events", **({"dt": dt} if dt else {})})
    return g


def test_delays_are_whole_steps_of_the_graphs_dt() -> None:
    assert GraphView.of(_delay_graph([0.0, 1e-3, 3e-3], dt=1e-3)).delays["d"].tolist() == [0, 1, 3]
    assert GraphView.of(_delay_graph([2.0], dt=None)).delays["d"].tolist() == [2, 2, 2]  # dt = 1, one for all
    with pytest.raises(KdsnnError, match=r"'d': Delay of 0.0015 s is 1.5 steps of dt = 0.001 s, not a whole number"):
        GraphView.of(_delay_graph([0.0, 1.5e-3, 3e-3], dt=1e-3))
    with pytest.raises(KdsnnError, match="'d': Delay has 2 delays for an input of 3 elements"):
        GraphView.of(_delay_graph([1.0, 2.0]))
    with pytest.raises(KdsnnError, match="Delay of -1 s is not a delay"):
        delay_steps(nir.Delay(np.array([-1.0])), 1.0, 1, "d")


def test_a_spike_train_is_moved_by_d_steps() -> None:
    """Element i of the Output is the train moved d_i = 0, 1, 3 steps later, zeros before (worked out by hand)."""
    x = torch.as_tensor(np.stack([TRAIN] * 3, axis=1)[:, None, :])  # [T = 8, B = 1, 3]
    out = GraphSNN(_delay_graph([0.0, 1.0, 3.0])).run(x).outputs["d"][:, 0].numpy()
    assert out[:, 0].tolist() == [1, 0, 1, 1, 0, 0, 1, 0]
    assert out[:, 1].tolist() == [0, 1, 0, 1, 1, 0, 0, 1]
    assert out[:, 2].tolist() == [0, 0, 0, 1, 0, 1, 1, 0]


def test_the_step_form_keeps_the_last_d_inputs() -> None:
    seq = torch.as_tensor(np.stack([TRAIN, 2 * TRAIN], axis=1)[:, None, :])  # [8, 1, 2]
    steps = np.array([2, 5])
    whole = delayed(seq, steps)
    held, got = [], []
    for t in range(seq.shape[0]):
        held = [*held[-5:], seq[t]]
        got.append(delayed_step(held, steps))
    assert torch.equal(torch.stack(got), whole)
    assert whole[:, 0, 1].tolist() == [0, 0, 0, 0, 0, 2, 0, 2]


def _recurrent_delay_graph() -> nir.NIRGraph:
    """Input(2) → fc → IF(2) ⟲ (Delay 2 → w_rec): the feedback reaches the IF 1 + 2 = 3 steps after its spike."""
    nodes = {"input": nir.Input(np.array([2])), "fc": nir.Linear(np.eye(2)),
             "if": nir.IF(r=np.ones(2), v_threshold=np.full(2, 0.5), v_reset=np.zeros(2)),
             "dr": nir.Delay(np.full(2, 2.0)), "w_rec": nir.Linear(np.array([[0.0, 0.0], [1.0, 0.0]])),
             "output": nir.Output(np.array([2]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "if"), ("if", "output"), ("if", "dr"),
                                         ("dr", "w_rec"), ("w_rec", "if")], type_check=False)
    set_meta(g, {"timesteps": 8, "encoding": "events", "integer": True, "reset": "hard", "readout": "spike"})
    return g


def test_a_delay_on_a_recurrent_edge_adds_to_the_step_of_the_feedback() -> None:
    """Neuron 0 spikes at t = 0 and 4 (its input); neuron 1 receives only neuron 0's feedback, which leaves at
    the next step and waits 2 more: it spikes at t = 3 and 7."""
    x = torch.zeros(8, 1, 2)
    x[[0, 4], 0, 0] = 1.0
    out = GraphSNN(_recurrent_delay_graph()).run(x).outputs["if"][:, 0].numpy()
    assert np.flatnonzero(out[:, 0]).tolist() == [0, 4]
    assert np.flatnonzero(out[:, 1]).tolist() == [3, 7]


def test_quantize_writes_the_delay_in_steps(tmp_path, capsys) -> None:
    """A float graph at dt = 1 ms with a 2 ms Delay: the integer graph counts in steps (dt = 1), delay 2."""
    rng = np.random.default_rng(0)
    lif = {"tau": np.full(3, 8e-3), "r": np.full(3, 8.0), "v_leak": np.zeros(3), "v_threshold": np.full(3, 0.3),
           "v_reset": np.zeros(3)}
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "fc": nir.Linear(rng.normal(size=(3, 3))),
                            "lif": nir.LIF(**lif), "d": nir.Delay(np.full(3, 2e-3)),
                            "fc2": nir.Linear(rng.normal(size=(3, 3))), "lif2": nir.LIF(**lif),
                            "output": nir.Output(np.array([3]))},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "d"), ("d", "fc2"), ("fc2", "lif2"),
                            ("lif2", "output")], type_check=False)
    nir_io.write(g, tmp_path / "f.nir")
    np.save(tmp_path / "x.npy", rng.uniform(0, 2, (6, 3)))
    rc = main(["quantize", str(tmp_path / "f.nir"), "--dt", "1e-3", "--timesteps", "10", "--inputs",
               str(tmp_path / "x.npy"), "--out", str(tmp_path / "q.nir")])
    assert rc == 0, capsys.readouterr().err
    q = GraphView.of(nir_io.read(tmp_path / "q.nir"))
    assert q.dt == 1.0 and q.delays["d"].tolist() == [2, 2, 2]
