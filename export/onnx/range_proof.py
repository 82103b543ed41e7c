"""Integer range proof of the ONNX export: float32 holds every integer up to 2^24, no further.

An integer graph's weights, biases, thresholds and every value it computes are integers; the
export bounds each of them from the weights (``Σ|W|·max|input| + |b|`` per layer, membranes
``max(|θ|, |v_reset|) + T·max|gain·current|``) and refuses when a bound exceeds 2^24.
"""
from __future__ import annotations

import nir
import numpy as np

from kdsnn.errors import KdsnnError

from ..encoding import input_bound
from ..graph_view import GraphView
from ..node_shapes import pair

EXACT_FLOAT32 = 2 ** 24  # float32 holds every integer of magnitude <= 2^24


def node_params(node: nir.NIRNode) -> dict[str, np.ndarray]:
    """The numeric parameters of a node that an integer graph must hold as integers."""
    names = {nir.Conv2d: ("weight", "bias"), nir.Conv1d: ("weight", "bias"), nir.Affine: ("weight", "bias"),
             nir.Linear: ("weight",), nir.Scale: ("scale",),
             nir.IF: ("r", "v_threshold", "v_reset")}.get(type(node), ())
    return {k: np.asarray(getattr(node, k), dtype=np.float64) for k in names}


def check_integer_range(view: GraphView, timesteps: int) -> None:
    """Refuse an integer graph whose values float32 cannot hold exactly (see :mod:`kdsnn.export.onnx.writer`)."""
    t = timesteps
    bound: dict[str, float] = {}
    for name in view.order:
        node = view.nodes[name]
        for key, a in node_params(node).items():
            if not np.all(a == np.round(a)):
                raise KdsnnError(f"NIR node {name!r}: {key} is not integer although the graph is marked integer; "
                                 "re-quantize it with `kdsnn quantize`")
            if a.size and np.abs(a).max() > EXACT_FLOAT32:
                raise KdsnnError(f"NIR node {name!r}: {key} up to {np.abs(a).max():.0f} exceeds 2^24, beyond float32's "
                                 "exact integers; quantize with fewer bits")
        if isinstance(node, nir.AvgPool2d):
            raise KdsnnError(f"NIR node {name!r}: AvgPool2d makes an integer graph non-integer; "
                             "fold it into the next layer (kdsnn's exporter writes SumPool2d)")
        if isinstance(node, nir.Input):
            bound[name] = input_bound(view)
            continue
        x = sum(_bound_of(view, bound, p, name) for p in view.preds[name])
        p = node_params(node)
        if isinstance(node, (nir.Conv2d, nir.Conv1d)):
            w = np.abs(p["weight"]).reshape(p["weight"].shape[0], -1).sum(1)
            b = float((w * x + np.abs(p["bias"]).reshape(-1)).max())
        elif isinstance(node, nir.Affine):
            b = float((np.abs(p["weight"]).sum(1) * x + np.abs(p["bias"])).max())
        elif isinstance(node, nir.Linear):
            b = float(np.abs(p["weight"]).sum(1).max() * x)
        elif isinstance(node, nir.Scale):
            b = float(np.abs(p["scale"]).max() * x)
        elif isinstance(node, nir.SumPool2d):
            k = pair(node.kernel_size, "kernel_size", name)
            b = x * k[0] * k[1]
        elif name in view.models:
            m = view.models[name]
            membrane = max(np.abs(m.threshold).max(), np.abs(m.v_reset).max()) + t * np.abs(m.gain).max() * x
            _limit(name, "membrane", membrane)
            b = 1.0
        elif isinstance(node, nir.Output):
            _limit(name, "accumulated output", t * x)
            b = x
        else:  # Flatten
            b = x
        _limit(name, "value", b)
        bound[name] = b


def _bound_of(view: GraphView, bound: dict[str, float], source: str, name: str) -> float:
    """The bound of what ``source`` sends ``name``: a recurrent edge out of a spiking population sends spikes."""
    if source in bound:
        return bound[source]
    model = view.models.get(source)
    if model is None or not model.spiking:  # a recurrent edge leaves a population; only a readout does not spike
        raise KdsnnError(f"NIR node {source!r} feeds {name!r} back without spiking; ONNX's integer range proof "
                         "covers spiking feedback only")
    return 1.0


def _limit(name: str, what: str, value: float) -> None:
    if value > EXACT_FLOAT32:
        raise KdsnnError(f"NIR node {name!r}: its {what} can reach {value:.3g} > 2^24, "
                         "beyond float32's exact integers, so ONNX could not reproduce the integer network; "
                         "quantize with fewer bits")
