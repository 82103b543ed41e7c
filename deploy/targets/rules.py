"""The rules a hardware target imposes on a deployable graph, each broken rule named by node.

Three families, one per target kind (``deploy/targets/spec.py``), plus the rules every
target shares (neuron model, reset, integer ranges, input encoding). Every message says
which node breaks the rule and what to change. :func:`compatibility` says whether the
integer graph kdsnn checks is the one the target would run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from kdsnn.errors import KdsnnError
from kdsnn.export.delay import path_delay
from kdsnn.export.graph_view import SYNAPTIC, GraphView
from kdsnn.export.loihi import weight_exponent
from kdsnn.neuron_models import xylo_dash

from . import speck
from .spec import Target


@dataclass(frozen=True)
class Violation:
    """One broken rule: the node, the rule's short name, and a sentence saying what to change."""

    node: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.node}: {self.message}"


def _bits_for(lo: int | None, hi: int | None) -> int | None:
    """Quantization bits whose symmetric range ±(2^(b−1)−1) fits inside [lo, hi]."""
    if lo is None and hi is None:
        return None
    m = min(v for v in (hi, -lo if lo is not None else None) if v is not None)
    return max(2, int(math.floor(math.log2(m + 1))) + 1)


def reset_mode(view: GraphView, name: str) -> str:
    """``zero`` (reset to 0), ``subtract`` (reset by θ) or ``to v_reset=…``, as population ``name``'s model runs."""
    model = view.models[name]
    if model.reset == "soft":
        return "subtract"
    vr = np.asarray(getattr(model, "v_reset", 0.0), dtype=np.float64)  # a non-spiking readout never resets
    return "zero" if np.all(vr == 0) else f"to v_reset={float(vr.ravel()[0]):g}"


# ----------------------------------------------------------------------------- shared rules

def common_rules(view: GraphView, target: Target, max_membrane: dict[str, float] | None = None) -> list[Violation]:
    """Neuron model, reset, integer ranges and input encoding: the rules every target has."""
    out: list[Violation] = []
    models = target.get("neuron", "models")
    resets = target.get("neuron", "resets")
    for p in view.populations:
        m = view.models[p].kind
        if models is not None and m not in models:
            out.append(Violation(p, "neuron_model", f"{m} neurons; {target.name} runs {', '.join(models)}: "
                                 f"train the student with one of those neuron models"))
        r = reset_mode(view, p)
        if resets is not None and r not in resets:
            fix = "--reset soft" if "subtract" in resets else "--reset hard (reset to 0)"
            out.append(Violation(p, "reset", f"resets {r}; {target.name} resets only {' or '.join(resets)}: "
                                 f"train with {fix}"))
    if view.encoding == "direct" and target.get("neuron", "analog_input") == "none":
        out.append(Violation(view.input, "analog_input", f"direct-encoded analog input; {target.name} takes only "
                             "events: train with --encoding bernoulli, or on an event data set "
                             "(--dataset nmnist, dvsgesture)"))
    out += decay_rules(view, target)  # float graphs too: a decay no quantization can make the chip's is named
    if not view.integer:
        out.append(Violation("graph", "integer", f"float weights and thresholds; {target.name} runs integers: "
                             "quantize first (kdsnn quantize --bits 8, or export the integer graph)"))
        return out
    out += _range_rules(view, target)
    out += delay_rules(view, target)
    bits = target.get("precision", "state_bits")
    if bits and max_membrane:
        for p, v in max_membrane.items():
            if v >= 2 ** (bits - 1):
                out.append(Violation(p, "state_bits", f"membrane reached {v:.0f} in simulation, beyond the "
                                     f"{bits}-bit state of {target.name}: quantize with fewer bits"))
    return out


def delay_rules(view: GraphView, target: Target) -> list[Violation]:
    """A ``Delay`` is a synaptic delay on the chip: placed when the target has them (``limits.max_synaptic_delay``,
    in steps, the delays along each connection summed), refused where it has none."""
    if not view.delays:
        return []
    limit = target.get("limits", "max_synaptic_delay")
    if limit is None:
        return [Violation(name, "delay", f"a Delay of up to {int(d.max())} step(s); {target.name} has no synaptic "
                          "delays: remove it, or run the graph where delays are (loihi2, the simulator)")
                for name, d in view.delays.items()]
    out = []
    for name in [*view.populations, view.output]:
        for path in view.paths_into(name):
            try:
                d = path_delay(view, path)
            except KdsnnError as exc:
                out.append(Violation(path.nodes[-1], "delay", f"{exc}"))
                continue
            if d is not None and int(d.max()) > limit:
                node = next(q for q in path.nodes if q in view.delays)
                out.append(Violation(node, "delay", f"delays {path.source!r}'s spikes by up to {int(d.max())} steps; "
                                     f"{target.name} delays a synapse by at most {limit}: shorten the delay"))
    return out


def decay_rules(view: GraphView, target: Target) -> list[Violation]:
    """Leaky populations' decays as the target states them (``neuron.decay``): Xylo's bit shift (``v >> dash``,
    ``dt/τ = 2^−dash``, 0 ≤ dash ≤ 15) or Loihi's 12-bit fraction (Lava's ``dv/4096``). A decay the chip cannot
    hold, or an integer graph whose decays follow the other chip's rounding, would run differently there."""
    rule = target.get("neuron", "decay")
    if rule is None:
        return []
    out: list[Violation] = []
    for p in view.populations:
        rates = [np.asarray(a, dtype=np.float64) for a in view.models[p].decay_rates()]
        if not rates:  # IF: no leak to state
            continue
        if rule == "bit_shift":
            for a in rates:
                if xylo_dash(a) is None:
                    out.append(Violation(p, "decay", f"{_decay_text(a)} is not a bit-shift decay 2^−dash (dash 0-15); "
                                         f"{target.name} decays only so: {_nearest_shift(a)}"))
                    break
            else:
                if view.integer and (view.models[p].kind != "LIF" or view.decays != "xylo"):
                    out.append(Violation(p, "decay", f"its integer decay follows Loihi's rounding (toward zero on a "
                                         f"1/64 grid), {target.name}'s bit shift floors: quantize the float graph "
                                         "with kdsnn quantize FILE.nir --target xylo (LIF)"))
        elif rule == "fraction12" and view.integer and view.decays == "xylo":
            out.append(Violation(p, "decay", f"the graph states Xylo's bit-shift decays; {target.name} decays by "
                                 "12-bit fractions dv/4096: quantize the float graph for it (kdsnn quantize "
                                 "FILE.nir --target loihi2)"))
    return out


def _decay_text(a: np.ndarray) -> str:
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    return f"dt/τ = {lo:g}" if lo == hi else f"dt/τ from {lo:g} to {hi:g} (one value per population)"


def _nearest_shift(a: np.ndarray) -> str:
    """How to fix a decay that is no bit shift: the nearest dash, as ``kdsnn quantize --target xylo`` picks it."""
    from kdsnn.export.quantize import xylo_shift

    v = float(a.flat[0])
    if v == 0 and np.all(a == 0):
        return "the population does not leak (τ = ∞); the longest decay is dash 15 (τ = 2^15 steps)"
    if not 0 < v <= 1 or not np.all(a == v):
        return "give the population one decay and quantize with kdsnn quantize FILE.nir --target xylo"
    dash = xylo_shift(v)
    return (f"the nearest is dash {dash} (τ {1 / v:.4g} → {2 ** dash} steps); kdsnn quantize FILE.nir --target xylo "
            "sets it")


def _range_rules(view: GraphView, target: Target) -> list[Violation]:
    out: list[Violation] = []
    wmin, wmax = target.get("precision", "weight_min"), target.get("precision", "weight_max")
    bits = _bits_for(wmin, wmax)
    emax = target.get("precision", "weight_exponent_max", 0)
    shift = target.get("precision", "fixed_point_shift", 0)
    bmax = target.get("precision", "bias_max")
    tmin, tmax = target.get("precision", "threshold_min"), target.get("precision", "threshold_max")
    for name in view.order:
        node = view.nodes[name]
        if isinstance(node, SYNAPTIC):
            w = np.asarray(node.scale if isinstance(node, nir.Scale) else node.weight, dtype=np.float64)
            lo, hi = float(w.min()), float(w.max())
            if emax:  # a mantissa in [wmin, wmax] times one shared 2^e (Loihi's synapse; export/loihi.py)
                if weight_exponent(w, -math.inf if wmin is None else wmin, math.inf if wmax is None else wmax,
                                   emax) is None:
                    out.append(Violation(name, "weight_range", f"integer weights span [{lo:.0f}, {hi:.0f}], no "
                                         f"mantissa in [{wmin}, {wmax}] times one 2^e (0 ≤ e ≤ {emax}) as "
                                         f"{target.name} holds them: quantize with --bits {bits}"))
            elif (wmin is not None and lo < wmin) or (wmax is not None and hi > wmax):
                out.append(Violation(name, "weight_range", f"integer weights span [{lo:.0f}, {hi:.0f}]; {target.name} "
                                     f"holds [{wmin}, {wmax}]: quantize with --bits {bits}"))
            b = np.asarray(getattr(node, "bias", 0.0), dtype=np.float64)
            bmin = target.get("precision", "bias_min", -bmax if bmax is not None else None)
            big = bmax is not None and b.size and float(b.max()) * 2 ** shift > bmax
            if big or (bmin is not None and b.size and float(b.min()) * 2 ** shift < bmin):
                fix = ("export with kdsnn export --for speck, whose per-layer factor (Sinabs' discretization) fits "
                       "weights, bias and threshold together" if target.kind == "layers"
                       else "quantize with fewer bits")
                out.append(Violation(name, "bias_range", f"integer bias up to {float(np.abs(b).max()):.0f}"
                                     + (f" (× 2^{shift} = {float(np.abs(b).max()) * 2 ** shift:.0f})" if shift else "")
                                     + f" beyond {target.name}'s {bmax}: {fix}"))
        elif name in view.populations:
            th = np.asarray(getattr(node, "v_threshold", 0.0), dtype=np.float64)
            if tmax is not None and float(th.max()) > tmax:
                out.append(Violation(name, "threshold_range", f"threshold {float(th.max()):.0f} beyond {target.name}'s "
                                     f"{tmax}: quantize with fewer bits (thresholds scale with 2^(bits−1))"))
            if tmin is not None and float(th.min()) < tmin:
                out.append(Violation(name, "threshold_range", f"threshold {float(th.min()):.0f} below {target.name}'s "
                                     f"minimum {tmin}"))
    return out


def compatibility(view: GraphView, target: Target, max_membrane: dict[str, float] | None = None) -> list[str]:
    """Every way the graph kdsnn checked differs from what ``target`` would run (empty: the same).

    Exact rewrites (a threshold programmed as θ + 1 for a ``v ≥ θ`` chip) are listed too,
    marked as exact, so a reader sees what the deployment must do.
    """
    out = [str(v) for v in common_rules(view, target, max_membrane)]
    cond = target.get("neuron", "spike_condition")
    soft = any(view.models[p].reset == "soft" for p in view.populations)
    if cond == ">=" and view.populations:
        if view.integer and not soft:
            out.append(f"{target.name} fires at v ≥ θ, kdsnn at v > θ: program every threshold as θ + 1 "
                       "(exact on integer graphs with reset to zero)")
        else:
            out.append(f"{target.name} fires at v ≥ θ, kdsnn at v > θ: spikes differ where v equals θ"
                       + (" (no exact rewrite: a reset by subtraction would subtract θ + 1)" if soft else ""))
    many = target.get("neuron", "max_spikes_per_step")
    if target.get("neuron", "multi_spike") and view.populations:
        out.append(f"{target.name}'s neurons may emit several spikes per step" + (f" (up to {many})" if many else "")
                   + ", subtracting θ for each; kdsnn's IF emits one: spikes differ wherever v reaches 2θ")
    elif many and many > 1 and view.populations:
        out.append(f"{target.name}'s neurons may emit up to {many} spikes per step (reset by subtraction); "
                   "kdsnn's IF emits one: spikes differ wherever v exceeds 2θ")
    out += _input_and_readout_notes(view, target)
    ai = target.get("neuron", "analog_input")
    if view.encoding == "direct":
        if ai == "host":
            out.append(f"the analog first layer runs on the host, not on {target.name} "
                       "(its MACs are priced as host MACs)")
        elif ai == "graded":
            from ..lava.plan import message_bits

            out.append(f"the analog first layer runs on {target.name}, fed the integer input as graded spikes "
                       f"(num_message_bits = {message_bits(view)}; its synaptic work is priced as SynOps, each nonzero "
                       "input value as one message from the host)")
        elif ai == "counts":
            out.append(f"{target.name} takes input as event counts per channel and step: the analog input must "
                       "be integer counts within the chip's per-step limit")
    if target.get("neuron", "exact_if") is False and view.populations:
        out.append(f"{target.name} runs IF only approximately: {target.source('neuron', 'exact_if')}")
    return out


def _input_and_readout_notes(view: GraphView, target: Target) -> list[str]:
    """Speck-like targets: can the input come from the chip's DVS, can its readout layer report the classes."""
    out: list[str] = []
    size, pols, pools = (target.get("limits", k) for k in ("dvs_size", "dvs_polarities", "dvs_pooling"))
    shape = tuple(view.shape[view.input])
    if size and pols and len(shape) == 3:
        c, h, w = shape
        fits = [p for p in (pools or [1]) if size // p >= max(h, w)]
        if c <= pols and fits:
            out.append(f"the {c}×{h}×{w} input can come from {target.name}'s {size}×{size} DVS: {c} polarity "
                       f"channel(s), sensor pooling {fits[-1]} ({size // fits[-1]}×{size // fits[-1]}) cropped to "
                       f"{h}×{w} ({target.source('limits', 'dvs_pooling')})")
        else:
            why = f"{c} channels (the DVS has {pols} polarities)" if c > pols else f"larger than {size}×{size}"
            out.append(f"the {c}×{h}×{w} input cannot come from {target.name}'s DVS ({why}): feed external events")
    classes = target.get("limits", "readout_classes")
    last = [p for p in view.preds[view.output] if p in view.populations]
    n_out = sum(int(np.prod(view.shape[p])) for p in last)
    if classes and last and n_out > classes:
        out.append(f"{n_out} output neurons: {target.name}'s readout layer reports at most {classes} classes; read the "
                   "last layer's events on the monitor bus instead")
    return out


# ----------------------------------------------------------------------------- per kind

def speck_memory(c: int, f: int, kernel: tuple[int, int], out_hw: tuple[int, int]) -> dict[str, int]:
    """Memory entries a DYNAP-CNN layer needs (:func:`kdsnn.deploy.targets.speck.memory`)."""
    return speck.memory(c, f, kernel, out_hw)


def _layer_limits(lay: speck.Layer, target: Target) -> list[Violation]:
    """The per-layer limits of a Speck-like target on one lowered layer."""
    out: list[Violation] = []
    lim = target.get
    syn, (kh, kw), (c, *in_hw), (f, *out_hw) = lay.synaptic, lay.kernel, lay.in_shape, lay.out_shape
    kmax, cmax = lim("limits", "max_kernel_size"), lim("limits", "max_channels")
    if kh != kw or (kmax and kh > kmax):
        what = "a linear layer on its input map becomes a convolution" if lay.stride == (1, 1) and \
            (kh, kw) == tuple(in_hw) and kh > 1 else "kernel"
        out.append(Violation(syn, "kernel", f"{what} {kh}×{kw}; {target.name} needs square kernels up to "
                             f"{kmax}×{kmax}" + (": pool the map further before it" if what != "kernel" else "")))
    strides = lim("limits", "strides")
    if strides and any(s not in strides for s in lay.stride):
        out.append(Violation(syn, "stride", f"stride {lay.stride[0]}×{lay.stride[1]}; {target.name} strides are "
                             f"{', '.join(map(str, strides))}"))
    pmax = lim("limits", "max_padding")
    if pmax is not None and max(lay.padding) > pmax:
        out.append(Violation(syn, "padding", f"padding {max(lay.padding)}; {target.name} pads at most {pmax}"))
    if cmax and (c > cmax or f > cmax):
        out.append(Violation(syn, "channels",
                             f"{c} input / {f} output channels; {target.name} has at most {cmax}: reduce the width"))
    imax, omax = lim("limits", "max_input_size"), lim("limits", "max_output_size")
    if imax and max(in_hw) > imax:
        out.append(Violation(syn, "input_size",
                             f"input map {in_hw[0]}×{in_hw[1]}; a {target.name} layer takes at most {imax}×{imax}"))
    if omax and max(out_hw) > omax:
        out.append(Violation(syn, "output_size", f"output map {out_hw[0]}×{out_hw[1]}; a {target.name} layer "
                             f"outputs at most {omax}×{omax}: add stride or pooling before it"))
    sizes = lim("limits", "pool_sizes")
    for src, k in lay.sources.items():
        if sizes and k not in sizes:
            out.append(Violation(lay.pool_nodes.get(src, src), "pooling",
                                 f"sum pooling {k}×{k} on the way to {lay.population}; "
                                 f"{target.name} pools {', '.join(map(str, sizes))}"))
    return out


def layer_rules(view: GraphView, target: Target) -> tuple[dict[str, dict[str, Any]], list[Violation]]:
    """Speck-like targets: the layers of the Speck lowering (:mod:`kdsnn.deploy.targets.speck`), each within
    the layer limits; destinations, layer count, readout and the event input."""
    net = speck.lower(view, discretized=False)
    out = [Violation(n, r, m) for n, r, m in net.problems]
    layers: dict[str, dict[str, Any]] = {}
    for lay in net.layers:
        out += _layer_limits(lay, target)
        layers[lay.population] = {"synaptic": lay.synaptic, "c": lay.in_shape[0], "f": lay.out_shape[0],
                                  "kernel": lay.kernel, "out_hw": lay.out_shape[1:], "sources": dict(lay.sources),
                                  **lay.memory}
    for p in view.preds[view.output]:
        if p not in view.populations:
            out.append(Violation(p, "readout", f"{p} feeds the Output without neurons (membrane readout); Speck layers "
                                 "always spike: train with --readout spike"))
    dmax = target.get("limits", "max_destinations")
    for lay in net.layers:
        if dmax and len(lay.destinations) > dmax:
            out.append(Violation(lay.population, "fan_out",
                                 f"feeds {len(lay.destinations)} layers ({', '.join(sorted(lay.destinations))}); a "
                                 f"{target.name} layer has at most {dmax} destinations"))
    n = target.get("limits", "layers")
    if n and len(view.populations) > n:
        out.append(Violation("graph", "layers", f"{len(view.populations)} neuron layers; {target.name} has {n}: "
                             "use fewer layers"))
    return layers, out


def dense_rules(view: GraphView, target: Target, hidden: list[str], output: list[str]) -> list[Violation]:
    """Xylo-like targets: input channels, hidden and output neuron counts."""
    out: list[Violation] = []
    lim = target.get
    n_in = int(np.prod(view.shape[view.input]))
    if lim("limits", "input_channels") and n_in > lim("limits", "input_channels"):
        out.append(Violation(view.input, "input_channels", f"{n_in} input elements (shape {view.shape[view.input]}); "
                             f"{target.name} has {lim('limits', 'input_channels')} input channels: reduce the input"))
    n_hid = sum(int(np.prod(view.shape[p])) for p in hidden)
    if lim("limits", "hidden_neurons") and n_hid > lim("limits", "hidden_neurons"):
        sizes = ", ".join(f"{p} {int(np.prod(view.shape[p])):,}" for p in hidden)
        # a total over several populations belongs to the graph, not to the first of them
        out.append(Violation(hidden[0] if len(hidden) == 1 else "graph", "hidden_neurons",
                             f"{n_hid:,} hidden neurons ({sizes}); {target.name} has "
                             f"{lim('limits', 'hidden_neurons'):,}: reduce the width"))
    n_out = sum(int(np.prod(view.shape[p])) for p in output)
    if lim("limits", "output_neurons") and n_out > lim("limits", "output_neurons"):
        out.append(Violation(output[0] if len(output) == 1 else "graph", "output_neurons", f"{n_out:,} output neurons; "
                             f"{target.name} has {lim('limits', 'output_neurons')}: fewer classes"))
    need = lim("limits", "min_neuron_layers")
    if need and len(hidden) + len(output) < need:
        out.append(Violation("graph", "neuron_layers", f"{len(hidden) + len(output)} neuron layer(s); {target.name} "
                             f"needs at least {need} (hidden and output)"))
    return out
