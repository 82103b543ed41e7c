"""Run an integer student on Lava's Loihi 2 simulator through its netx export.

The split (see :mod:`kdsnn.export.netx_export` and docs/lava.md): the host runs the analog
first layer, Lava (``netx.hdf5.Network`` on ``Loihi2SimCfg(select_tag='fixed_pt')``) runs the
spiking layers, and a membrane readout is computed on the host from Lava's last spikes.

Timing. Every netx layer delivers its input one step later. Sample ``b``'s step ``t`` enters
Lava at time step ``b·T + t + 1`` and netx layer ``j`` (1-based) emits its spikes at
``b·T + t + 1 + j``. Samples follow each other every T steps: the network is loaded with
``reset_interval = T`` and ``reset_offset = 1``, which zeroes layer ``j`` exactly when
the first step of each sample reaches it. One run of ``B·T + L`` steps therefore holds all
samples (the last L steps flush the pipeline), and :class:`LavaRun` re-aligns every layer by
its lag ``j`` so that its spikes compare directly with ``GraphSNN(graph).run(x).outputs``.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nir
import numpy as np
import torch
import torch.nn.functional as F
from kdsnn.progress import progress as progress_bar

from kdsnn.errors import KdsnnError
from kdsnn.export.graph import get_meta, set_meta
from kdsnn.export.netx_export import (RESET_OFFSET, STATE_MAX, NetxLayer, NetxPlan, export_netx, graph_digest,
                                      netx_plan, read_info)
from kdsnn.export.runtime import GraphSNN


@dataclass
class LavaRun:
    """Result of :func:`run_lava`.

    ``spikes`` maps each IF node to ``[T, B, ...]`` spikes in zero-latency timing; the nodes
    in ``host_nodes`` were computed on the host (the analog first layer), the others by Lava.
    ``lags`` is the number of Lava steps removed from each Lava layer. Timings: ``startup_s``
    (compile and start the runtime), ``per_sample_s`` (run time per sample, flush included).
    """

    logits: torch.Tensor
    spikes: dict[str, np.ndarray]
    host_nodes: list[str]
    lags: dict[str, int]
    startup_s: float
    per_sample_s: float
    lava_steps: int
    membrane_extremes: dict[str, tuple[float, float]] = field(default_factory=dict)


def _clear_start_method() -> None:
    """Let Lava's import run ``multiprocessing.set_start_method('fork')``.

    Lava calls it at import time without ``force``, which raises "context has already been
    set" once anything in the process fixed the start method (tqdm does, through the
    multiprocessing lock it creates for its first progress bar). Clearing the choice before
    Lava's first import is harmless on Linux, where 'fork' is the default Lava then sets.
    """
    import multiprocessing as mp
    import sys

    if "lava.magma.runtime.message_infrastructure.multiprocessing" not in sys.modules:
        mp.set_start_method(None, force=True)


def lava_available() -> tuple[bool, str]:
    """Whether Lava and lava-dl's netx can be imported (and why not)."""
    _clear_start_method()
    # lava-dl's slayer imports torch.utils.cpp_extension, which logs a CUDA_HOME warning on CPU machines
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # lava-dl prints a dataset-toolbox notice on import
            import lava.lib.dl.netx  # noqa: F401
            from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: F401
            from lava.proc.io.sink import RingBuffer  # noqa: F401
    except Exception as exc:  # ImportError, or a dataclass error under Python 3.11 without the recipe's fix
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


_PATCHED = False


def _patch_lava_conv() -> None:
    """Give Lava's own conv its geometry as int64 (a numpy 2 incompatibility of lava-nc 0.10).

    Lava's fixed-point Conv keeps kernel/stride/padding/dilation/groups in int8 arrays; under
    numpy 2 (NEP 50) ``128 % np.int8(1)`` raises OverflowError, so every conv with 128 or more
    output channels fails inside the runtime. The wrapper only casts those arguments and calls
    Lava's function, so the arithmetic stays Lava's. Lava's actors are forked from this
    process, so they inherit the wrapper.
    """
    global _PATCHED
    if _PATCHED:
        return
    from lava.proc.conv import utils

    original = utils.conv

    def conv(input_, weight, kernel_size, stride, padding, dilation, groups):
        geometry = [np.asarray(v, dtype=np.int64) for v in (kernel_size, stride, padding, dilation)]
        return original(input_, weight, *geometry, int(np.asarray(groups).ravel()[0]))

    utils.conv = conv
    _PATCHED = True


def _subgraph(graph: nir.NIRGraph, names: list[str], input_node: nir.Input | None, meta: dict) -> nir.NIRGraph:
    """The chain ``names`` (optionally behind a new Input) ending in a new Output, as a graph."""
    nodes = {n: graph.nodes[n] for n in names}
    chain = list(names)
    if input_node is not None:
        nodes["lava_input"] = input_node
        chain = ["lava_input"] + chain
    last = graph.nodes[names[-1]]
    out_shape = np.asarray(last.v_threshold).shape if isinstance(last, nir.IF) else (np.asarray(last.weight).shape[0],)
    nodes["lava_output"] = nir.Output(output_type={"output": np.array(out_shape)})
    chain.append("lava_output")
    sub = nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:])), type_check=False)
    set_meta(sub, meta)
    return sub


def _host_first_layer(graph: nir.NIRGraph, plan: NetxPlan, x: torch.Tensor) -> torch.Tensor:
    """The analog first layer's spikes ``[T, B, ...]``, computed by GraphSNN on that part of the graph."""
    sub = _subgraph(graph, plan.host_nodes, None, get_meta(graph))
    return GraphSNN(sub).run(x).outputs[plan.host_neuron]


def _host_readout(graph: nir.NIRGraph, plan: NetxPlan, spikes: torch.Tensor) -> torch.Tensor:
    """Logits from the last Lava layer's spikes: spike counts, or the host's membrane readout."""
    meta = get_meta(graph)
    if not plan.readout_nodes:
        return spikes.sum(0) * float(meta.get("output_scale", 1.0))
    shape = tuple(spikes.shape[2:])
    sub_meta = {**meta, "input_scale": None, "encoding": "direct"}
    sub = _subgraph(graph, plan.readout_nodes, nir.Input(input_type={"input": np.array(shape)}), sub_meta)
    # Output of the sub-graph is fed by the readout synapse, not an IF: GraphSNN averages over T.
    return GraphSNN(sub).run(spikes).logits


def _membrane_extremes(layer: NetxLayer, inp: torch.Tensor) -> tuple[float, float]:
    """Lowest and highest membrane (before the spike test) of ``layer`` on input spikes ``[T, B, ...]``."""
    t = inp.shape[0]
    flat = inp.flatten(0, 1).double()
    w = torch.as_tensor(layer.weight, dtype=torch.float64)
    b = torch.as_tensor(layer.bias, dtype=torch.float64)
    if layer.kind == "conv":
        cur = F.conv2d(flat, w, b, stride=layer.stride, padding=layer.padding)
    else:
        cur = F.linear(flat.flatten(1), w, b)
    cur = cur.view(t, -1, *cur.shape[1:])
    v = torch.zeros_like(cur[0])
    lo, hi = 0.0, 0.0
    for step in range(t):
        v = v + cur[step]
        lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
        v = torch.where(v > layer.threshold, torch.zeros_like(v), v)
    return lo, hi


def _lava_layout(a: np.ndarray) -> np.ndarray:
    """Our ``(C, H, W)`` per sample → Lava's ``(W, H, C)`` (XYZ); vectors unchanged."""
    return a.transpose(0, *range(a.ndim - 1, 0, -1)) if a.ndim == 4 else a


def run_lava(graph: nir.NIRGraph, x: torch.Tensor, netx_path: str | Path | None = None,
             progress: bool = True) -> LavaRun:
    """Run ``graph`` (integer) on Lava's fixed-point Loihi 2 simulator for the batch ``x``.

    ``x`` is ``[B, ...]`` (encoded over T as GraphSNN does) or ``[T, B, ...]``. ``netx_path``
    names a file :func:`export_netx` wrote for this same graph; by default one is written to
    a temporary folder.
    """
    ok, why = lava_available()
    if not ok:
        raise KdsnnError(f"Lava is not importable ({why}); install lava-nc 0.10 and lava-dl 0.6 as docs/lava.md describes")
    plan = netx_plan(graph)
    T = plan.timesteps
    host = _host_first_layer(graph, plan, x)
    if host.shape[0] != T:
        raise KdsnnError(f"input has {host.shape[0]} time steps but the graph was exported for T={T}")
    batch = host.shape[1]
    if batch == 0:
        raise KdsnnError("empty batch: give at least one input")
    with tempfile.TemporaryDirectory(prefix="kdsnn-netx-") as tmp:
        if netx_path is None:
            path = export_netx(graph, Path(tmp) / "student.net")
        else:
            path = Path(netx_path)
            info = read_info(path)
            if info.get("graph_digest") != graph_digest(graph):
                raise KdsnnError(f"{path} was exported from another graph than the one given; export this graph again")
        raw, startup, per_sample, steps = _simulate(path, plan, host.numpy(), progress)
    spikes = {plan.host_neuron: host.numpy()}
    lags = {}
    for j, (layer, rec) in enumerate(zip(plan.layers, raw), start=1):
        # sample b, step t sits at buffer index b·T + t + j
        idx = (np.arange(batch)[None, :] * T + np.arange(T)[:, None] + j).ravel()
        seq = np.moveaxis(rec[..., idx], -1, 0)
        seq = _lava_layout(seq)
        spikes[layer.neuron] = seq.reshape(T, batch, *layer.out_shape).astype(np.float64)
        lags[layer.neuron] = j
    extremes = {}
    prev = host
    for layer in plan.layers:
        if layer.warnings:
            lo, hi = _membrane_extremes(layer, prev)
            extremes[layer.neuron] = (lo, hi)
            if lo < -STATE_MAX or hi > STATE_MAX:
                raise KdsnnError(f"layer {layer.neuron!r}: membrane reached [{lo:.0f}, {hi:.0f}] on these inputs, beyond "
                                 f"Loihi's 24-bit range (|v| ≤ {STATE_MAX}); Lava clipped it, so its spikes are not exact")
        prev = torch.as_tensor(spikes[layer.neuron])
    logits = _host_readout(graph, plan, torch.as_tensor(spikes[plan.layers[-1].neuron]))
    return LavaRun(logits, spikes, [plan.host_neuron], lags, startup, per_sample, steps, extremes)


def _simulate(path: Path, plan: NetxPlan, host: np.ndarray, progress: bool) -> tuple[list[np.ndarray], float, float, int]:
    """Stream all samples through one Lava runtime; return each layer's raw ``[..., steps]`` record."""
    with contextlib.redirect_stdout(io.StringIO()):
        from lava.lib.dl import netx
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source

    T, batch = host.shape[0], host.shape[1]
    n_layers = len(plan.layers)
    steps = batch * T + n_layers
    first = plan.layers[0]
    per_step = np.swapaxes(host, 0, 1).reshape(batch * T, *host.shape[2:])  # sample-major, then time
    if first.flatten_before or first.kind == "dense":
        per_step = per_step.reshape(batch * T, -1)
    else:
        per_step = _lava_layout(per_step)
    data = np.zeros((*per_step.shape[1:], steps), dtype=np.int32)
    data[..., :batch * T] = np.moveaxis(per_step, 0, -1)
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
    _patch_lava_conv()
    t0 = time.perf_counter()
    net.create_runtime(run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    failed = False
    try:
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in progress_bar(range(batch), desc="Lava", unit="sample", enabled=progress, leave=False):
            net.run(condition=RunSteps(num_steps=T))
        net.run(condition=RunSteps(num_steps=n_layers))
        per_sample = (time.perf_counter() - t0) / batch
        records = [np.asarray(sink.data.get()) for sink in sinks]
    except RuntimeError as exc:
        failed = True
        raise KdsnnError(f"the Lava simulation failed: {_actor_error(net) or exc}") from None
    finally:
        _shutdown(net, failed)
    return records, startup, per_sample, steps


def _actor_error(net) -> str:
    """Last line of the first traceback a Lava actor (child process) reported."""
    for actor in net.runtime._messaging_infrastructure.actors:
        if actor.exception:
            lines = [ln for ln in str(actor.exception[1]).splitlines() if ln.strip()]
            return lines[-1] if lines else ""
    return ""


def _shutdown(net, failed: bool) -> None:
    """Stop the runtime. After an actor failed its services are gone and ``stop()`` would wait
    for their answer forever, so only the messaging infrastructure is torn down."""
    if failed:
        net.runtime._is_started = False
    net.stop()
