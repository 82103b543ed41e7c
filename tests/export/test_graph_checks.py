"""The graph view refuses NaN and non-integer values in an integer graph, and one sample too big to hold."""
import nir
import numpy as np
import pytest

from kdsnn.errors import KdsnnError
from kdsnn.export.graph import set_meta
from kdsnn.export.graph_checks import sample_step_bytes
from kdsnn.export.graph_view import GraphView


def _graph(weight: np.ndarray, integer: bool, theta: float = 3.0, n_in: int = 4) -> nir.NIRGraph:
    g = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([n_in])}),
                            "fc": nir.Affine(weight=weight, bias=np.zeros(weight.shape[0])),
                            "if": nir.IF(r=np.ones(weight.shape[0]), v_threshold=np.full(weight.shape[0], theta),
                                         v_reset=np.zeros(weight.shape[0])),
                            "output": nir.Output({"output": np.array([weight.shape[0]])})},
                     edges=[("input", "fc"), ("fc", "if"), ("if", "output")], type_check=False)
    set_meta(g, {"timesteps": 4, "integer": integer, "input_scale": None})
    return g


def test_integer_graph_passes():
    view = GraphView(_graph(np.arange(8.0).reshape(2, 4), integer=True))
    # every node's output per sample and step, float64: input 4 + fc 2 + if 2 + output 2 values
    assert sample_step_bytes(view) == 8 * (4 + 2 + 2 + 2)


@pytest.mark.parametrize("integer", [True, False])
def test_nan_is_refused_in_any_graph(integer):
    w = np.ones((2, 4))
    w[1, 2] = np.nan
    with pytest.raises(KdsnnError, match="NIR node 'fc': weight holds NaN"):
        GraphView(_graph(w, integer))


def test_infinite_weight_is_refused():
    w = np.ones((2, 4))
    w[0, 0] = np.inf
    with pytest.raises(KdsnnError, match="NIR node 'fc': weight holds infinite values"):
        GraphView(_graph(w, integer=False))


def test_non_integers_only_matter_in_an_integer_graph():
    w = np.full((2, 4), 0.5)
    GraphView(_graph(w, integer=False))
    with pytest.raises(KdsnnError, match="'fc': weight is not integer although the graph is marked integer"):
        GraphView(_graph(w, integer=True))
    GraphView(_graph(np.ones((2, 4)), integer=True, theta=2.5))  # IF on integers: fires above θ's floor


def test_one_sample_too_big_is_refused(monkeypatch):
    monkeypatch.setenv("KDSNN_MEMORY_LIMIT", "100")  # bytes: the 80-byte graph above fits, 8 × (8+2+2+2) does not
    GraphView(_graph(np.ones((2, 4)), integer=True))
    with pytest.raises(KdsnnError, match="one sample of this graph .* would need 112 B of memory, more than the "
                                         "100 B"):
        GraphView(_graph(np.ones((2, 8)), integer=True, n_in=8))
