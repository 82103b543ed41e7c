"""Lava's process-graph route: build Lava processes from a :class:`LavaGraphPlan` and run them.

Populations are ``LIFReset`` processes with their model's decays (IF: ``du = 4095, dv = 0``;
integer LIF/CubaLIF: their 12-bit ``du``, ``dv``; relays plain IF-like ``LIF``); connections are Lava's ``Conv``
(weights flipped and laid out as Lava's ``(C_out, W, H, C_in)``, as netx does), ``Dense`` over
the ``C, H, W`` flattening of a map (``transpose([2, 1, 0]).flatten()``, as netx does) and
``Sparse`` diagonals over Lava's own flattening of a map. Dense and Sparse weights go in as
``(2w, weight_exp = −1)`` (:func:`kdsnn.export.loihi.lava_weights`), Conv weights as they are
(Lava's fixed-point Conv uses them unscaled). Sample ``b``'s step ``t`` leaves the host's
source at Lava time ``b·T + t + 1`` and population ``P`` emits its spikes for it at
``b·T + t + 1 + lag(P)``; every sink is re-aligned by its population's lag. With graded input the
source sends the integer input itself (``encode``: ``round(x / input_scale)``) and the first
connection takes it with ``num_message_bits`` set; its currents and membranes are checked on the
actual inputs against Loihi's 24 bits.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import replace

import numpy as np
import torch

from kdsnn.errors import KdsnnError
from kdsnn.export.encoding import encode
from kdsnn.export.graph_view import GraphView
from kdsnn.export.loihi import BIAS_EXP, DU, STATE_MAX, V_DECAY, lava_weights

from .plan import Connection, LavaGraphPlan
from .runtime import (
    LavaRun,
    aligned,
    host_first_layer,
    host_readout,
    lava_layout,
    lava_shape,
    membrane_extremes,
    source_data,
    stream,
    synapse_current,
)


def run_graph(view: GraphView, plan: LavaGraphPlan, x: torch.Tensor, progress: bool,
              conv_model: str = "kdsnn") -> LavaRun:
    """Run ``plan`` (of ``view``) as Lava processes on ``x`` (``conv_model``: :func:`.runtime.stream`'s); see the
    module docstring."""
    T = plan.timesteps
    host = (graded_input(view, x) if plan.graded_input
            else host_first_layer(view, plan.host_nodes, x, plan.host_feedback))
    batch = host.shape[1]
    # a recurrent connection would carry a sample's last spikes into the next sample: one runtime per sample
    parts = [host.numpy()[:, b:b + 1] for b in range(batch)] if plan.recurrent else [host.numpy()]
    activity = {plan.host_neuron: host.numpy()}  # what each connection's origin sends (the Input's values too)
    lags = {pop.name: pop.lag for pop in plan.neurons}
    got: dict[str, list[np.ndarray]] = {pop.name: [] for pop in plan.neurons}
    startup = run_s = 0.0
    steps = 0
    for part in parts:
        raw, up, per_sample, n = _simulate(plan, part, progress and len(parts) == 1, conv_model)
        startup, run_s, steps = startup + up, run_s + per_sample * part.shape[1], steps + n
        for pop in plan.neurons:
            got[pop.name].append(aligned(raw[pop.name], pop.lag, T, part.shape[1], pop.shape))
    for pop in plan.neurons:
        activity[pop.name] = np.concatenate(got[pop.name], axis=1)
    per_sample = run_s / batch
    extremes = {}
    for pop in plan.neurons:
        if pop.warnings or pop.kind == "CubaLIF":  # a decaying current can outgrow one step's worst case
            cur = sum(synapse_current(c.synapse, torch.as_tensor(activity[c.origin]))
                      for c in plan.connections if c.target == pop.name)
            extremes[pop.name] = membrane_extremes(pop.name, cur, pop.threshold, view.models[pop.name])
    for c in plan.connections:
        if c.message_bits:
            check_graded_sums(c, torch.as_tensor(activity[c.origin]))
    spikes = {name: activity[name] for name in [*([] if plan.graded_input else [plan.host_neuron]), *lags]}
    logits = host_readout(view, plan.readout_nodes, torch.as_tensor(spikes[plan.readout_source]))
    host_nodes = [] if plan.graded_input else [plan.host_neuron]
    return LavaRun(logits, spikes, host_nodes, lags, startup, per_sample, steps, extremes, "process-graph")


# the width Lava's bit-accurate connection models declare for what they send (a_out): Conv's PyConvModelFixed 24 bits,
# Dense's PyDenseModelBitAcc 16 bits (lava/proc/conv/models.py, lava/proc/dense/models.py)
A_OUT_BITS = {"conv": 24, "dense": 16, "scale": 16}


def check_graded_sums(conn: Connection, values: torch.Tensor) -> None:
    """Refuse a graded connection whose weighted sums (bias apart: Lava adds it in the neuron) leave the width
    its Lava model declares for them; Lava's Python models do not clip, the chip's message would not hold them."""
    syn = replace(conn.synapse, bias=np.zeros_like(np.asarray(conn.synapse.bias)))
    peak = float(synapse_current(syn, values).abs().max())
    bits = A_OUT_BITS[syn.kind]
    limit = 2 ** (bits - 1) - 1
    if peak > limit:
        raise KdsnnError(f"the graded first connection into {conn.target!r} sums to {peak:.0f} on these inputs, "
                         f"beyond the {bits}-bit output of Lava's {syn.kind} model (|a| ≤ {limit}); run the first "
                         "layer on the host (drop graded input) or quantize with fewer bits")


def graded_input(view: GraphView, x: torch.Tensor) -> torch.Tensor:
    """The integer input ``[T, B, ...]`` the host sends as graded spikes (what the first synapse reads), refused
    beyond the 24 bits Loihi's state holds."""
    seq = encode(view, x)
    if seq.shape[1] == 0:
        raise KdsnnError("empty batch: give at least one input")
    if not torch.equal(seq, torch.round(seq)):
        raise KdsnnError("graded spikes carry integers: the input is not integer (quantize the graph in integer "
                         "mode, which rounds a direct-encoded input to its input step)")
    if float(seq.abs().max()) > STATE_MAX:
        raise KdsnnError(f"an input value of {float(seq.abs().max()):.0f} exceeds a graded spike's 24-bit payload "
                         f"(|x| ≤ {STATE_MAX}); quantize with fewer bits")
    return seq


def _lava_bias(bias: np.ndarray) -> np.ndarray:
    return lava_layout(bias[None])[0] if bias.ndim == 3 else bias


def lif_params(shape: tuple[int, ...], threshold: int, bias: np.ndarray, du: int = DU, dv: int = V_DECAY) -> dict:
    """Lava LIF parameters of one population (our shape and bias layout): kdsnn's IF mapping by default
    (``du = 4095``, ``dv = 0``), a leaky model's 12-bit decays where given (:func:`.plan.lava_neuron`)."""
    return dict(shape=lava_shape(shape), du=int(du), dv=int(dv), vth=int(threshold), bias_exp=BIAS_EXP,
                bias_mant=_lava_bias(np.broadcast_to(np.asarray(bias), shape)).astype(np.int32))


def _connect(conn: Connection, out_ports: dict, in_ports: dict, shapes: dict):
    """Build ``conn``'s process and wire it from its source's spikes into its target's input."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse
    from scipy.sparse import diags

    syn, src = conn.synapse, out_ports[conn.source]
    src_shape = shapes[conn.source]
    if syn.kind == "conv":
        w = np.ascontiguousarray(syn.weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)).astype(np.int32)
        proc = Conv(weight=w, input_shape=lava_shape(src_shape), padding=syn.padding[::-1], stride=syn.stride[::-1],
                    num_message_bits=conn.message_bits)
        src.connect(proc.s_in)
        out = proc.a_out
    elif syn.kind == "dense":
        w, exp = lava_weights(syn.weight)
        proc = Dense(weights=w.astype(np.int32), weight_exp=exp, num_weight_bits=8, num_message_bits=conn.message_bits)
        (src.transpose([2, 1, 0]).flatten() if len(src_shape) == 3 else src).connect(proc.s_in)
        out = proc.a_out
    else:
        w, exp = lava_weights(_lava_bias(np.asarray(syn.weight)).ravel())
        proc = Sparse(weights=diags(w.astype(np.int32), dtype=np.int32).tocsr(), weight_exp=exp, num_weight_bits=8,
                      num_message_bits=conn.message_bits)
        (src.flatten() if len(src_shape) == 3 else src).connect(proc.s_in)
        out = proc.a_out.reshape(lava_shape(shapes[conn.target])) if len(src_shape) == 3 else proc.a_out
    if tuple(out.shape) != tuple(in_ports[conn.target].shape):
        raise KdsnnError(f"Lava built {tuple(out.shape)} for the connection into {conn.target!r}, which has input "
                         f"{tuple(in_ports[conn.target].shape)}")
    out.connect(in_ports[conn.target])
    return proc


def _simulate(plan: LavaGraphPlan, host: np.ndarray, progress: bool,
              conv_model: str) -> tuple[dict[str, np.ndarray], float, float, int]:
    """Build every process, stream all samples through one runtime, return each population's raw record."""
    with contextlib.redirect_stdout(io.StringIO()):
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.lif.process import LIF, LIFReset

    T, batch = host.shape[0], host.shape[1]
    steps = batch * T + plan.max_lag
    source = Source(data=source_data(host, steps, flat=host.ndim != 5))
    shapes = {plan.host_neuron: tuple(host.shape[2:])}
    out_ports, in_ports, sinks = {plan.host_neuron: source.s_out}, {}, {}
    for pop in plan.populations:
        common = lif_params(pop.shape, pop.threshold, pop.bias, pop.du, pop.dv)
        proc = LIF(**common) if pop.relay_of else LIFReset(**common, reset_interval=T,
                                                           reset_offset=(1 + pop.lag) % T)
        shapes[pop.name] = pop.shape
        out_ports[pop.name], in_ports[pop.name] = proc.s_out, proc.a_in
        if pop.relay_of is None:
            sinks[pop.name] = Sink(shape=lava_shape(pop.shape), buffer=steps)
            proc.s_out.connect(sinks[pop.name].a_in)
    for conn in plan.connections:
        _connect(conn, out_ports, in_ports, shapes)
    records, startup, per_sample = stream(source, batch, T, plan.max_lag, lambda: {
        name: np.asarray(sink.data.get()) for name, sink in sinks.items()}, progress, conv_model)
    return records, startup, per_sample, steps
