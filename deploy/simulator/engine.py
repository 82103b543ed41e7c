"""The reference event-driven simulator: any NIR graph GraphSNN runs, one spike at a time.

:func:`simulate` reads the graph through its :class:`~kdsnn.deploy.simulator.plan.Plan` (built once
from :class:`kdsnn.export.graph_view.GraphView`: populations, composed connections kept as
kernels, O(parameters + neurons) memory), encodes the input and picks a path: spike input, or
integer-valued analog input (a direct-encoded integer graph's first layer), to an exactly-integer
graph takes the integer fast path (:mod:`kdsnn.deploy.simulator.fast`); everything else the general
float64 path (:mod:`kdsnn.deploy.simulator.general`). Both give the same bits and counts.

Counting (docs/synops.md): one SynOp per spike per *structural* synapse of the composed
connectivity (zero weights count: they are wired); analog input to the first layer counts
as MACs (effective: nonzero elements × exact fan-out; dense beside it); neuron updates are
neurons × T; an update is *active* when the neuron received at least one event in that step
or spiked. In integer mode, membranes beyond 24-bit signed are reported, never clipped.

Modules: :mod:`~kdsnn.deploy.simulator.results` (result types), :mod:`~kdsnn.deploy.simulator.plan` (the
plan), :mod:`~kdsnn.deploy.simulator.tables` (the tables a spike reads), :mod:`~kdsnn.deploy.simulator.connect`
(kernel connectivity), :mod:`~kdsnn.deploy.simulator.sparse`
(the explicit sparse formulation: test oracle and fallback), :mod:`~kdsnn.deploy.simulator.kernels`
(compiled kernels), :mod:`~kdsnn.deploy.simulator.general` and :mod:`~kdsnn.deploy.simulator.fast` (the paths).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import nir
import numpy as np
import torch

from kdsnn.errors import KdsnnError
from kdsnn.export.encoding import encode
from kdsnn.export.graph_view import GraphView
from kdsnn.progress import progress as progress_bar

from . import fast as fast_path
from .general import simulate_general as _simulate_general
from .plan import Plan
from .results import LayerStats, NeuronStats, SimResult, SimState


def _prepare(view: GraphView, x: torch.Tensor | np.ndarray, timesteps: int | None,
             seed: int | None) -> tuple[np.ndarray, bool, int]:
    """``[T, B, n_in]`` float64 input as the graph's Input receives it (:func:`kdsnn.export.encoding.encode`),
    whether it is analog, and T."""
    x = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x)
    sequence = x.dim() == len(view.input_shape) + 2
    if sequence and x.device.type == "cpu" and not x.requires_grad and x.dtype != torch.float64:
        x = _float64(x)  # numpy's conversion: the same values without waking torch's thread pool
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    seq = encode(view, x, timesteps, torch.float64, gen)
    if sequence:
        xn = x.numpy() if x.dtype == torch.float64 else x.double().numpy()
        analog = not bool(((xn == 0) | (xn == 1)).all())
    else:
        analog = view.encoding == "direct"
    arr = seq.reshape(seq.shape[0], seq.shape[1], -1).numpy().astype(np.float64, copy=True)
    if not np.isfinite(arr).all():  # numpy: torch's threads only add overhead on these small checks
        raise KdsnnError("input contains NaN or infinite values")
    return arr, analog, int(seq.shape[0])


def _float64(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float64, converted by numpy on the CPU: the same values as ``x.to(torch.float64)``
    without waking torch's thread pool for a copy (costly when the cores are busy)."""
    if x.device.type != "cpu" or x.requires_grad:
        return x.to(torch.float64)
    return torch.from_numpy(x.numpy().astype(np.float64))


def simulate(graph: nir.NIRGraph | GraphView | Plan, x: torch.Tensor | np.ndarray, timesteps: int | None = None,
             progress: bool = False, seed: int | None = None, batch_size: int | None = None,
             fast: bool = True) -> SimResult:
    """Simulate ``graph`` event-driven on ``x`` (``[B, ...]`` analog/encoded here, or ``[T, B, ...]``).

    Graphs without kdsnn metadata (another tool's) need ``timesteps`` for ``[B, ...]`` input and
    use direct encoding. ``seed`` fixes Bernoulli encoding; ``batch_size`` splits a large batch.
    Spike or integer-valued input to an exactly-integer graph takes the integer fast path
    unless ``fast=False``; both paths give the same bits and counts.
    """
    plan = graph if isinstance(graph, Plan) else Plan(graph, progress=progress)
    view = plan.view
    seq, analog, t = _prepare(view, x, timesteps, seed)
    b = seq.shape[1]
    if b < 1:
        raise KdsnnError("the input batch is empty")
    if batch_size is not None and int(batch_size) < 1:
        raise KdsnnError(f"batch_size must be at least 1, got {batch_size}")
    workers = max(1, min(torch.get_num_threads(), b))
    # a bar needs steps to show: with progress on, a large batch goes in chunks (results do not depend on it)
    chunk = int(batch_size or (min(b, 16 * workers) if progress else b))
    layers = {c.name: LayerStats(c.source, c.target, c.synapses, analog=analog and c.source == plan.input)
              for c in plan.connections}
    neurons = {n: NeuronStats(size=view.size(n)) for n in plan.populations if n in view.models}
    out_seq = np.zeros((t, b, view.size(plan.output)))
    # the fast path takes spikes, and analog input when it is integer-valued (a direct-encoded integer
    # graph's input, rounded to its input step): integer products and sums, exact in any order
    net = plan.fast if fast and (not analog or np.array_equal(seq, np.round(seq))) else None
    input_max = float(np.abs(seq).max(initial=0.0)) if net is not None and analog else 1.0
    dtype = net.dtype(t, input_max) if net is not None else None
    bar = progress_bar(total=t * ((b + chunk - 1) // chunk), desc="simulate", unit="step", enabled=progress)
    workers = min(workers, chunk)
    with ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        state = SimState(layers, neurons, out_seq, chunk, workers, pool, bar, view.integer)
        if net is not None and dtype is not None:
            spikes = fast_path.simulate_fast(plan, net, dtype, fast_path.fast_input(seq, analog, dtype, input_max),
                                             state)
        else:
            spikes = _simulate_general(plan, seq, analog, state)
    bar.close()
    for st in neurons.values():
        st.firing_rate = st.spikes / st.updates if st.updates else 0.0
    out = torch.from_numpy(out_seq.reshape(t, b, *plan.shape[plan.output]))
    return SimResult(logits=view.logits(out), spikes=spikes, layers=layers, neurons=neurons, batch=b, timesteps=t,
                     integer=view.integer, readout=view.readout, output_seq=out)
