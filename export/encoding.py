"""Input encoding: what a graph's Input node receives at each step, from a user's batch.

One definition for every runner (graph runtime, reference simulator, Norse, Lava's host
layer): ``[B, ...]`` analog input is fed at every step (``direct``) or sampled as Bernoulli
spikes with p = clamp(x, 0, 1) (``bernoulli``); ``[T, B, ...]`` is taken as it is (the caller's
own encoding; an ``events`` graph takes only that: event-camera frames, one per step). In integer
mode a direct-encoded input is quantized to ``round(x / input_scale)``.
"""
from __future__ import annotations

import torch

from kdsnn.errors import KdsnnError

from .graph_view import GraphView


def encode(view: GraphView, x: torch.Tensor, timesteps: int | None = None, dtype: torch.dtype = torch.float64,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` (``[B, ...]`` or ``[T, B, ...]``) as the ``[T, B, ...]`` sequence the Input node receives."""
    x = torch.as_tensor(x)
    if x.is_complex() or not (torch.is_floating_point(x) or x.dtype in (torch.uint8, torch.bool, torch.int8,
                                                                       torch.int16, torch.int32, torch.int64)):
        raise KdsnnError(f"input dtype {x.dtype} is not a real number type")
    shape = view.input_shape
    if x.dim() == len(shape) + 1 and tuple(x.shape[1:]) == shape:
        t = int(timesteps or view.require_timesteps())
        if view.encoding == "events":
            raise KdsnnError(f"the graph takes event frames [T, B, {', '.join(map(str, shape))}] (events encoding); "
                             f"got {tuple(x.shape)} without a time axis: bin the events to T frames first")
        x = x.to(dtype)
        if view.encoding == "bernoulli":
            seq = torch.bernoulli(x.clamp(0, 1).unsqueeze(0).expand(t, *x.shape).contiguous(), generator=generator)
        else:
            seq = x.unsqueeze(0).expand(t, *x.shape)
    elif x.dim() == len(shape) + 2 and tuple(x.shape[2:]) == shape:
        if timesteps and int(timesteps) != x.shape[0]:
            raise KdsnnError(f"input has {x.shape[0]} steps but timesteps={timesteps} was asked for")
        seq = x.to(dtype)
    else:
        raise KdsnnError(f"input shape {tuple(x.shape)} does not match the graph's input {shape} "
                         "([B, ...] or [T, B, ...])")
    if view.integer and view.input_scale and view.encoding == "direct":
        seq = torch.round(seq / view.input_scale)
    return seq


def input_bound(view: GraphView) -> float:
    """Largest |value| the graph's (quantized) input can take for data in the source range [0, 1]: 1 for spike
    input; for an integer direct-encoded graph ``round(max |x − mean| / std / input_scale)``; the calibrated
    input step's ``2^(b−1) − 1`` where the preprocessing is not recorded."""
    if view.spike_input:
        return 1.0
    meta = view.meta
    pre = meta.get("preprocessing") or {}
    mean, std = pre.get("mean"), pre.get("std")
    if mean is not None and std and view.input_scale:
        top = max(max(abs(0 - m), abs(1 - m)) / s for m, s in zip(mean, std, strict=True))
        return float(round(top / view.input_scale))
    return float(2 ** (int(meta.get("bits", 8)) - 1) - 1)  # calibrated input step: |x_int| <= 2^(b-1) - 1
