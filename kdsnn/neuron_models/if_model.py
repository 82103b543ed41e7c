"""The integrate-and-fire neuron (NIR ``IF``): parameters and the one reference step.

Discrete time, step ``dt``, per neuron (DESIGN.md's contract)::

    h[t] = v[t-1] + r·dt·x[t]                 (r·dt = 1: h = v + x, exact for integers)
    s[t] = 1  iff  h[t] > θ                    (strict, as NIR's IF and Lava)
    v[t] = v_reset        where s[t] = 1       (reset "hard": to v_reset, NIR ≥ 1.0.6)
    v[t] = h[t] − θ·s[t]                       (reset "soft": subtract θ, NIR < 1.0.6)
    v[0] = 0

Float semantics: the arithmetic above in the array's dtype. Integer semantics: the same
operations on integer-valued float64 (or integer) arrays with r·dt = 1, integer θ and
v_reset; every sum is exact, so any implementation gives the same bits. Every other IF
implementation in kdsnn (training kernels, graph runtime, simulator paths, ONNX emitter,
Lava/netx mapping) is held to :meth:`IFModel.step` by tests/test_neuron_conformance.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import torch

from kdsnn.errors import KdsnnError

from ._params import param, value_range, vector
from .protocol import OnnxOps

RESETS = ("hard", "soft")


@dataclass(frozen=True, eq=False)
class IFModel:
    """One IF population's parameters (flat arrays of 1 or n values, broadcast per neuron).

    ``threshold`` θ, ``r`` (NIR's input gain), ``v_reset``, ``reset`` ("hard" or "soft"),
    ``dt`` (the step; ``r·dt`` scales the input). Build it from a NIR node with :meth:`from_nir`.
    """

    threshold: np.ndarray
    r: np.ndarray
    v_reset: np.ndarray
    reset: str = "hard"
    dt: float = 1.0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    kind = "IF"
    spiking = True
    state_vars = ("v",)

    def __post_init__(self) -> None:
        if self.reset not in RESETS:
            raise KdsnnError(f"unknown IF reset {self.reset!r}; choose 'hard' (to v_reset) or 'soft' (subtract θ)")
        if not self.dt > 0:
            raise KdsnnError(f"time step dt must be positive, got {self.dt}")
        gain = self.r * self.dt  # derived once: a step loop reads them at every step
        object.__setattr__(self, "_derived", {"gain": gain, "unit_gain": bool(np.all(gain == 1.0))})

    @classmethod
    def from_nir(cls, node: nir.IF, dt: float = 1.0, reset: str = "hard", integer: bool = False) -> IFModel:
        """The model of a ``nir.IF`` node; ``reset`` is decided by the reader (file version, options);
        ``integer`` changes nothing (IF's integer semantics are its float ones on integers)."""
        return cls(threshold=vector(node.v_threshold, 1.0), r=vector(node.r, 1.0),
                   v_reset=vector(getattr(node, "v_reset", None), 0.0), reset=reset, dt=float(dt))

    @property
    def gain(self) -> np.ndarray:
        """What one step multiplies the input by: ``r·dt``."""
        return self._derived["gain"]

    @property
    def unit_gain(self) -> bool:
        """Whether ``r·dt = 1`` everywhere (the input is added as it is)."""
        return self._derived["unit_gain"]

    def integer_exact(self) -> bool:
        """Whether integer currents keep integer membranes: ``r·dt = 1``, finite integer θ floor and v_reset."""
        return bool(self.unit_gain and np.isfinite(self.threshold).all() and np.isfinite(self.v_reset).all()
                    and (self.v_reset == np.round(self.v_reset)).all()
                    and (self.reset == "hard" or (self.threshold == np.round(self.threshold)).all()))

    def summary(self) -> str:
        """Parameters as ``inspect`` shows them."""
        rule = f"reset to {value_range(self.v_reset)}" if self.reset == "hard" else "reset by subtracting θ"
        return f"θ {value_range(self.threshold)}, r {value_range(self.r)}, r·dt {value_range(self.gain)}, {rule}"

    def membrane(self, state: Any) -> Any:
        return state

    def size_ok(self, n: int) -> str | None:
        """Why parameters of this model cannot drive a population of ``n`` neurons (None if they can)."""
        for what, a in (("v_threshold", self.threshold), ("r", self.r), ("v_reset", self.v_reset)):
            if a.size not in (1, n):
                return f"{what} has {a.size} values but the population has {n} neurons"
        return None

    def _param(self, name: str, like: Any) -> Any:
        """Parameter ``name`` in ``like``'s kind: numpy as stored, torch in its dtype and device (cached)."""
        return param(self, getattr(self, name) if name != "gain" else self.gain, like, name)

    def initial_state(self, like: Any) -> Any:
        """``v[0] = 0`` shaped like one step's input."""
        return (torch.zeros_like(like) if isinstance(like, torch.Tensor)
                else np.zeros_like(np.asarray(like, dtype=np.float64)))

    def charge(self, x: Any, v: Any) -> Any:
        """``h = v + r·dt·x`` (``v + x`` when ``r·dt = 1``)."""
        return v + x if self.unit_gain else v + self._param("gain", x) * x

    def fire_reset(self, h: Any) -> tuple[Any, Any]:
        """Spikes and the membrane after reset, from the pre-reset membrane ``h``."""
        th = self._param("threshold", h)
        fired = h > th
        if isinstance(h, torch.Tensor):
            s = fired.to(h.dtype)
            v = torch.where(fired, self._param("v_reset", h), h) if self.reset == "hard" else h - th * s
            return s, v
        s = fired.astype(h.dtype if h.dtype.kind == "f" else np.float64)
        v = (np.where(fired, np.broadcast_to(self._param("v_reset", h), h.shape), h) if self.reset == "hard"
             else h - th * s)
        return s, v

    def step(self, x: Any, v: Any) -> tuple[Any, Any]:
        """One step: input ``x`` and membrane ``v`` (numpy or torch, ``[..., n]``) → (spikes, new membrane)."""
        return self.fire_reset(self.charge(x, v))

    def run(self, x_seq: Any) -> tuple[Any, Any]:
        """All steps of ``x_seq`` ``[T, ...]`` from rest: (spikes ``[T, ...]``, membranes after each step
        ``[T, ...]``)."""
        v = self.initial_state(x_seq[0])
        spikes, membranes = [], []
        for t in range(x_seq.shape[0]):
            s, v = self.step(x_seq[t], v)
            spikes.append(s)
            membranes.append(v)
        stack = torch.stack if isinstance(x_seq, torch.Tensor) else np.stack
        return stack(spikes), stack(membranes)

    def decay_rates(self) -> list[np.ndarray]:
        """IF does not leak."""
        return []

    # ------------------------------------------------------------------ ONNX
    def onnx_problem(self) -> str | None:
        """None: float32 operators state IF exactly (integer graphs: the emitter proves their range)."""
        return None

    def onnx_params(self) -> list[tuple[str, np.ndarray]]:
        """θ, v_reset (hard reset) and ``r·dt`` (only where it is not 1)."""
        items = [("v_threshold", self.threshold)] + ([("v_reset", self.v_reset)] if self.reset == "hard" else [])
        return items + ([] if self.unit_gain else [("gain", self.gain)])

    def onnx_step(self, ops: OnnxOps, x: str, state: dict[str, str | None]) -> tuple[str, dict[str, str]]:
        """``h = v + r·dt·x``; spike iff ``h > θ``; reset to ``v_reset`` (hard) or subtract θ (soft)."""
        if not self.unit_gain:
            x = ops.op("Mul", [x, ops.param("gain")])
        v = state["v"]
        h = x if v is None else ops.op("Add", [v, x], ".h")  # v = 0 at the first step
        fired = ops.op("Greater", [h, ops.param("v_threshold")], ".fired")
        spikes = ops.as_float(fired, ".spikes")
        if self.reset == "soft":
            return spikes, {"v": ops.op("Sub", [h, ops.op("Mul", [spikes, ops.param("v_threshold")], ".drop")], ".v")}
        return spikes, {"v": ops.op("Where", [fired, ops.param("v_reset"), h], ".v")}
