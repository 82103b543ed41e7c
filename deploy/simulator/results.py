"""The reference simulator's shared types: per-connection and per-population counters, the result.

Both simulation paths (:mod:`kdsnn.deploy.simulator.general`, :mod:`kdsnn.deploy.simulator.fast`) fill
the same counters; :class:`SimState` is what a path writes into (the counters, the Output's
sequence and the spike buffers), so a path's driver takes one object instead of many arrays.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class LayerStats:
    """One composed connection (named by its synaptic node) from a source population to a target."""

    source: str
    target: str
    synapses: int            # structural synapses of the composed connectivity
    synops: int = 0          # spike events × synapses reached (spiking source), whole batch
    macs_effective: int = 0  # nonzero analog inputs × exact fan-out (analog source), whole batch
    macs_dense: int = 0      # every analog input × its fan-out, every step, whole batch
    analog: bool = False


@dataclass
class NeuronStats:
    """One IF population over the whole batch and all steps."""

    size: int
    spikes: int = 0
    updates: int = 0          # neurons × T × B
    active_updates: int = 0   # updates where the neuron received an event or spiked
    firing_rate: float = 0.0  # spikes / updates
    overflow: int = 0         # integer mode: pre-reset membrane values outside 24-bit signed
    max_abs_membrane: float = 0.0


@dataclass
class SimResult:
    """What one simulation produced: logits, spikes ``[T, B, ...]`` (uint8) per IF node, counts."""

    logits: torch.Tensor
    spikes: dict[str, torch.Tensor]
    layers: dict[str, LayerStats]
    neurons: dict[str, NeuronStats]
    batch: int
    timesteps: int
    integer: bool
    readout: str
    output_seq: torch.Tensor = field(repr=False, default=None)  # type: ignore[assignment]

    def totals(self) -> dict[str, float]:
        """Whole-batch totals of every counter."""
        L, N = self.layers.values(), self.neurons.values()
        return {"synops": sum(lay.synops for lay in L), "macs_effective": sum(lay.macs_effective for lay in L),
                "macs_dense": sum(lay.macs_dense for lay in L), "neuron_updates": sum(n.updates for n in N),
                "active_neuron_updates": sum(n.active_updates for n in N), "spikes": sum(n.spikes for n in N),
                "overflow": sum(n.overflow for n in N)}

    def per_sample(self) -> dict[str, float]:
        """Per-inference averages (totals / batch): the figures energy reports use."""
        return {k: v / self.batch for k, v in self.totals().items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no tensors)."""
        return {"batch": self.batch, "timesteps": self.timesteps, "integer": self.integer, "readout": self.readout,
                "layers": {k: asdict(v) for k, v in self.layers.items()},
                "neurons": {k: asdict(v) for k, v in self.neurons.items()},
                "totals": self.totals(), "per_sample": self.per_sample()}


@dataclass
class SimState:
    """What a simulation path fills: counters (whole batch), the Output's values ``[T, B, n_out]``,
    and how the batch is split (``chunk`` rows at a time over ``workers`` threads of ``pool``, ``bar`` ticked)."""

    layers: dict[str, LayerStats]
    neurons: dict[str, NeuronStats]
    out_seq: np.ndarray
    chunk: int
    workers: int
    pool: Any
    bar: Any
    integer: bool


def fresh(layers: dict[str, LayerStats], neurons: dict[str, NeuronStats]
          ) -> tuple[dict[str, LayerStats], dict[str, NeuronStats]]:
    """Zeroed counters shaped like ``layers`` and ``neurons`` (one set per thread, merged after)."""
    return ({k: LayerStats(lay.source, lay.target, lay.synapses, analog=lay.analog) for k, lay in layers.items()},
            {k: NeuronStats(size=n.size) for k, n in neurons.items()})


def merge(layers: dict[str, LayerStats], neurons: dict[str, NeuronStats], part_layers: dict[str, LayerStats],
          part_neurons: dict[str, NeuronStats]) -> None:
    """Add one part's counters into the totals."""
    for k, lay in part_layers.items():
        layers[k].synops += lay.synops
        layers[k].macs_effective += lay.macs_effective
        layers[k].macs_dense += lay.macs_dense
    for k, n in part_neurons.items():
        tot = neurons[k]
        tot.spikes += n.spikes
        tot.updates += n.updates
        tot.active_updates += n.active_updates
        tot.overflow += n.overflow
        tot.max_abs_membrane = max(tot.max_abs_membrane, n.max_abs_membrane)


def parts(lo: int, hi: int, workers: int) -> list[tuple[int, int]]:
    """Rows ``lo:hi`` of a chunk split into at most ``workers`` contiguous ranges, one per thread."""
    return [(int(r[0]), int(r[-1]) + 1) for r in np.array_split(np.arange(lo, hi), min(workers, hi - lo))]
