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

from kdsnn.export.graph_view import SYNAPTIC, GraphView, conv_pads, pair

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
                             "events: train with --encoding bernoulli (or feed events from a sensor)"))
    if not view.integer:
        out.append(Violation("graph", "integer", f"float weights and thresholds; {target.name} runs integers: "
                             "quantize first (kdsnn quantize --bits 8, or export the integer graph)"))
        return out
    out += _range_rules(view, target)
    bits = target.get("precision", "state_bits")
    if bits and max_membrane:
        for p, v in max_membrane.items():
            if v >= 2 ** (bits - 1):
                out.append(Violation(p, "state_bits", f"membrane reached {v:.0f} in simulation, beyond the "
                                     f"{bits}-bit state of {target.name}: quantize with fewer bits"))
    return out


def _range_rules(view: GraphView, target: Target) -> list[Violation]:
    out: list[Violation] = []
    wmin, wmax = target.get("precision", "weight_min"), target.get("precision", "weight_max")
    bits = _bits_for(wmin, wmax)
    shift = target.get("precision", "fixed_point_shift", 0)
    bmax = target.get("precision", "bias_max")
    tmin, tmax = target.get("precision", "threshold_min"), target.get("precision", "threshold_max")
    for name in view.order:
        node = view.nodes[name]
        if isinstance(node, SYNAPTIC):
            w = np.asarray(node.scale if isinstance(node, nir.Scale) else node.weight, dtype=np.float64)
            lo, hi = float(w.min()), float(w.max())
            if (wmin is not None and lo < wmin) or (wmax is not None and hi > wmax):
                out.append(Violation(name, "weight_range", f"integer weights span [{lo:.0f}, {hi:.0f}]; {target.name} "
                                     f"holds [{wmin}, {wmax}]: quantize with --bits {bits}"))
            b = np.asarray(getattr(node, "bias", 0.0), dtype=np.float64)
            if bmax is not None and b.size and float(np.abs(b).max()) * 2 ** shift > bmax:
                out.append(Violation(name, "bias_range", f"integer bias up to {float(np.abs(b).max()):.0f}"
                                     + (f" (× 2^{shift} = {float(np.abs(b).max()) * 2 ** shift:.0f})" if shift else "")
                                     + f" beyond {target.name}'s {bmax}: quantize with fewer bits"))
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
    if cond == ">=" and view.populations:
        out.append(f"{target.name} fires at v ≥ θ, kdsnn at v > θ: program every threshold as θ + 1 "
                   "(exact on integer graphs)" if view.integer else
                   f"{target.name} fires at v ≥ θ, kdsnn at v > θ: spikes differ where v equals θ")
    many = target.get("neuron", "max_spikes_per_step")
    if many and many > 1 and view.populations:
        out.append(f"{target.name}'s neurons may emit up to {many} spikes per step (reset by subtraction); "
                   "kdsnn's IF emits one: spikes differ wherever v exceeds 2θ")
    ai = target.get("neuron", "analog_input")
    if view.encoding == "direct":
        if ai == "host":
            out.append(f"the analog first layer runs on the host, not on {target.name} "
                       "(its MACs are priced as host MACs)")
        elif ai == "counts":
            out.append(f"{target.name} takes input as event counts per channel and step: the analog input must "
                       "be integer counts within the chip's per-step limit")
    if target.get("neuron", "exact_if") is False and view.populations:
        out.append(f"{target.name} runs IF only approximately: {target.source('neuron', 'exact_if')}")
    return out


# ----------------------------------------------------------------------------- per kind

def speck_layer(view: GraphView, pop: str, target: Target) -> tuple[dict[str, Any] | None, list[Violation]]:
    """The conv a Speck layer would run for ``pop`` (c, f, kernel, output size), and the rules it breaks."""
    out: list[Violation] = []
    syns = view.preds[pop]
    if len(syns) != 1:
        out.append(Violation(pop, "residual", f"sums {len(syns)} inputs ({', '.join(syns)}); a Speck layer applies "
                             "one convolution to every event it receives: use a network without residual sums"))
        return None, out
    syn = syns[0]
    node = view.nodes[syn]
    if not isinstance(node, (nir.Conv2d, nir.Affine, nir.Linear)):
        out.append(Violation(syn, "layer_type", f"{type(node).__name__} feeding {pop}; a Speck layer starts with a "
                             "convolution or a linear layer"))
        return None, out
    paths = view.paths_into(syn)
    if len(paths) != 1:
        out.append(Violation(syn, "residual", f"sums {len(paths)} inputs before its synapse; a Speck layer applies "
                             "one convolution to every event it receives: use a network without residual sums"))
        return None, out
    between = paths[0].nodes
    for b in between:
        bn = view.nodes[b]
        if isinstance(bn, nir.AvgPool2d):
            out.append(Violation(b, "pooling",
                                 "average pooling; Speck sums: export with sum pooling (kdsnn's exporter does)"))
        elif isinstance(bn, nir.SumPool2d):
            k, s, p = (pair(bn.kernel_size, "kernel_size", b), pair(bn.stride, "stride", b),
                       pair(bn.padding, "padding", b))
            sizes = target.get("limits", "pool_sizes")
            if k[0] != k[1] or (sizes and k[0] not in sizes) or s != k or p != (0, 0):
                out.append(Violation(b, "pooling",
                                     f"pooling {k[0]}×{k[1]} stride {s[0]}×{s[1]} padding {p[0]}; Speck pools "
                                     f"square windows of {', '.join(map(str, sizes or []))} with stride = size, "
                                     "no padding"))
    lim = target.get
    kmax, cmax = lim("limits", "max_kernel_size"), lim("limits", "max_channels")
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight)
        f, c, kh, kw = (int(v) for v in w.shape)
        in_hw, out_hw = view.shape[view.preds[syn][0]][1:], view.shape[syn][1:]
        stride, pad = pair(node.stride, "stride", syn), conv_pads(node, syn)
        if kh != kw or (kmax and kh > kmax):
            out.append(Violation(syn, "kernel", f"kernel {kh}×{kw}; Speck needs square kernels up to {kmax}×{kmax}"))
        strides = lim("limits", "strides")
        if strides and any(s not in strides for s in stride):
            out.append(Violation(syn, "stride",
                                 f"stride {stride[0]}×{stride[1]}; Speck strides are {', '.join(map(str, strides))}"))
        pmax = lim("limits", "max_padding")
        if pmax is not None and max(pad) > pmax:
            out.append(Violation(syn, "padding", f"padding {max(pad)}; Speck pads at most {pmax}"))
        if int(getattr(node, "groups", 1)) != 1 or pair(node.dilation, "dilation", syn) != (1, 1):
            out.append(Violation(syn, "conv", "grouped or dilated convolution; Speck runs plain convolutions"))
    else:
        w = np.asarray(node.weight)
        f = int(w.shape[0])
        flat = [b for b in between if isinstance(view.nodes[b], nir.Flatten)]
        src_shape = view.shape[view.preds[flat[0]][0]] if flat else view.shape[view.preds[syn][0]]
        if len(src_shape) == 3:
            c, kh, kw = src_shape
        else:
            c, kh, kw = int(np.prod(src_shape)), 1, 1
        in_hw, out_hw = (kh, kw), (1, 1)
        if kh != kw or (kmax and kh > kmax):
            out.append(Violation(syn, "kernel", f"a linear layer on a {kh}×{kw} map becomes a {kh}×{kw} convolution; "
                                 f"Speck needs square kernels up to {kmax}: pool the map further before it"))
    if cmax and (c > cmax or f > cmax):
        out.append(Violation(syn, "channels",
                             f"{c} input / {f} output channels; Speck has at most {cmax}: reduce the width"))
    imax, omax = lim("limits", "max_input_size"), lim("limits", "max_output_size")
    if imax and max(in_hw) > imax:
        out.append(Violation(syn, "input_size",
                             f"input map {in_hw[0]}×{in_hw[1]}; a Speck layer takes at most {imax}×{imax}"))
    if omax and max(out_hw) > omax:
        out.append(Violation(syn, "output_size", f"output map {out_hw[0]}×{out_hw[1]}; a Speck layer outputs at most "
                             f"{omax}×{omax}: add stride or pooling before it"))
    need = speck_memory(c, f, (kh, kw), tuple(out_hw))
    return {"synaptic": syn, "c": c, "f": f, "kernel": (kh, kw), "out_hw": tuple(out_hw), **need}, out


def speck_memory(c: int, f: int, kernel: tuple[int, int], out_hw: tuple[int, int]) -> dict[str, int]:
    """Memory entries a DYNAP-CNN layer needs (Sinabs' ``DynapcnnLayer.memory_summary``, SynSense docs):

    kernel = c · 2^(⌈log2(kx·ky)⌉ + ⌈log2 f⌉), neuron = f · 2^(⌈log2 fy⌉ + ⌈log2 fx⌉), bias = f.
    """
    def clog2(n: int) -> int:
        return int(math.ceil(math.log2(n))) if n > 1 else 0

    return {"kernel_memory": c * 2 ** (clog2(kernel[0] * kernel[1]) + clog2(f)),
            "neuron_memory": f * 2 ** (clog2(out_hw[0]) + clog2(out_hw[1])), "bias_memory": f}


def layer_rules(view: GraphView, target: Target) -> tuple[dict[str, dict[str, Any]], list[Violation]]:
    """Speck-like targets: one layer per population, its conv within the layer limits."""
    out: list[Violation] = []
    layers: dict[str, dict[str, Any]] = {}
    for p in view.populations:
        spec, v = speck_layer(view, p, target)
        out += v
        if spec is not None:
            layers[p] = spec
    for p in view.preds[view.output]:
        if p not in view.populations:
            out.append(Violation(p, "readout", f"{p} feeds the Output without neurons (membrane readout); Speck layers "
                                 "always spike: train with --readout spike"))
    dmax = target.get("limits", "max_destinations")
    for src in [view.input, *view.populations]:
        dests = {d for d in view.populations if src in _sources(view, d)}
        if dmax and src != view.input and len(dests) > dmax:
            out.append(Violation(src, "fan_out",
                                 f"feeds {len(dests)} layers ({', '.join(sorted(dests))}); a Speck layer "
                                 f"has at most {dmax} destinations"))
    n = target.get("limits", "layers")
    if n and len(view.populations) > n:
        out.append(Violation("graph", "layers", f"{len(view.populations)} neuron layers; {target.name} has {n}: "
                             "use fewer layers"))
    return layers, out


def _sources(view: GraphView, pop: str) -> set[str]:
    """The populations (or the Input) whose events reach population ``pop``."""
    return {path.source for path in view.paths_into(pop)}


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
        sizes = ", ".join(f"{p} {int(np.prod(view.shape[p]))}" for p in hidden)
        out.append(Violation(hidden[0] if hidden else "graph", "hidden_neurons", f"{n_hid} hidden neurons ({sizes}); "
                             f"{target.name} has {lim('limits', 'hidden_neurons')}: reduce the width"))
    n_out = sum(int(np.prod(view.shape[p])) for p in output)
    if lim("limits", "output_neurons") and n_out > lim("limits", "output_neurons"):
        out.append(Violation(output[0] if output else "graph", "output_neurons", f"{n_out} output neurons; "
                             f"{target.name} has {lim('limits', 'output_neurons')}: fewer classes"))
    need = lim("limits", "min_neuron_layers")
    if need and len(hidden) + len(output) < need:
        out.append(Violation("graph", "neuron_layers", f"{len(hidden) + len(output)} neuron layer(s); {target.name} "
                             f"needs at least {need} (hidden and output)"))
    return out
