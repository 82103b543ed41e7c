"""Parameter handling shared by the neuron models: NIR values as flat arrays, and those arrays
broadcast over a population's leading axes in the caller's kind (numpy, or torch on its device)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kdsnn.errors import KdsnnError


def vector(value: Any, default: float) -> np.ndarray:
    """A NIR parameter (scalar, array or None) as a flat float64 array."""
    if value is None:
        return np.full(1, float(default))
    return np.asarray(value, dtype=np.float64).ravel()


def trailing(shape: tuple[int, ...], n: int) -> tuple[int, ...]:
    """The shortest trailing part of ``shape`` holding ``n`` elements: per-neuron parameters of a
    population ``[..., C, H, W]`` broadcast over the leading (batch, time) axes."""
    for k in range(1, len(shape) + 1):
        if int(np.prod(shape[-k:])) == n:
            return shape[-k:]
    raise KdsnnError(f"{n} per-neuron parameters do not fit a population of shape {shape}")


def param(model: Any, value: np.ndarray, like: Any, key: str) -> Any:
    """``value`` (1 or n entries) in ``like``'s kind: numpy in its float dtype, torch in its dtype/device.

    Torch tensors are cached on the model per shape of ``like`` (a step loop asks for the same
    parameter at every step: the lookup must cost next to nothing)."""
    if isinstance(like, torch.Tensor):
        ck = (key, like.dtype, like.device, like.shape)
        t = model._cache.get(ck)
        if t is None:
            v = value.reshape(trailing(tuple(like.shape), value.size)) if value.size != 1 else value.reshape(())
            t = model._cache[ck] = torch.as_tensor(v, dtype=like.dtype, device=like.device)
        return t
    if value.size != 1:
        value = value.reshape(trailing(tuple(like.shape), value.size))
    dtype = like.dtype.type if isinstance(like, np.ndarray) and like.dtype.kind == "f" else np.float64
    return value.astype(dtype, copy=False) if value.size != 1 else dtype(value.flat[0])


def value_range(a: Any) -> str:
    """``"lo..hi"`` of an array of parameters (one value when they are all equal), for summaries."""
    a = np.asarray(a)
    if a.size == 0 or a.dtype.kind == "c":  # what inspect shows of a file kdsnn refuses (an empty or complex array)
        return "empty" if a.size == 0 else f"complex ({a.dtype})"
    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    return f"{lo:.4g}" if lo == hi else f"{lo:.4g}..{hi:.4g}"
