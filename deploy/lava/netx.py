"""Lava's netx route: a sequential integer graph through its netx file (``netx.hdf5.Network``).

Timing. Every netx layer delivers its input one step later. Sample ``b``'s step ``t`` enters
Lava at time step ``b·T + t + 1`` and netx layer ``j`` (1-based) emits its spikes at
``b·T + t + 1 + j``. Samples follow each other every T steps: the network is loaded with
``reset_interval = T`` and ``reset_offset = 1``, which zeroes layer ``j`` exactly when the
first step of each sample reaches it. One run of ``B·T + L`` steps holds all samples (the last
L steps flush the pipeline), and every layer is re-aligned by its lag ``j``.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import torch

from kdsnn.errors import KdsnnError
from kdsnn.export.graph_view import GraphView
from kdsnn.export.netx.plan import RESET_OFFSET, NetxPlan
from kdsnn.export.netx.read import read_info
from kdsnn.export.netx.write import export_netx, graph_digest

from .runtime import (
    LavaRun,
    aligned,
    host_first_layer,
    host_readout,
    membrane_extremes,
    source_data,
    stream,
    synapse_current,
)


def run_netx(view: GraphView, plan: NetxPlan, x: torch.Tensor, netx_path: str | Path | None,
             progress: bool, conv_model: str = "kdsnn") -> LavaRun:
    """Run ``plan`` (of ``view``) on Lava through a netx file (``conv_model``: :func:`.runtime.stream`'s); see the
    module docstring."""
    T = plan.timesteps
    host = host_first_layer(view, plan.host_nodes, x)
    batch = host.shape[1]
    with tempfile.TemporaryDirectory(prefix="kdsnn-netx-") as tmp:
        if netx_path is None:
            path = export_netx(view.graph, Path(tmp) / "student.net")
        else:
            path = Path(netx_path)
            info = read_info(path)
            if info.get("graph_digest") != graph_digest(view.graph):
                raise KdsnnError(f"{path} was exported from another graph than the one given; export this graph again")
        raw, startup, per_sample, steps = _simulate(path, plan, host.numpy(), progress, conv_model)
    spikes = {plan.host_neuron: host.numpy()}
    lags = {}
    for j, (layer, rec) in enumerate(zip(plan.layers, raw, strict=True), start=1):
        spikes[layer.neuron] = aligned(rec, j, T, batch, layer.out_shape)
        lags[layer.neuron] = j
    extremes = {}
    prev = host
    for layer in plan.layers:
        if layer.warnings:
            extremes[layer.neuron] = membrane_extremes(layer.neuron, synapse_current(layer, prev), layer.threshold)
        prev = torch.as_tensor(spikes[layer.neuron])
    logits = host_readout(view, plan.readout_nodes, torch.as_tensor(spikes[plan.layers[-1].neuron]))
    return LavaRun(logits, spikes, [plan.host_neuron], lags, startup, per_sample, steps, extremes, "netx")


def _simulate(path: Path, plan: NetxPlan, host: np.ndarray, progress: bool,
              conv_model: str) -> tuple[list[np.ndarray], float, float, int]:
    """Stream all samples through one Lava runtime; return each layer's raw ``[..., steps]`` record."""
    with contextlib.redirect_stdout(io.StringIO()):
        from lava.lib.dl import netx
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source

    T, batch = host.shape[0], host.shape[1]
    n_layers = len(plan.layers)
    steps = batch * T + n_layers
    first = plan.layers[0]
    data = source_data(host, steps, flat=first.flatten_before or first.kind == "dense")
    try:
        net = netx.hdf5.Network(net_config=str(path), reset_interval=T, reset_offset=RESET_OFFSET)
    except Exception as exc:  # netx raises RuntimeError/KeyError/NotImplementedError on files it cannot map
        raise KdsnnError(f"netx could not load {path} ({type(exc).__name__}: {exc})") from None
    if len(net.layers) != n_layers or tuple(net.inp.shape) != data.shape[:-1]:
        raise KdsnnError(f"{path} does not match the graph (netx built {len(net.layers)} layers with input "
                         f"{tuple(net.inp.shape)}; expected {n_layers} and {data.shape[:-1]})")
    source = Source(data=data)
    source.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers:
        sink = Sink(shape=layer.out.shape, buffer=steps)
        layer.out.connect(sink.a_in)
        sinks.append(sink)
    records, startup, per_sample = stream(net, batch, T, n_layers,
                                          lambda: [np.asarray(sink.data.get()) for sink in sinks], progress,
                                          conv_model)
    return records, startup, per_sample, steps
