"""Checks of a graph's values and size that every consumer relies on, run once by the graph view.

- Values: real numbers (complex parameters are refused before anything reads them), no NaN in
  any parameter, no infinite synaptic weight or bias, and in an integer graph
  (``metadata.integer``) integer weights, biases and scales, as the contract promises every
  backend (a NaN weight would otherwise run on one backend and be refused by another). Neuron
  parameters are their models' to judge (an integer graph's IF may fire above a fractional θ:
  on integer membranes that is the floor's rule).
- Size: no node of zero elements; the memory one sample's state takes for one step (every
  node's output, float64), the unit every runner multiplies by T and its batch; one sample that
  does not fit is refused before anything is allocated (a NIR Input of shape [1, 100000, 100000]).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import nir
import numpy as np

from kdsnn.budget import require
from kdsnn.errors import KdsnnError

if TYPE_CHECKING:
    from .graph_view import GraphView

STATE_BYTES = 8  # float64 per value
SYNAPSE_PARAMS = {nir.Conv2d: ("weight", "bias"), nir.Affine: ("weight", "bias"), nir.Linear: ("weight",),
                  nir.Scale: ("scale",)}


def check_real(nodes: dict[str, nir.NIRNode]) -> None:
    """Refuse complex parameters before anything reads them as floats (numpy would drop the imaginary part
    with a warning and the graph would run on other values than the file holds)."""
    for name, node in nodes.items():
        for key, value in vars(node).items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "c":
                raise KdsnnError(f"NIR node {name!r}: {key} holds complex numbers ({value.dtype}); NIR parameters are "
                                 "real: re-export the file with real values")


def check_values(view: GraphView) -> None:
    """Refuse NaN (anywhere), infinite synaptic values, and non-integers in an integer graph, naming the node."""
    for name, node in view.nodes.items():
        synaptic = SYNAPSE_PARAMS.get(type(node), ())
        for key, value in vars(node).items():
            if isinstance(value, str) or value is None:
                continue
            a = np.asarray(value)
            if a.dtype.kind not in "fc":
                continue
            if np.isnan(a).any():
                raise KdsnnError(f"NIR node {name!r}: {key} holds NaN; the file is damaged (re-export it)")
            if key in synaptic and not np.isfinite(a).all():
                raise KdsnnError(f"NIR node {name!r}: {key} holds infinite values; the file is damaged (re-export it)")
        if view.integer:
            for key in synaptic:
                a = np.asarray(getattr(node, key), dtype=np.float64)
                if not np.array_equal(a, np.round(a)):
                    raise KdsnnError(f"NIR node {name!r}: {key} is not integer although the graph is marked integer; "
                                     "re-quantize it with `kdsnn quantize`")


def sample_step_bytes(view: GraphView) -> int:
    """Memory of one sample's values at one step: every node's output, float64."""
    return STATE_BYTES * sum(view.size(n) for n in view.order)


def check_size(view: GraphView) -> None:
    """Refuse a graph with a node of no elements (nothing to feed or read) or one sample of which does not fit
    in memory for one step."""
    empty = next((n for n in view.order if view.size(n) == 0), None)
    if empty is not None:
        raise KdsnnError(f"NIR node {empty!r} has shape {list(view.shape[empty])}, which holds no values; the file "
                         "declares an empty layer (re-export it)")
    require(sample_step_bytes(view), "one sample of this graph (every node's values for one step)",
            "its Input or layers declare shapes far beyond what it can run")
