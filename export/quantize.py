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

Leaky and recurrent graphs (issue 15; integer only): a LIF, CubaLIF or LI population integrates
its input with a gain ``g`` (LIF/LI ``r·dt/τ``; CubaLIF ``(w_in·dt/τ_syn)(r·dt/τ_mem)``, the current
rescaled into membrane units), which is folded into the weights and biases feeding it before they
are quantized (``W_int = round(W·s_in·g/c)``). Its decays become Loihi's 12-bit fractions
(``dv = round(4096·dt/τ_mem)``, ``du = round(4096·dt/τ_syn) − 1``), written back as ``τ``, ``r``
(and ``w_in``) with unit gains at ``dt = 1`` (the quantized graph counts in steps); θ and ``v_reset``
in the units ``c``; ``v_leak`` must be 0 (Loihi has none). A recurrent synapse is one more synapse
into its population (its input is spikes). A readout LI's membrane is the logits in units ``c``.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import nir
import numpy as np

from kdsnn.errors import KdsnnError
from kdsnn.neuron_models import XYLO_DASH_MAX

from .graph import get_meta, set_meta
from .graph_view import SYNAPTIC, GraphView
from .loihi import WEIGHT_EXP_MAX, bias_fits, threshold_fits, weight_fits
from .node_shapes import pair


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
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d, nir.Flatten, nir.Delay)):
            s = of(preds[name][0])
        else:
            s = 1.0
        scale[name] = s
        return s

    for n in graph.nodes:
        of(n)
    return scale


def quantize_graph(graph: nir.NIRGraph, bits: int = 8, integer: bool = True,
                   calibration_max: float | None = None, decays: str = "loihi") -> nir.NIRGraph:
    """Return a new graph with k-bit weights (integers if ``integer``) and a per-layer report.

    ``decays``: the leaky populations' integer decays, Loihi's 12-bit fractions (``"loihi"``) or Xylo's bit
    shifts (``"xylo"``: LIF only, the nearest ``dash`` as Rockpool chooses it, the error in τ reported)."""
    if decays not in ("loihi", "xylo"):
        raise KdsnnError(f"unknown decay rule {decays!r} (known: loihi, xylo)")
    if not 2 <= bits <= 16:
        raise KdsnnError(f"--bits must be between 2 and 16, got {bits}")
    meta = get_meta(graph)
    if meta.get("integer") or meta.get("quantization"):
        raise KdsnnError("this graph is already quantized; quantize the float export instead")
    g = copy.deepcopy(graph)
    view = GraphView.of(g)
    g = view.graph  # nested graphs flattened
    if _fold_avg_pools(g, view):
        view = GraphView.of(g)
    leaky = any(m.kind != "IF" for m in view.models.values())
    if leaky and not integer:
        raise KdsnnError("fake quantization (--float) covers IF graphs; a leaky graph is quantized to integers "
                         "(Loihi's 12-bit decays)")
    preds, succs = view.preds, view.succs
    qmax = 2 ** (bits - 1) - 1
    # Spike input (Bernoulli encoding, event frames) is 0/1 already: its step is 1, whatever the data's scale.
    in_step = (1.0 if meta.get("encoding") in ("bernoulli", "events")
               else input_step(meta.get("preprocessing", {}), calibration_max, bits))
    sig = _input_scales(g, preds, in_step)

    # Group synaptic layers by the population they feed (an IF node, or the Output).
    groups: dict[str, list[str]] = {}
    for name, node in g.nodes.items():
        if isinstance(node, SYNAPTIC):
            targets = succs[name]
            while len(targets) == 1 and targets[0] in view.delays:  # a Delay passes the current on, later
                targets = succs[targets[0]]
            if len(targets) != 1 or not (isinstance(g.nodes[targets[0]], nir.Output) or
                                         getattr(view.models.get(targets[0]), "kind", None) in QUANTIZABLE):
                raise KdsnnError(f"node {name!r} must feed exactly one {'/'.join(QUANTIZABLE)} population or the "
                                 "Output to be quantized")
            groups.setdefault(targets[0], []).append(name)

    report: dict[str, Any] = {}
    output_scale = 1.0
    for target, layers in groups.items():
        gain = _gain(view, target) if target in view.models else 1.0
        s_in = {layer: sig[preds[layer][0]] * gain for layer in layers}  # the gain folded in with the input step
        # a population summing analog input and spikes (a recurrent first layer): the spike synapses set the
        # k-bit scale, then a per-layer weight exponent 2^e (Loihi's) refines the current so that the analog
        # synapse, whose input is quantized too, keeps close to k bits of its own: the largest e that leaves its
        # weights within the k-bit range (floor, so both layers fit Loihi's 8-bit mantissa)
        analog = _analog(g, preds, layers) if in_step != 1.0 else set()
        scaled = [layer for layer in layers if layer not in analog] or layers
        peak = max(float(np.abs(_weights(g.nodes[layer])).max()) * s_in[layer] for layer in scaled)
        if peak == 0:
            raise KdsnnError(f"all weights feeding {target!r} are zero; nothing to quantize")
        c = peak / qmax
        exponent = 0
        if analog and len(scaled) < len(layers):
            peak_in = max(float(np.abs(_weights(g.nodes[layer])).max()) * s_in[layer] for layer in analog)
            if 0 < peak_in < peak:
                exponent = min(WEIGHT_EXP_MAX, math.floor(math.log2(peak / peak_in)))
        if any(isinstance(g.nodes[layer], nir.Scale) for layer in layers):
            n = math.floor(1 / c)
            if n < 1:
                raise KdsnnError(f"population {target!r}: an identity shortcut cannot be represented at {bits} bits "
                                 f"(weights up to {peak:.3g}); use more bits")
            c = 1.0 / n
        c_spikes, c = c, c / 2 ** exponent
        for layer in layers:
            node = g.nodes[layer]
            if exponent and layer not in analog:  # a k-bit mantissa times 2^e
                w_int = np.round(_weights(node) * s_in[layer] / c_spikes) * 2 ** exponent
            else:
                w_int = np.round(_weights(node) * s_in[layer] / c)
            b = np.asarray(getattr(node, "bias", np.zeros(1)), dtype=np.float64)
            b_int = np.round(b * gain / c)
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
                             "weight_exponent": exponent if layer not in analog else 0,
                             "fits_loihi_bias": bias_fits(b_int)}
        tnode = g.nodes[target]
        if isinstance(tnode, nir.IF):
            th = np.asarray(tnode.v_threshold, dtype=np.float64)
            th_int = np.round(th / c)
            vr_int = np.round(np.asarray(tnode.v_reset, dtype=np.float64) / c)
            tnode.r = np.ones_like(np.asarray(tnode.r, dtype=np.float64))  # its gain r·dt is folded into the weights
            tnode.v_threshold = th_int if integer else th_int * c
            tnode.v_reset = vr_int if integer else vr_int * c
            report[target] = {"current_scale": c, "threshold_int": int(np.abs(th_int).max()),
                              "fits_loihi_threshold": threshold_fits(th_int)}
        elif target in view.models:
            report[target] = _integer_population(g, view, target, c, decays)
            if not view.models[target].spiking:
                output_scale = c  # a readout's membrane, in units c
        else:
            output_scale = c
    for name in view.delays:  # the quantized graph counts in steps (dt = 1 below); whole steps (export/delay.py)
        g.nodes[name].delay = np.round(np.asarray(g.nodes[name].delay, dtype=np.float64) / view.dt)
    if leaky or view.dt != 1.0 or view.delays:
        meta["dt"] = 1.0  # the integer decays count in steps; every gain r·dt is folded into the weights
        from .reading import get_record, set_record

        rec = get_record(g)
        if rec:
            set_record(g, {**rec, "dt": 1.0, "dt_from": f"kdsnn quantize (read at dt = {view.dt:g}; "
                                                        "integer decays per step)"})
    if view.timesteps and "timesteps" not in meta:
        meta["timesteps"] = view.timesteps
    if decays == "xylo" and leaky:
        meta["decays"] = "xylo"
    meta.update(integer=bool(integer), bits=bits, input_scale=in_step if integer else None,
                output_scale=output_scale if integer else 1.0, quantization=report)
    set_meta(g, meta)
    return g


QUANTIZABLE = ("IF", "LIF", "CubaLIF", "LI")


def _fold_avg_pools(g: nir.NIRGraph, view: GraphView) -> bool:
    """Each AvgPool2d (another tool's graph) as a SumPool2d with its 1/(kh·kw) moved into the synapses after it,
    in place: the same linear map, and an integer graph holds only sums. Refused where a pool has padding (its
    divisor then varies at the borders) or feeds anything but Flatten and synapses."""
    pools = [n for n, node in g.nodes.items() if isinstance(node, nir.AvgPool2d)]
    for name in pools:
        node = g.nodes[name]
        k = np.array(pair(node.kernel_size, "kernel_size", name))
        if np.any(np.array(pair(node.padding, "padding", name)) != 0):
            raise KdsnnError(f"node {name!r}: an AvgPool2d with padding divides by fewer elements at the borders; "
                             "it cannot be folded into the next layer for quantization")
        divisor = float(np.prod(k))
        front, seen = list(view.succs[name]), set()
        while front:
            n = front.pop()
            if n in seen:
                continue
            seen.add(n)
            nxt = g.nodes[n]
            if isinstance(nxt, nir.Flatten):
                front += view.succs[n]
            elif isinstance(nxt, nir.Scale):
                nxt.scale = np.asarray(nxt.scale, dtype=np.float64) / divisor
            elif isinstance(nxt, SYNAPTIC):
                nxt.weight = np.asarray(nxt.weight, dtype=np.float64) / divisor
            else:
                raise KdsnnError(f"node {name!r}: AvgPool2d feeds {n!r} ({type(nxt).__name__}), not a synapse; it "
                                 "cannot be folded into the next layer for quantization")
        g.nodes[name] = nir.SumPool2d(kernel_size=np.array(pair(node.kernel_size, "kernel_size", name)),
                                      stride=np.array(pair(node.stride, "stride", name)),
                                      padding=np.array(pair(node.padding, "padding", name)))
    return bool(pools)


def _analog(g: nir.NIRGraph, preds: dict[str, list[str]], layers: list[str]) -> set[str]:
    """The synaptic layers among ``layers`` fed (through pools/Flatten) by the analog Input."""
    from_input = _input_scales(g, preds, 0.0)  # 0 on the paths from the Input, 1 elsewhere
    return {lay for lay in layers if from_input[preds[lay][0]] == 0.0}


def _uniform(a: np.ndarray, what: str, name: str) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    if a.size and not np.allclose(a, a[0], rtol=1e-9, atol=0):
        raise KdsnnError(f"node {name!r}: {what} differs between neurons; Loihi holds one decay per population")
    return float(a[0])


def _gain(view: GraphView, name: str) -> float:
    """The gain population ``name`` integrates its input with (folded into the weights feeding it)."""
    m = view.models[name]
    if m.kind == "IF":
        return _uniform(m.gain, "the input gain r·dt", name)
    if np.any(np.asarray(m.v_leak) != 0):
        raise KdsnnError(f"{m.kind} node {name!r} leaks towards v_leak ≠ 0; Loihi's neurons have no leak potential")
    g = _uniform(m.gain, "the input gain r·dt/τ", name)
    if m.kind == "CubaLIF":
        g *= _uniform(m.syn_gain, "the current's input gain w_in·dt/τ_syn", name)
    if g <= 0:
        raise KdsnnError(f"{m.kind} node {name!r} integrates nothing (input gain {g:g}): no integer form")
    return g


def _twelve_bit(a: float, offset: int, what: str, name: str) -> int:
    k = int(round(a * 4096)) - offset
    if not 0 <= k <= 4095 or k + offset == 0:
        raise KdsnnError(f"node {name!r}: {what} = {a:g} rounds to {k + offset}/4096, outside Loihi's 12-bit decays "
                         "(1..4096)/4096")
    return k


def xylo_shift(a: float) -> int:
    """Xylo's bit-shift decay nearest ``a = dt/τ``: ``dash = round(log2(τ/dt))`` clipped to 0 … 15, as Rockpool
    chooses it (``rockpool.nn.modules.torch.lif_bitshift_torch.calc_bitshift_decay``); it decays by ``2^−dash``."""
    return int(min(XYLO_DASH_MAX, max(0, round(math.log2(1.0 / a)))))


def _xylo_population(m: Any, name: str, put: Callable[[str, Any], None]) -> dict[str, Any]:
    """A LIF population's decay as Xylo's bit shift (τ = 2^dash steps), with the error it makes in τ."""
    if m.kind != "LIF":
        raise KdsnnError(f"{m.kind} node {name!r}: Xylo's bit-shift decays are stated for LIF populations only "
                         "(quantize for Loihi's 12-bit decays instead: --target loihi2)")
    a = _uniform(m.leak, "dt/τ", name)
    if a <= 0:
        raise KdsnnError(f"LIF node {name!r} does not leak (τ = ∞); Xylo's neurons always decay (dash ≤ 15)")
    dash = xylo_shift(a)
    tau = 2.0 ** dash
    put("tau", tau)
    put("r", tau)
    return {"kind": m.kind, "dash": dash, "decay_float": a, "tau_steps_float": 1.0 / a, "tau_steps_xylo": tau,
            "tau_relative_error": tau * a - 1.0}


def _integer_population(g: nir.NIRGraph, view: GraphView, name: str, c: float,
                        decays: str = "loihi") -> dict[str, Any]:
    """Rewrite leaky population ``name`` with Loihi's 12-bit decays (or Xylo's bit shifts), unit gains at dt = 1,
    θ and v_reset in units ``c``; what was rounded goes into the report. Every parameter keeps the shape the file
    gave it."""
    m, node = view.models[name], g.nodes[name]

    def put(field: str, value: Any) -> None:
        old = np.asarray(getattr(node, field, None) if getattr(node, field, None) is not None else 0.0, dtype=float)
        setattr(node, field, np.broadcast_to(np.asarray(value, dtype=np.float64), old.shape).copy())

    if decays == "xylo":
        rep = {"current_scale": c, **_xylo_population(m, name, put)}
        put("v_leak", 0.0)
        return rep | _integer_levels(node, m, c, put)
    dv = _twelve_bit(_uniform(m.leak, "dt/τ", name), 0, "dt/τ_mem" if m.kind == "CubaLIF" else "dt/τ", name)
    tau = 4096.0 / dv
    rep: dict[str, Any] = {"current_scale": c, "kind": m.kind, "dv": dv, "decay_float": float(m.leak.flat[0])}
    if m.kind == "CubaLIF":
        du = _twelve_bit(_uniform(m.syn_leak, "dt/τ_syn", name), 1, "dt/τ_syn", name)
        tau_syn = 4096.0 / (du + 1)
        for field, value in (("tau_syn", tau_syn), ("w_in", tau_syn), ("tau_mem", tau), ("r", tau)):
            put(field, value)
        rep.update(du=du, syn_decay_float=float(m.syn_leak.flat[0]))
    else:
        put("tau", tau)
        put("r", tau)
    put("v_leak", 0.0)
    return rep | _integer_levels(node, m, c, put)


def _integer_levels(node: nir.NIRNode, m: Any, c: float, put: Callable[[str, Any], None]) -> dict[str, Any]:
    """θ and v_reset of a spiking leaky population in units ``c``, rounded; their report entries."""
    if not m.spiking:
        return {}
    th = np.round(np.asarray(node.v_threshold, dtype=np.float64) / c)
    node.v_threshold = th
    vr = getattr(node, "v_reset", None)
    put("v_reset", np.round(np.asarray(0.0 if vr is None else vr, dtype=np.float64) / c))
    return {"threshold_int": int(np.abs(th).max()), "fits_loihi_threshold": threshold_fits(th)}


# what each fit flag checks, in the words of kdsnn map's rules for loihi2 (export/loihi.py: one rule for both);
# files quantized before the 13- and 17-bit checks carry the 24-bit flags, read as they were written
FIT_FLAGS = {
    "fits_loihi_weight": "weights are no 8-bit mantissa |m| ≤ 127 times one 2^e (0 ≤ e ≤ 7), Loihi's synapse",
    "fits_loihi_bias": "bias outside Loihi's signed 13-bit bias_mant [-4096, 4095]",
    "fits_loihi_threshold": "threshold outside Loihi's unsigned 17-bit vth [0, 131071]",
    "fits_24bit_bias": "bias beyond 24 bits",
    "fits_24bit_threshold": "threshold beyond 24 bits",
}


def range_problems(graph: nir.NIRGraph) -> list[str]:
    """Human-readable list of values Loihi cannot hold (empty when all fit): the rules ``kdsnn map`` applies
    for the loihi2 target, from the same functions (:mod:`~kdsnn.export.loihi`)."""
    problems = []
    for name, rep in get_meta(graph).get("quantization", {}).items():
        for key, what in FIT_FLAGS.items():
            if key in rep and not rep[key]:
                problems.append(f"{name}: {what}")
    return problems
