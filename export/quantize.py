"""Post-training quantization of the deployable graph (DESIGN.md's contract).

Per layer, symmetric k-bit weights. Every population of IF neurons has one current scale
``c`` shared by all synaptic layers feeding it (a residual sum needs one scale):
``c = max_i(max|W_i|·s_in_i) / (2^(k−1) − 1)``, where ``s_in`` is the scale of that layer's
input (the input quantization step for the first layer, 1 for spikes and spike sums). Then
``W_int = round(W·s_in/c)``, ``b_int = round(b/c)``, ``θ_int = round(θ/c)``, so the integer
network is the float one up to rounding. An identity shortcut (``Scale`` of 1) needs
``1/c`` to be an integer ≤ 2^(k−1) − 1, so its population's ``c`` is raised to the next
``1/n``. Ranges a Loihi-style target cannot hold (8-bit weight mantissa with a per-layer
exponent, 24-bit membrane, bias and threshold) are reported per layer, never clipped.

``integer=True`` stores the integers (and ``metadata.integer``), the mode in which every
backend gives identical spikes; ``integer=False`` stores the dequantized values ("fake
quantization"), a float graph on the k-bit grid.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import nir
import numpy as np

from kdsnn.errors import KdsnnError

from .graph import get_meta, set_meta
from .graph_view import SYNAPTIC, GraphView
from .loihi import STATE_BITS, weight_fits


def input_step(preprocessing: dict[str, Any], calibration_max: float | None, bits: int) -> float:
    """Quantization step of the network's input.

    When the data are integers at the source and normalization is a pure scale (``mean = 0``,
    one ``std``), the exact step is ``raw_scale/std`` (digits: 1/16, images: 1/255): the
    integer input is then the raw data itself. Otherwise ``max|x|/(2^(b−1)−1)`` over a
    calibration batch.
    """
    mean, std, raw = preprocessing.get("mean"), preprocessing.get("std"), preprocessing.get("raw_scale")
    if raw and mean is not None and std and all(m == 0 for m in mean) and len(set(std)) == 1:
        return float(raw) / float(std[0])
    if not calibration_max:
        raise KdsnnError("integer quantization needs calibration inputs to choose the input step")
    return float(calibration_max) / (2 ** (bits - 1) - 1)


def _weights(node: nir.NIRNode) -> np.ndarray:
    return np.asarray(node.scale if isinstance(node, nir.Scale) else node.weight, dtype=np.float64)


def _input_scales(graph: nir.NIRGraph, preds: dict[str, list[str]], in_step: float) -> dict[str, float]:
    """Scale of each node's output signal: ``in_step`` for the analog input and what passes it on."""
    scale: dict[str, float] = {}

    def of(name: str) -> float:
        if name in scale:
            return scale[name]
        node = graph.nodes[name]
        if not preds[name]:  # the Input
            s = in_step
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d, nir.Flatten)):
            s = of(preds[name][0])
        else:
            s = 1.0
        scale[name] = s
        return s

    for n in graph.nodes:
        of(n)
    return scale


def quantize_graph(graph: nir.NIRGraph, bits: int = 8, integer: bool = True,
                   calibration_max: float | None = None) -> nir.NIRGraph:
    """Return a new graph with k-bit weights (integers if ``integer``) and a per-layer report."""
    if not 2 <= bits <= 16:
        raise KdsnnError(f"--bits must be between 2 and 16, got {bits}")
    meta = get_meta(graph)
    if meta.get("integer") or meta.get("quantization"):
        raise KdsnnError("this graph is already quantized; quantize the float export instead")
    for name, node in graph.nodes.items():
        if isinstance(node, nir.AvgPool2d):
            raise KdsnnError(f"node {name!r}: AvgPool2d must be folded into the next layer before quantization "
                             "(kdsnn's exporter writes SumPool2d)")
    g = copy.deepcopy(graph)
    view = GraphView.of(g)
    preds, succs = view.preds, view.succs
    qmax = 2 ** (bits - 1) - 1
    # Spike input (Bernoulli encoding) is 0/1 already: its step is 1, whatever the data's scale.
    in_step = (1.0 if meta.get("encoding") == "bernoulli"
               else input_step(meta.get("preprocessing", {}), calibration_max, bits))
    sig = _input_scales(g, preds, in_step)

    # Group synaptic layers by the population they feed (an IF node, or the Output).
    groups: dict[str, list[str]] = {}
    for name, node in g.nodes.items():
        if isinstance(node, SYNAPTIC):
            targets = succs[name]
            if len(targets) != 1 or not (isinstance(g.nodes[targets[0]], nir.Output) or
                                         getattr(view.models.get(targets[0]), "kind", None) == "IF"):
                raise KdsnnError(f"node {name!r} must feed exactly one IF population or the Output to be quantized")
            groups.setdefault(targets[0], []).append(name)

    report: dict[str, Any] = {}
    output_scale = 1.0
    for target, layers in groups.items():
        s_in = {layer: sig[preds[layer][0]] for layer in layers}
        peak = max(float(np.abs(_weights(g.nodes[layer])).max()) * s_in[layer] for layer in layers)
        if peak == 0:
            raise KdsnnError(f"all weights feeding {target!r} are zero; nothing to quantize")
        c = peak / qmax
        if any(isinstance(g.nodes[layer], nir.Scale) for layer in layers):
            n = math.floor(1 / c)
            if n < 1:
                raise KdsnnError(f"population {target!r}: an identity shortcut cannot be represented at {bits} bits "
                                 f"(weights up to {peak:.3g}); use more bits")
            c = 1.0 / n
        for layer in layers:
            node = g.nodes[layer]
            w_int = np.round(_weights(node) * s_in[layer] / c)
            b = np.asarray(getattr(node, "bias", np.zeros(1)), dtype=np.float64)
            b_int = np.round(b / c)
            w_new = w_int if integer else w_int * c / s_in[layer]
            b_new = b_int if integer else b_int * c
            if isinstance(node, nir.Scale):
                node.scale = w_new
            else:
                node.weight = w_new
                if hasattr(node, "bias"):
                    node.bias = b_new
            wmax = int(np.abs(w_int).max())
            report[layer] = {"feeds": target, "current_scale": c, "input_scale": s_in[layer],
                             "weight_scale": c / s_in[layer], "weight_bits": bits, "max_abs_weight": wmax,
                             "max_abs_bias": int(np.abs(b_int).max()), "fits_loihi_weight": weight_fits(w_int),
                             "fits_24bit_bias": bool(np.abs(b_int).max() < 2 ** (STATE_BITS - 1))}
        tnode = g.nodes[target]
        if isinstance(tnode, nir.IF):
            th = np.asarray(tnode.v_threshold, dtype=np.float64)
            th_int = np.round(th / c)
            vr_int = np.round(np.asarray(tnode.v_reset, dtype=np.float64) / c)
            r = np.asarray(tnode.r, dtype=np.float64)
            if not np.all(r == 1):
                raise KdsnnError(f"IF node {target!r} has r ≠ 1; only r = 1 can be quantized")
            tnode.v_threshold = th_int if integer else th_int * c
            tnode.v_reset = vr_int if integer else vr_int * c
            report[target] = {"current_scale": c, "threshold_int": int(np.abs(th_int).max()),
                              "fits_24bit_threshold": bool(np.abs(th_int).max() < 2 ** (STATE_BITS - 1))}
        else:
            output_scale = c
    meta.update(integer=bool(integer), bits=bits, input_scale=in_step if integer else None,
                output_scale=output_scale if integer else 1.0, quantization=report)
    set_meta(g, meta)
    return g


def range_problems(graph: nir.NIRGraph) -> list[str]:
    """Human-readable list of values a Loihi-style target cannot hold (empty when all fit)."""
    problems = []
    for name, rep in get_meta(graph).get("quantization", {}).items():
        for key in ("fits_loihi_weight", "fits_24bit_bias", "fits_24bit_threshold"):
            if key in rep and not rep[key]:
                problems.append(f"{name}: {key.replace('fits_', 'does not fit ').replace('_', ' ')}")
    return problems
