"""``kdsnn quantize FILE.nir``: a float NIR graph (any tool's; IF, LIF, CubaLIF, LI, recurrent) to integers.

The user's ``--inputs`` calibrate the input step and are run through both graphs, float and integer,
so the command reports how far quantization moved the network on the user's own data: the share of
samples whose class (argmax of the logits) is unchanged, and per population the spike counts of both
and the mean absolute difference per sample. ``--target xylo`` gives LIF populations Xylo's
bit-shift decays instead of Loihi's 12-bit fractions, each with the error it makes in τ. The integer
file then runs bit-exact on every integer backend (the graph runtime, the simulator, Lava; Xylo's decays
on the first two, Lava refusing them in one line).
"""
from __future__ import annotations

import argparse
from typing import Any

import torch

from kdsnn.errors import KdsnnError

from . import nir_io
from .graph import get_meta, set_meta
from .graph_view import GraphView
from .quantize import quantize_graph, range_problems
from .runtime import GraphSNN


def _inputs(a: argparse.Namespace, view: GraphView) -> tuple[torch.Tensor, int]:
    """``--inputs`` as ``[N, ...]`` (fed at every step) or ``[T, N, ...]``, and T."""
    from kdsnn import data

    if not a.inputs:
        raise KdsnnError("quantizing a NIR file needs --inputs X.npy: samples to calibrate the input step and to "
                         "compare the float and integer graphs on ([N, ...], or [T, N, ...] sequences)")
    x, _ = data.load_inputs(a.inputs)
    n_in = len(view.input_shape)
    if x.dim() == n_in + 2 and tuple(x.shape[2:]) == view.input_shape:
        if a.timesteps and a.timesteps != x.shape[0]:
            raise KdsnnError(f"--inputs holds {x.shape[0]} steps but --timesteps {a.timesteps} was given")
        return x, int(x.shape[0])
    if x.dim() == n_in + 1 and tuple(x.shape[1:]) == view.input_shape:
        t = a.timesteps or view.timesteps
        if not t:
            raise KdsnnError("the graph records no T: give --timesteps T (or [T, N, ...] --inputs)")
        return x, int(t)
    raise KdsnnError(f"--inputs {a.inputs} has shape {list(x.shape)}; the graph takes [N, "
                     f"{', '.join(map(str, view.input_shape))}] or [T, N, ...]")


def agreement(float_graph: Any, int_graph: Any, x: torch.Tensor) -> dict[str, Any]:
    """Float against integer on ``x``: same class share, per-population spike counts and mean |Δ| per sample."""
    with torch.no_grad():
        fl, qi = GraphSNN(float_graph).run(x), GraphSNN(int_graph).run(x)
    same = float((fl.logits.argmax(1) == qi.logits.argmax(1)).double().mean())
    pops = {}
    for name in GraphView.of(int_graph).populations:
        a, b = fl.outputs[name].double(), qi.outputs[name].double()
        per_sample = (a.sum(0) - b.sum(0)).flatten(1).abs().sum(1)
        pops[name] = {"float_spikes": float(a.sum()), "integer_spikes": float(b.sum()),
                      "mean_abs_difference_per_sample": float(per_sample.mean())}
    return {"same_class": same, "samples": int(fl.logits.shape[0]), "populations": pops}


def quantize_file(a: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Read, quantize, compare and write; returns (JSON result, text)."""
    from kdsnn.outputs import check_file

    if not a.out:
        raise KdsnnError("--out is required")
    if getattr(a, "float", False):
        raise KdsnnError("a NIR file is quantized to integers (Loihi's 12-bit decays); --float applies to checkpoints")
    if a.checkpoint:
        raise KdsnnError("give a NIR file or --checkpoint, not both")
    if a.dataset is not None or a.data_root is not None:  # they were ignored: the file is calibrated on --inputs
        raise KdsnnError(f"{'--dataset' if a.dataset is not None else '--data-root'} goes with --checkpoint; a NIR "
                         "file is calibrated and compared on your --inputs")
    check_file(a.out, "--out", {"the NIR file": a.graph, "--inputs": a.inputs}, a.force)
    graph = nir_io.read(a.graph, a.dt, a.legacy_if_reset)
    view = GraphView.of(graph, a.timesteps)
    x, t = _inputs(a, view)
    set_meta(view.graph, {**get_meta(view.graph), "timesteps": t})
    spikes_only = bool(((x == 0) | (x == 1)).all()) and x.dim() == len(view.input_shape) + 2
    qmax = 2 ** (a.bits - 1) - 1
    # spike input keeps its step 1; analog input is quantized over its range
    calibration = float(qmax) if spikes_only else float(x.abs().max())
    if calibration == 0:
        raise KdsnnError(f"--inputs {a.inputs} holds only zeros; nothing to calibrate the input step with")
    xylo = getattr(a, "target", "loihi2") == "xylo"
    q = quantize_graph(view.graph, a.bits, integer=True, calibration_max=calibration,
                       decays="xylo" if xylo else "loihi")
    report = agreement(view.graph, q, x)
    path = nir_io.write(q, a.out)
    problems = range_problems(q)
    result = {"out": str(path), "bits": a.bits, "integer": True, "timesteps": t, "agreement": report,
              "range_problems": problems}
    decays = "Xylo's bit shifts" if xylo else "Loihi's 12-bit fractions"
    lines = [f"wrote {path} ({a.bits}-bit integer, T = {t}, decays as {decays})",
             f"float vs integer on your {report['samples']} inputs: same class on {100 * report['same_class']:.1f} %"]
    for name, p in report["populations"].items():
        lines.append(f"  {name}: spikes float {p['float_spikes']:.0f}, integer {p['integer_spikes']:.0f}, "
                     f"mean |Δ| per sample {p['mean_abs_difference_per_sample']:.2f}")
    quant = get_meta(q).get("quantization", {})
    shifts = {n: r for n, r in quant.items() if "dash" in r}
    if shifts:
        lines.append("Xylo bit-shift decays (the nearest 2^−dash, as Rockpool picks it):")
    for name, r in shifts.items():
        lines.append(f"  {name}: dt/τ {r['decay_float']:.4g} → dash {r['dash']} (τ {r['tau_steps_float']:.4g} → "
                     f"{r['tau_steps_xylo']:.0f} steps, {100 * r['tau_relative_error']:+.1f} % in τ)")
    result["decays"] = "xylo" if xylo else "loihi"
    result["bit_shifts"] = {n: {k: r[k] for k in ("dash", "decay_float", "tau_steps_float", "tau_steps_xylo",
                                                  "tau_relative_error")} for n, r in shifts.items()}
    if xylo:
        lines.append("ranges: Xylo's are checked by kdsnn map --target xylo")
    else:
        lines.append("range problems:\n  " + "\n  ".join(problems) if problems
                     else "ranges: every weight, bias and threshold fits Loihi's")
    return result, "\n".join(lines)
