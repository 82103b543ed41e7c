"""How long a Lava run will take, from its plan, before it starts (``verify`` and ``report`` print it).

Lava runs every process of the network as an OS process that exchanges messages with the others
at every step, so its time follows three counts the plan gives without running anything:

- **processes** (the source, each population and relay, each connection, each sink; netx: a
  neuron and a synapse process per layer, plus the source and the sinks): compiling and starting the
  runtime costs :data:`STARTUP_S_PER_PROCESS` each, and every step :data:`STEP_S_PER_PROCESS` each
  (Lava's per-step synchronisation and message passing);
- **synaptic multiply-adds per step** of the connections as computed (a convolution's
  ``out positions × C_out × C_in/groups × kernel``, a Dense's ``in × out``, a Sparse diagonal's
  ``n``): kdsnn's vectorized Conv model (:mod:`.conv_model`) and Lava's Dense do them as dense
  matrix products at :data:`S_PER_MAC` each;
- with Lava's own Conv model, one ``convolve2d`` call per (output, input) channel pair and step, at
  :data:`S_PER_PAIR` each.

The constants were fitted on this project's shared 2-core machine under a load average of 7-14
(docs/benchmarks.md, "Lava at CIFAR scale": snn_resnet14 and snn_resnet18 with both Conv models); a
quieter or faster machine scales them all down alike, so the estimate is a guide to the order of
magnitude (seconds, minutes or hours), not a timing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kdsnn import human
from kdsnn.export.netx.plan import NetxPlan, Synapse

from .plan import LavaGraphPlan

STARTUP_S_PER_PROCESS = 0.15
STEP_S_PER_PROCESS = 0.0017
S_PER_MAC = 1.7e-10
S_PER_PAIR = 2.0e-5


@dataclass
class LavaEstimate:
    """The counts of one Lava run's plan and the time they predict."""

    processes: int
    macs_per_step: int  # synaptic multiply-adds of all connections in one step, as computed
    channel_pairs: int  # convolution (output, input) channel pairs: Lava's own Conv model loops over them
    steps: int  # Lava steps of the whole run (samples × T + the pipeline's flush)
    startup_s: float
    total_s: float

    def line(self, samples: int) -> str:
        """One stage line: the estimate and what it is made of."""
        return (f"Lava: {samples:,} sample{'s' if samples != 1 else ''} ≈ {human.duration(self.total_s)} estimated "
                f"({human.duration(self.startup_s)} start-up, {self.processes} Lava processes, "
                f"{self.macs_per_step / 1e6:,.1f} M synaptic multiply-adds per step, {self.steps:,} steps)")


def synapse_work(syn: Synapse) -> tuple[int, int]:
    """(multiply-adds per step, channel pairs) of one connection as Lava's models compute it (densely)."""
    w = np.shape(syn.weight)
    if syn.kind == "conv":
        out_positions = int(np.prod(syn.out_shape[1:]))
        return out_positions * int(np.prod(w)), int(w[0]) * int(w[1])
    if syn.kind == "dense":
        return int(np.prod(w)), 0
    return int(np.prod(syn.out_shape)), 0


def estimate(plan: LavaGraphPlan | NetxPlan, samples: int, conv_model: str = "kdsnn") -> LavaEstimate:
    """The time ``samples`` inputs take on Lava under ``plan`` (see the module docstring)."""
    if isinstance(plan, NetxPlan):
        synapses = list(plan.layers)
        processes = 1 + 3 * len(plan.layers)  # source; per layer a synapse, a neuron and a sink
        flush = len(plan.layers)
    else:
        synapses = [c.synapse for c in plan.connections]
        processes = 1 + len(plan.populations) + len(plan.connections) + len(plan.neurons)
        flush = plan.max_lag
    work = [synapse_work(s) for s in synapses]
    macs, pairs = sum(m for m, _ in work), sum(p for _, p in work)
    step = STEP_S_PER_PROCESS * processes + S_PER_MAC * macs
    if conv_model == "lava":
        step += S_PER_PAIR * pairs
    steps = samples * plan.timesteps + flush
    startup = STARTUP_S_PER_PROCESS * processes
    if getattr(plan, "recurrent", False):  # one runtime per sample (deploy/lava/graph.py)
        steps, startup = samples * (plan.timesteps + flush), startup * samples
    return LavaEstimate(processes, macs, pairs, steps, startup, startup + step * steps)
