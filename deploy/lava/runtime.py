"""What both Lava routes share: importing Lava, the host's layers, re-alignment, membrane checks, teardown.

The host runs the analog first layer (its spikes are Lava's input) and, for a membrane
readout, the readout synapse on Lava's last spikes; both through :class:`GraphSNN` on the
part of the graph they cover, so they are exactly the graph's arithmetic.
"""
from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nir
import numpy as np
import torch
import torch.nn.functional as F

from kdsnn.errors import KdsnnError
from kdsnn.export.graph import set_meta
from kdsnn.export.graph_view import GraphView
from kdsnn.export.loihi import STATE_MAX
from kdsnn.export.netx.plan import Synapse
from kdsnn.export.runtime import GraphSNN
from kdsnn.neuron_models import IFModel
from kdsnn.progress import progress as progress_bar
from kdsnn.progress import stage


@dataclass
class LavaRun:
    """Result of :func:`kdsnn.deploy.lava.backend.run_lava`.

    ``spikes`` maps each IF node to ``[T, B, ...]`` spikes in zero-latency timing; the nodes
    in ``host_nodes`` were computed on the host (the analog first layer), the others by Lava.
    ``lags`` is the number of Lava steps removed from each Lava population. ``route`` is
    ``"netx"`` (a netx file) or ``"process-graph"`` (Lava processes built from the NIR graph).
    Timings: ``startup_s`` (compile and start the runtime), ``per_sample_s`` (run time per
    sample, pipeline flush included).
    """

    logits: torch.Tensor
    spikes: dict[str, np.ndarray]
    host_nodes: list[str]
    lags: dict[str, int]
    startup_s: float
    per_sample_s: float
    lava_steps: int
    membrane_extremes: dict[str, tuple[float, float]] = field(default_factory=dict)
    route: str = "netx"

T_ = TypeVar("T_")


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


def patch_lava_conv() -> None:
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


def lava_layout(a: np.ndarray) -> np.ndarray:
    """Per-sample ``(C, H, W)`` ↔ Lava's ``(W, H, C)`` (XYZ) on a leading batch/time axis; vectors unchanged."""
    return a.transpose(0, *range(a.ndim - 1, 0, -1)) if a.ndim == 4 else a


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Our per-sample shape as Lava's (``(C, H, W)`` → ``(W, H, C)``)."""
    return tuple(reversed(shape)) if len(shape) == 3 else tuple(shape)


def check_steps(view: GraphView, x: torch.Tensor, timesteps: int) -> None:
    """Refuse a ``[T', B, ...]`` input whose T' is not the graph's T (before any work is done)."""
    if x.dim() == len(view.input_shape) + 2 and x.shape[0] != timesteps:
        raise KdsnnError(f"input has {x.shape[0]} time steps but the graph was exported for T={timesteps}")


def _subgraph(view: GraphView, names: list[str], input_shape: tuple[int, ...] | None, meta: dict,
              loops: list[list[str]] | None = None) -> nir.NIRGraph:
    """The chain ``names`` (optionally behind a new Input of ``input_shape``) ending in a new Output; each of
    ``loops`` (nodes from the last population of the chain back into it) closes a cycle on that population."""
    nodes = {n: view.nodes[n] for n in names}
    chain = list(names)
    if input_shape is not None:
        nodes["lava_input"] = nir.Input(input_type={"input": np.array(input_shape)})
        chain = ["lava_input"] + chain
    nodes["lava_output"] = nir.Output(output_type={"output": np.array(view.shape[names[-1]])})
    chain.append("lava_output")
    edges = list(zip(chain[:-1], chain[1:], strict=True))
    for loop in loops or []:
        ring = [names[-1], *loop, names[-1]]
        nodes.update({n: view.nodes[n] for n in loop})
        edges += list(zip(ring[:-1], ring[1:], strict=True))
    sub = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    set_meta(sub, meta)
    return sub


def host_first_layer(view: GraphView, host_nodes: list[str], x: torch.Tensor,
                     feedback: list[list[str]] | None = None) -> torch.Tensor:
    """The analog first layer's spikes ``[T, B, ...]``, computed by GraphSNN on that part of the graph (with the
    first population's own ``feedback`` paths)."""
    sub = _subgraph(view, host_nodes, None, view.meta, feedback)
    out = GraphSNN(sub).run(x).outputs[host_nodes[-1]]
    if out.shape[1] == 0:
        raise KdsnnError("empty batch: give at least one input")
    return out


def host_readout(view: GraphView, readout_nodes: list[str], spikes: torch.Tensor) -> torch.Tensor:
    """Logits from the last Lava population's spikes: spike counts, or the host's membrane readout."""
    if not readout_nodes:
        return spikes.sum(0) * view.output_scale
    meta = {**view.meta, "input_scale": None, "encoding": "direct"}
    sub = _subgraph(view, readout_nodes, tuple(spikes.shape[2:]), meta)
    # the sub-graph's Output is fed by the readout synapse, not an IF: GraphSNN averages over T
    return GraphSNN(sub).run(spikes).logits


def synapse_current(syn: Synapse, spikes: torch.Tensor) -> torch.Tensor:
    """What ``syn`` delivers (bias included) for input spikes ``[T, B, ...]``, as ``[T, B, ...out]``."""
    t = spikes.shape[0]
    flat = spikes.flatten(0, 1).double()
    w = torch.as_tensor(syn.weight, dtype=torch.float64)
    b = torch.as_tensor(np.asarray(syn.bias), dtype=torch.float64)
    if syn.kind == "conv":
        cur = F.conv2d(flat, w, b, stride=syn.stride, padding=syn.padding)
    elif syn.kind == "dense":
        cur = F.linear(flat.flatten(1), w, b)
    else:
        cur = flat * w
    return cur.view(t, -1, *cur.shape[1:])


def membrane_extremes(name: str, currents: torch.Tensor, threshold: int, model: Any = None) -> tuple[float, float]:
    """Lowest and highest membrane (before the spike test) of a population on ``currents [T, B, ...]``;
    a KdsnnError if they (or a CubaLIF's current) left the range Lava holds (it clipped or wrapped them,
    so its spikes are not exact). ``model``: the population's leaky model (None or IF: IF as Lava runs it)."""
    if model is None or model.kind == "IF":
        model = IFModel(threshold=np.array([float(threshold)]), r=np.ones(1), v_reset=np.zeros(1))  # as Lava runs it
        lo, hi = 0.0, 0.0
        v = model.initial_state(currents[0])
        for step in range(currents.shape[0]):
            h = model.charge(currents[step], v)
            lo, hi = min(lo, float(h.min())), max(hi, float(h.max()))
            _, v = model.fire_reset(h)
    else:
        lo, hi, peak = 0.0, 0.0, 0.0
        state = model.initial_state(currents[0])
        for step in range(currents.shape[0]):
            charged = model.charge(currents[step], state)
            h = charged[1] if isinstance(charged, tuple) else charged
            if isinstance(charged, tuple):  # CubaLIF: (current, membrane); Lava wraps the current at 24 bits
                peak = max(peak, float(charged[0].abs().max()))
            lo, hi = min(lo, float(h.min())), max(hi, float(h.max()))
            _, state = model.step(currents[step], state)
        if peak > STATE_MAX:
            raise KdsnnError(f"layer {name!r}: synaptic current reached {peak:.0f} on these inputs, beyond Loihi's "
                             f"24-bit current (|u| ≤ {STATE_MAX}); Lava wrapped it, so its spikes are not exact")
    if lo < -STATE_MAX or hi > STATE_MAX:
        raise KdsnnError(f"layer {name!r}: membrane reached [{lo:.0f}, {hi:.0f}] on these inputs, beyond "
                         f"Loihi's 24-bit range (|v| ≤ {STATE_MAX}); Lava clipped it, so its spikes are not exact")
    return lo, hi


def aligned(record: np.ndarray, lag: int, timesteps: int, batch: int, shape: tuple[int, ...]) -> np.ndarray:
    """A sink's raw ``[..., steps]`` record as ``[T, B, *shape]``: sample b, step t sits at index b·T + t + lag."""
    idx = (np.arange(batch)[None, :] * timesteps + np.arange(timesteps)[:, None] + lag).ravel()
    seq = lava_layout(np.moveaxis(record[..., idx], -1, 0))
    return seq.reshape(timesteps, batch, *shape).astype(np.float64)


def source_data(host: np.ndarray, steps: int, flat: bool) -> np.ndarray:
    """Host spikes ``[T, B, ...]`` as a Lava source buffer ``[*lava_shape, steps]`` (sample-major, then time)."""
    T, batch = host.shape[0], host.shape[1]
    per_step = np.swapaxes(host, 0, 1).reshape(batch * T, *host.shape[2:])
    per_step = per_step.reshape(batch * T, -1) if flat else lava_layout(per_step)
    data = np.zeros((*per_step.shape[1:], steps), dtype=np.int32)
    data[..., :batch * T] = np.moveaxis(per_step, 0, -1)
    return data


def actor_error(runtime) -> str:
    """Last line of the first traceback a Lava actor (child process) reported."""
    for actor in runtime._messaging_infrastructure.actors:
        if actor.exception:
            lines = [ln for ln in str(actor.exception[1]).splitlines() if ln.strip()]
            return lines[-1] if lines else ""
    return ""


def shutdown(process, failed: bool) -> None:
    """Stop the runtime. After an actor failed its services are gone and ``stop()`` would wait
    for their answer forever, so only the messaging infrastructure is torn down."""
    if failed:
        process.runtime._is_started = False
    process.stop()


CONV_MODELS = ("kdsnn", "lava")


def stream(process, batch: int, timesteps: int, flush: int, read: Callable[[], T_], progress: bool,
           conv_model: str = "kdsnn") -> tuple[T_, float, float]:
    """Compile and start ``process``'s runtime (fixed_pt), run ``batch`` samples of ``timesteps`` steps
    each, then ``flush`` steps to drain the pipeline; returns (``read()``, start-up s, s per sample).
    ``conv_model``: kdsnn's vectorized Conv model (:mod:`.conv_model`, the default) or Lava's own (``"lava"``).

    Any failure of a Lava actor becomes a one-line KdsnnError; the runtime is always torn down."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from .conv_model import conv_model_map

    patch_lava_conv()
    models = conv_model_map(conv_model)
    t0 = time.perf_counter()
    stage("Lava: compiling the process graph and starting the runtime", enabled=progress)
    process.create_runtime(run_cfg=Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models))
    failed = False
    try:
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in progress_bar(range(batch), desc="Lava", unit="sample", enabled=progress, leave=False):
            process.run(condition=RunSteps(num_steps=timesteps))
        if flush:
            stage(f"Lava: {batch:,} samples run; flushing the pipeline ({flush} steps)", enabled=progress)
            process.run(condition=RunSteps(num_steps=flush))
        per_sample = (time.perf_counter() - t0) / batch
        stage("Lava: reading the recorded spikes", enabled=progress)
        records = read()
    except RuntimeError as exc:
        failed = True
        raise KdsnnError(f"the Lava simulation failed: {actor_error(process.runtime) or exc}") from None
    finally:
        stage("Lava: shutting the runtime down", enabled=progress)
        shutdown(process, failed)
    return records, startup, per_sample
