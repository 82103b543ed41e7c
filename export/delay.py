"""NIR's ``Delay`` in discrete time: ``y(t) = x(t − τ)`` per element, ``τ`` in seconds, as whole steps of dt.

A ``Delay`` node holds one delay per element (or one for all). kdsnn runs it in steps of the dt the graph is
read at (the same dt that turns the leaky models' ``τ`` into decays: ``--dt``, the file's kdsnn metadata, its
reading record, or 1; :mod:`~kdsnn.export.reading`): ``d = τ/dt`` must be a whole number ≥ 0 (a fractional
delay has no discrete-time reading and is refused, naming the node and the value), and then
``y[t] = x[t − d]`` with ``x = 0`` before the first step. A delay is not a synapse: it moves values in time,
multiplies nothing, and no SynOp is counted for it (docs/synops.md).
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import nir
import numpy as np
import torch

from kdsnn.errors import KdsnnError

if TYPE_CHECKING:  # the view imports this module
    from .graph_view import GraphView, SourcePath

WHOLE = 1e-9  # relative tolerance of "a whole number of steps": τ/dt of a float τ written as d·dt


def delay_steps(node: nir.Delay, dt: float, size: int, name: str) -> np.ndarray:
    """The node's delays in steps of ``dt``, one per element of its ``size`` elements, or a one-line refusal."""
    tau = np.asarray(node.delay, dtype=np.float64).ravel()
    if tau.size not in (1, size):
        raise KdsnnError(f"NIR node {name!r}: Delay has {tau.size} delays for an input of {size} elements "
                         "(give one per element, or one for all)")
    if not np.all(np.isfinite(tau)) or np.any(tau < 0):
        bad = float(tau[~(np.isfinite(tau) & (tau >= 0))][0])
        raise KdsnnError(f"NIR node {name!r}: Delay of {bad:g} s is not a delay (a delay is finite and ≥ 0)")
    steps = tau / dt
    whole = np.round(steps)
    off = np.abs(steps - whole) > WHOLE * np.maximum(1.0, np.abs(steps))
    if np.any(off):
        i = int(np.flatnonzero(off)[0])
        raise KdsnnError(f"NIR node {name!r}: Delay of {tau[i]:g} s is {steps[i]:g} steps of dt = {dt:g} s, not a "
                         "whole number; kdsnn runs delays in whole steps (give the dt the file was written for with "
                         "--dt, or round the delay)")
    return np.broadcast_to(whole.astype(np.int64), (size,)).copy()


def delayed(seq: torch.Tensor, steps: np.ndarray) -> torch.Tensor:
    """``seq`` ``[T, B, ...]`` with element ``i`` of each step moved ``steps[i]`` steps later (zeros before)."""
    t = seq.shape[0]
    flat = seq.reshape(t, seq.shape[1], -1)
    out = torch.zeros_like(flat)
    for d in np.unique(steps).tolist():
        if d >= t:
            continue
        cols = torch.as_tensor(np.flatnonzero(steps == d))
        out[d:, :, cols] = flat[:t - d, :, cols] if d else flat[:, :, cols]
    return out.reshape(seq.shape)


def delayed_step(history: list[torch.Tensor], steps: np.ndarray) -> torch.Tensor:
    """One step of a delay: ``history`` holds its inputs so far (the newest last), element ``i`` reads the one
    ``steps[i]`` steps back (zero before the first step). Only the last ``max(steps) + 1`` need be kept."""
    now = history[-1]
    flat = now.reshape(now.shape[0], -1)
    out = torch.zeros_like(flat)
    for d in np.unique(steps).tolist():
        if d < len(history):
            cols = torch.as_tensor(np.flatnonzero(steps == d))
            out[:, cols] = history[-1 - d].reshape(now.shape[0], -1)[:, cols]
    return out.reshape(now.shape)


def path_delay(view: GraphView, path: SourcePath) -> np.ndarray | None:
    """How many steps each element of ``path.source`` waits on the Delay nodes of ``path`` before it reaches the
    path's end (None: no Delay on it). A delay before any synapse or pool delays each source element by its own
    count; after one (values summed over sources), only a delay equal for all elements can be read as a delay of
    the source's spikes: a per-element one there is refused in one line."""
    if not any(q in view.delays for q in path.nodes):
        return None
    steps = np.zeros(view.size(path.source), dtype=np.int64)
    summed = None  # the node after which elements no longer match the source's
    for q in path.nodes:
        if q in view.delays:
            d = view.delays[q]
            if summed is None:
                steps = steps + d
            elif np.all(d == d[0]):
                steps = steps + int(d[0])
            else:
                raise KdsnnError(f"Delay node {q!r} delays the elements of {summed!r}'s output by different amounts "
                                 f"after it summed over {path.source!r}'s elements: only a delay before the synapse "
                                 "(one per presynaptic element) or one equal for all elements can be delivered as "
                                 "delayed spikes (the PyTorch graph runtime, --backend pytorch, runs it)")
        elif not isinstance(view.nodes[q], nir.Flatten):
            summed = summed or q
    return steps


def without_delays(view: GraphView, path: SourcePath) -> SourcePath:
    """``path`` without its Delay nodes (they pass values on unchanged, only later): what its synapses see."""
    return replace(path, nodes=tuple(q for q in path.nodes if q not in view.delays))
