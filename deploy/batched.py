"""Large runs in bounded memory: a backend over many inputs, one batch at a time.

``simulate``, ``report`` and ``map`` run hundreds or thousands of inputs. A backend that keeps
every node's values (the PyTorch graph runtime: ``[T, B, ...]`` per node) or every spike
(``[T, B, ...]`` per population) would hold memory in proportion to the number of inputs;
here the inputs are cut into batches whose size follows from the graph (one input's values
over T, :func:`kdsnn.export.graph_checks.sample_step_bytes`) and a fixed working set
(:data:`WORKING_SET`), so the memory of a run does not grow with its length. What a command
reports is combined across batches: logits of every input, spike totals per population, the
reference simulator's counters merged; spike trains are kept for the first batch only (a
raster, the per-core load), unless the caller asks for all of them (``simulate --save``,
whose file holds them).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from kdsnn.budget import fitting, human_bytes, require
from kdsnn.export.graph_checks import sample_step_bytes
from kdsnn.export.graph_view import GraphView
from kdsnn.progress import progress as progress_bar

from .backends import Backend, BackendRun, population_spikes
from .simulator.results import SimResult, merge

WORKING_SET = 256 * 2 ** 20  # bytes of node values one batch may take (all of a batch's copies included)
RUNNER_COPIES = 3            # a runner holds a node's input, its output and a temporary at once
MAX_BATCH = 256


def is_sequence(x: Any, view: GraphView) -> bool:
    """Whether ``x`` is ``[T, B, ...]`` (the batch on axis 1) rather than ``[B, ...]``."""
    return torch.as_tensor(x).dim() == len(view.input_shape) + 2


def count(x: Any, view: GraphView) -> int:
    """Number of inputs in ``x``."""
    return int(x.shape[1] if is_sequence(x, view) else x.shape[0])


def take(x: Any, view: GraphView, lo: int, hi: int) -> Any:
    """Inputs ``lo:hi`` of ``x``."""
    return x[:, lo:hi] if is_sequence(x, view) else x[lo:hi]


def input_bytes(view: GraphView, steps: int) -> int:
    """Memory one input takes while a runner computes it over ``steps`` steps."""
    return sample_step_bytes(view) * steps * RUNNER_COPIES


def batch_size(view: GraphView, steps: int, most: int = MAX_BATCH) -> int:
    """Inputs per batch: as many as :data:`WORKING_SET` holds (at least one, at most ``most``), after
    refusing a graph one input of which the machine cannot hold over ``steps`` steps."""
    per = input_bytes(view, steps)
    require(per, f"one input of this graph over T = {steps} steps ({human_bytes(sample_step_bytes(view))} per step)",
            "use fewer time steps")
    return max(1, min(most, WORKING_SET // per, fitting(per, most)))


@dataclass
class Combined:
    """A backend's run over all batches."""

    logits: torch.Tensor
    samples: int
    spike_totals: dict[str, float] = field(default_factory=dict)   # population → spikes summed over everything
    spike_slots: dict[str, int] = field(default_factory=dict)      # population → neurons × steps × inputs
    counters: SimResult | None = None  # the reference simulator's counters over every input (spikes: first batch)
    head: SimResult | None = None      # the reference simulator on the first ``keep_head`` inputs alone (spikes too)
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    spikes: dict[str, np.ndarray] | None = None  # every input's spike trains, when asked for (keep_all)
    output: Any = None                            # every input's Output sequence, when asked for

    def firing_rates(self) -> dict[str, float]:
        return {k: self.spike_totals[k] / self.spike_slots[k] if self.spike_slots[k] else 0.0
                for k in self.spike_totals}


def merge_counters(total: SimResult | None, part: SimResult, keep_spikes: bool = False) -> SimResult:
    """``part``'s counters added into ``total`` (None: a copy of ``part``); with ``keep_spikes`` its spike
    trains, logits and Output sequence are appended too, otherwise ``total`` keeps those of its first part."""
    if total is None:
        return SimResult(part.logits, dict(part.spikes), copy.deepcopy(part.layers), copy.deepcopy(part.neurons),
                         part.batch, part.timesteps, part.integer, part.readout, part.output_seq)
    merge(total.layers, total.neurons, part.layers, part.neurons)
    total.batch += part.batch
    for st in total.neurons.values():
        st.firing_rate = st.spikes / st.updates if st.updates else 0.0
    if keep_spikes:
        total.spikes = {k: torch.cat([torch.as_tensor(v), torch.as_tensor(part.spikes[k])], 1)
                        for k, v in total.spikes.items()}
        total.logits = torch.cat([torch.as_tensor(total.logits), torch.as_tensor(part.logits)])
        total.output_seq = torch.cat([total.output_seq, part.output_seq], 1)
    return total


def bounds(n: int, size: int, head: int = 0) -> list[tuple[int, int]]:
    """Batches ``(lo, hi)`` of ``n`` inputs, at most ``size`` each; the first ``head`` inputs end a batch."""
    cut = min(head, n)
    return [(lo, min(cut, lo + size)) for lo in range(0, cut, size)] + \
        [(lo, min(n, lo + size)) for lo in range(cut, n, size)]


def run_batches(backend: Backend, graph: Any, x: Any, view: GraphView, steps: int, timesteps: int | None = None,
                keep_all: bool = False, keep_head: int = 0, progress: bool = False) -> Combined:
    """Run ``backend`` on ``x`` batch by batch (``steps``: the T it runs, for the batch size). A backend that
    streams its inputs itself (Lava: one runtime, one input at a time) gets them all at once."""
    n = count(x, view)
    size = n if backend.slow and backend.chunk is None else batch_size(view, steps)
    logits, totals, slots, kept, outs = [], {}, {}, [], []
    counters: SimResult | None = None
    head: SimResult | None = None
    last: BackendRun | None = None
    parts = bounds(n, size, keep_head)
    prepared = backend.prepare(graph) if len(parts) > 1 else graph
    bar = progress_bar(parts, desc=backend.name, leave=False, enabled=progress and len(parts) > 1)
    for lo, hi in bar:
        run = backend.run(prepared, take(x, view, lo, hi), progress=progress and len(parts) == 1,
                          timesteps=timesteps)
        last = run
        logits.append(torch.as_tensor(np.asarray(run.logits)))
        spikes = population_spikes(run)
        for k, s in spikes.items():
            totals[k] = totals.get(k, 0.0) + float(s.sum(dtype=np.float64))
            slots[k] = slots.get(k, 0) + int(s.size)
        if run.counters is not None:
            counters = merge_counters(counters, run.counters)
            if hi <= keep_head:
                head = merge_counters(head, run.counters, keep_spikes=True)
        if keep_all:
            kept.append(spikes)
            outs.append(run.output)
    if last is None:  # pragma: no cover - callers refuse empty inputs first
        raise ValueError("no inputs")
    result = Combined(torch.cat(logits), n, totals, slots, counters, head, dict(last.extra), last.note)
    if counters is not None:
        counters.logits = result.logits
    if keep_all:
        result.spikes = {k: np.concatenate([b[k] for b in kept], axis=1) for k in kept[0]}
        result.output = None if any(o is None for o in outs) else torch.cat([torch.as_tensor(o) for o in outs], 1)
    return result
