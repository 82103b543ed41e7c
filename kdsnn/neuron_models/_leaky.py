"""What the leaky models (LIF, CubaLIF, LI, Integrator) share: NIR parameters as flat arrays,
forward-Euler coefficients with their one-line refusals, Loihi's fixed-point decay, the firing
and reset, and the same steps as ONNX operators.

Forward Euler with step ``dt`` (as NIR's reference and Norse discretize NIR's ODEs): an ODE
``τ dv/dt = (v_leak − v) + r·x`` becomes ``v ← v + (dt/τ)·(v_leak − v + r·x)``. The two
coefficients are the leak ``a = dt/τ`` and the input gain ``g = r·dt/τ``; ``τ = ∞`` means no
leak (``a = 0``). They are refused where undefined (``r = τ = ∞``: ``∞/∞``), where Euler is
meaningless (``dt/τ > 1``: the membrane would overshoot its leak target and oscillate), and
where τ ≤ 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kdsnn.errors import KdsnnError

from .protocol import OnnxOps

LOIHI_DECAY = 4096  # Loihi's decays are 12-bit fractions of 4096 (Lava's decay_unity)
LOIHI_FRACTION = 64  # Loihi holds u and v with 6 more bits than the synaptic input (act_shift)


def euler(tau: np.ndarray, r: np.ndarray, dt: float, what: str = "τ") -> tuple[np.ndarray, np.ndarray]:
    """Leak ``dt/τ`` and input gain ``r·dt/τ`` of ``τ dv/dt = −v + r·x``, or a one-line refusal."""
    if not dt > 0:
        raise KdsnnError(f"time step dt must be positive, got {dt}")
    if np.isnan(tau).any() or np.isnan(r).any():
        raise KdsnnError(f"{what} or r is NaN")
    if (tau <= 0).any():
        raise KdsnnError(f"{what} must be positive (got {float(tau.min()):g})")
    both = np.isinf(tau) & np.isinf(r)
    if both.any():
        raise KdsnnError(f"{what} = ∞ with r = ∞ leaves the input gain r·dt/{what} = ∞/∞ undefined "
                         "(snnTorch writes its β = 1 Leaky so): the neuron's dynamics cannot be read from the file")
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(np.isinf(tau), 0.0, dt / tau)
        g = np.where(np.isinf(tau), 0.0, r * dt / tau)
    if (a > 1).any():
        raise KdsnnError(f"dt/{what} = {float(a.max()):g} > 1 at dt = {dt:g}: forward Euler is meaningless there "
                         f"(was the file written for another dt? give --dt)")
    if np.isinf(g).any() or np.isnan(g).any():
        raise KdsnnError(f"input gain r·dt/{what} is not finite (r = ∞ with finite {what})")
    return a, g


SNAP = 1e-9  # a decay or gain within this of a 12-bit fraction (or of 1) is that value written in floating point


def snap_fixed(a: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An integer model's leak snapped to the nearest ``k/4096`` and its gain to 1 where a file states them up to
    floating-point rounding (``dt/τ`` with ``τ = 4096·dt/k`` is rarely ``k/4096`` to the last bit); ``k/4096`` is
    exact in binary, so the fixed-point step then runs on exact integers."""
    k = np.round(a * LOIHI_DECAY)
    a = np.where(np.abs(a * LOIHI_DECAY - k) <= SNAP * LOIHI_DECAY, k / LOIHI_DECAY, a)
    return a, np.where(np.abs(gain - 1.0) <= SNAP, 1.0, gain)


def loihi_decay(a: np.ndarray, offset: int = 0, what: str = "decay") -> int | None:
    """The 12-bit Loihi decay constant ``d`` with ``(d + offset)/4096 = a`` (one value), or None."""
    if a.size != 1 and not (a == a.flat[0]).all():
        return None
    k = float(a.flat[0]) * LOIHI_DECAY - offset
    if k != round(k) or not 0 <= k <= LOIHI_DECAY - 1:
        return None
    return int(k)


def fixed_decay(v: Any, a: Any) -> Any:
    """Loihi's decay of a membrane held on the 1/64 grid: ``v·(1 − a)`` rounded toward zero to
    1/64 (``sign(p)·(|p| >> 12)`` with ``p = 64·v·(4096 − 4096·a)``, as Lava's bit-accurate LIF)."""
    keep = LOIHI_DECAY - a * LOIHI_DECAY
    p = v * LOIHI_FRACTION * keep
    if isinstance(p, torch.Tensor):
        return torch.sign(p) * torch.floor(p.abs() / LOIHI_DECAY) / LOIHI_FRACTION
    return np.sign(p) * np.floor(np.abs(p) / LOIHI_DECAY) / LOIHI_FRACTION


DECAY_RULES = ("loihi", "xylo")  # an integer leaky model's decay: Loihi's 12-bit fraction, or Xylo's bit shift


XYLO_DASH_MAX = 15  # Xylo's dash is 4 bits (deploy/targets/xylo.py DASH_MEM: the longest decay, 2^15·dt)


def xylo_dash(a: np.ndarray) -> int | None:
    """Xylo's ``dash`` with ``a = 2^−dash`` (one value, ``0 ≤ dash ≤ 15``), or None."""
    if a.size != 1 and not (a == a.flat[0]).all():
        return None
    v = float(a.flat[0])
    if not 0 < v <= 1:
        return None
    dash = round(-np.log2(v))
    return dash if 0 <= dash <= XYLO_DASH_MAX and 2.0 ** -dash == v else None


def shift_decay(v: Any, dash: int) -> Any:
    """Xylo's decay of an integer state: ``v − (v >> dash)``, the arithmetic right shift (floor of ``v/2^dash``,
    toward −∞ for negative ``v``), as SynSense documents Xylo's neurons (bit-shift decay, ``dash``)."""
    if isinstance(v, torch.Tensor):
        return v - torch.floor(v / 2 ** dash)
    return v - np.floor(v / 2 ** dash)


def zeros(like: Any) -> Any:
    """The resting state shaped like one step's input, in its float dtype (float64 for integer arrays)."""
    if isinstance(like, torch.Tensor):
        return torch.zeros_like(like)
    like = np.asarray(like)
    return np.zeros(like.shape, dtype=like.dtype if like.dtype.kind == "f" else np.float64)


def fire_reset(h: Any, th: Any, v_reset: Any, reset: str) -> tuple[Any, Any]:
    """Spikes ``h > θ`` and the membrane after reset (to ``v_reset``, or θ subtracted)."""
    fired = h > th
    if isinstance(h, torch.Tensor):
        s = fired.to(h.dtype)
        return s, (torch.where(fired, torch.as_tensor(v_reset, dtype=h.dtype, device=h.device).expand_as(h), h)
                   if reset == "hard" else h - th * s)
    s = fired.astype(h.dtype if h.dtype.kind == "f" else np.float64)
    return s, (np.where(fired, np.broadcast_to(v_reset, h.shape), h) if reset == "hard" else h - th * s)


def run_steps(model: Any, x_seq: Any) -> tuple[Any, Any]:
    """All steps of ``x_seq`` ``[T, ...]`` from rest: (outputs ``[T, ...]``, membranes ``[T, ...]``)."""
    state = model.initial_state(x_seq[0])
    outs, membranes = [], []
    for t in range(x_seq.shape[0]):
        o, state = model.step(x_seq[t], state)
        outs.append(o)
        membranes.append(model.membrane(state))
    stack = torch.stack if isinstance(x_seq, torch.Tensor) else np.stack
    return stack(outs), stack(membranes)


def check_sizes(n: int, **params: np.ndarray) -> str | None:
    for what, a in params.items():
        if a.size not in (1, n):
            return f"{what} has {a.size} values but the population has {n} neurons"
    return None


def integer_level_problem(v_leak: np.ndarray, threshold: np.ndarray | None = None,
                          v_reset: np.ndarray | None = None) -> str | None:
    """What Loihi's fixed point cannot hold among a leaky model's levels: a non-zero leak target,
    a non-integer θ or v_reset (None when it can hold them all)."""
    if np.any(v_leak != 0):
        return "v_leak is not 0"
    if threshold is not None and not (np.all(threshold == np.round(threshold))
                                      and np.all(v_reset == np.round(v_reset))):
        return "θ or v_reset is not an integer"
    return None


def onnx_fixed_decay(ops: OnnxOps, v: str | None, key: str) -> str | None:
    """:func:`fixed_decay` as ONNX operators, exact: the membrane's 1/64 grid as an int64 (``64·v`` is an integer
    below 2^24, so float32 holds it), times ``4096 − 4096·a`` (``a`` a 12-bit fraction: exact), divided by 4096
    in int64 (ONNX's integer Div truncates toward zero: ``sign(p)·(|p| >> 12)``), back to float32 on the grid.
    ``v`` None: at rest (decays to nothing)."""
    if v is None:
        return None
    grid = ops.cast(ops.op("Mul", [v, ops.const(float(LOIHI_FRACTION))], ".v64"), "int64", ".q")
    keep = ops.op("Sub", [ops.const(float(LOIHI_DECAY)), ops.op("Mul", [ops.param(key), ops.const(float(LOIHI_DECAY))],
                                                                  ".a4096")], ".keep")
    p = ops.op("Mul", [grid, ops.cast(keep, "int64", ".keepq")], ".p")
    q = ops.op("Div", [p, ops.const(LOIHI_DECAY, "int64")], ".shr12")
    return ops.op("Mul", [ops.cast(q, "float32", ".qf"), ops.const(1.0 / LOIHI_FRACTION)], ".decayed")


def onnx_add(ops: OnnxOps, a: str | None, b: str, suffix: str) -> str:
    """``a + b`` (``a`` None: ``b``)."""
    return b if a is None else ops.op("Add", [a, b], suffix)



def onnx_current(ops: OnnxOps, x: str, i0: str | None) -> str:
    """A current-based model's synaptic stage in ONNX: ``I ← I + a_s·(w_in·x − I)`` (``I`` starts at 0)."""
    wx = ops.op("Mul", [ops.param("w_in"), x], ".wx")
    d = wx if i0 is None else ops.op("Sub", [wx, i0], ".di")
    di = ops.op("Mul", [ops.param("syn_leak"), d], ".adi")
    return di if i0 is None else ops.op("Add", [i0, di], ".i")


def onnx_euler(ops: OnnxOps, v: str | None, x: str) -> str:
    """``h = v + a·((v_leak − v) + r·x)`` as ONNX operators (LIF, CubaLIF, LI; ``v`` None: at rest)."""
    diff = ops.param("v_leak") if v is None else ops.op("Sub", [ops.param("v_leak"), v], ".dv")
    drive = ops.op("Add", [diff, ops.op("Mul", [ops.param("r"), x], ".rx")], ".drive")
    step = ops.op("Mul", [ops.param("leak"), drive], ".step")
    return step if v is None else ops.op("Add", [v, step], ".h")


def onnx_fire(ops: OnnxOps, reset: str, h: str) -> tuple[str, str]:
    """Spikes ``h > θ`` and the membrane reset to ``v_reset`` (or θ subtracted: ``reset`` "soft"), as ONNX
    operators, in :func:`fire_reset`'s order."""
    fired = ops.op("Greater", [h, ops.param("v_threshold")], ".fired")
    spikes = ops.as_float(fired, ".spikes")
    if reset == "soft":
        return spikes, ops.op("Sub", [h, ops.op("Mul", [ops.param("v_threshold"), spikes], ".θs")], ".v")
    return spikes, ops.op("Where", [fired, ops.param("v_reset"), h], ".v")


def check_reset(reset: str) -> None:
    """A one-line refusal of an unknown reset rule."""
    if reset not in ("hard", "soft"):
        raise KdsnnError(f"unknown reset {reset!r}; choose 'hard' (to v_reset) or 'soft' (subtract θ)")


def reset_text(reset: str, v_reset: np.ndarray) -> str:
    """The reset rule for summaries."""
    from ._params import value_range

    return "reset by subtracting θ" if reset == "soft" else f"reset to {value_range(v_reset)}"
