"""Nested NIR graphs (export/nested.py): a subgraph node runs as its flat equivalent, edges into and out of it
through its Input and Output kept, whether the outer edges name the subgraph or its Input/Output."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from kdsnn.errors import KdsnnError
from kdsnn.export import nir_io
from kdsnn.export.graph_view import GraphView
from kdsnn.export.runtime import GraphSNN

RNG = np.random.default_rng(4)
W1, WR, W2 = RNG.normal(0, 1, (5, 3)), RNG.normal(0, 0.8, (5, 5)), RNG.normal(0, 1, (2, 5))


def _lif(n: int) -> nir.LIF:
    return nir.LIF(tau=np.full(n, 2.0), r=np.full(n, 2.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                   v_reset=np.zeros(n))


def _recurrent_layer() -> nir.NIRGraph:
    return nir.NIRGraph(nodes={"in": nir.Input(np.array([5])), "lif": _lif(5), "w_rec": nir.Linear(WR),
                               "out": nir.Output(np.array([5]))},
                        edges=[("in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "out")], type_check=False)


def _outer(into: str, out_of: str) -> nir.NIRGraph:
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "fc": nir.Linear(W1), "rnn": _recurrent_layer(),
                               "fc2": nir.Linear(W2), "lif2": _lif(2), "output": nir.Output(np.array([2]))},
                        edges=[("input", "fc"), ("fc", into), (out_of, "fc2"), ("fc2", "lif2"), ("lif2", "output")],
                        type_check=False)


def _flat() -> nir.NIRGraph:
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "fc": nir.Linear(W1), "rnn.lif": _lif(5),
                               "rnn.w_rec": nir.Linear(WR), "fc2": nir.Linear(W2), "lif2": _lif(2),
                               "output": nir.Output(np.array([2]))},
                        edges=[("input", "fc"), ("fc", "rnn.lif"), ("rnn.lif", "rnn.w_rec"), ("rnn.w_rec", "rnn.lif"),
                               ("rnn.lif", "fc2"), ("fc2", "lif2"), ("lif2", "output")], type_check=False)


@pytest.mark.parametrize("into,out_of", [("rnn", "rnn"), ("rnn.in", "rnn.out")])
def test_a_subgraph_runs_as_its_flat_graph(into: str, out_of: str, tmp_path) -> None:
    nested = _outer(into, out_of)
    view = GraphView.of(nested)
    assert set(view.nodes) == set(_flat().nodes) and view.recurrent == {("rnn.lif", "rnn.w_rec")}
    x = torch.tensor(RNG.normal(0.8, 1, (7, 4, 3)))
    want = GraphSNN(_flat()).run(x)
    got = GraphSNN(nested).run(x)
    for n in ("rnn.lif", "lif2"):
        assert torch.equal(got.outputs[n], want.outputs[n])
    assert want.outputs["rnn.lif"].sum() > 0
    if into == "rnn":  # written and read back (nir keeps the subgraph in the file), the same again
        again = GraphSNN(nir_io.read(nir_io.write(nested, tmp_path / "nested.nir"))).run(x)
        assert torch.equal(again.outputs["lif2"], want.outputs["lif2"])
    else:  # nir 1.0.8's own reader refuses edges naming a subgraph's Input ("references destination node"): one line
        with pytest.raises(KdsnnError, match="could not be read as NIR .*rnn.in"):
            nir_io.read(nir_io.write(nested, tmp_path / "nested.nir"))


def test_a_subgraph_with_two_inputs_is_refused() -> None:
    g = _outer("rnn", "rnn")
    g.nodes["rnn"].nodes["in2"] = nir.Input(np.array([5]))
    with pytest.raises(KdsnnError, match="subgraph 'rnn' has 2 Input nodes"):
        GraphView.of(g)
