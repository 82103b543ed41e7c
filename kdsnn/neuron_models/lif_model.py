"""The leaky integrate-and-fire neuron (NIR ``LIF``): parameters and the one reference step.

NIR's ODE ``τ dv/dt = (v_leak − v) + r·x``, spike where ``v > θ``, then ``v = v_reset``,
discretized by forward Euler with step ``dt`` (as NIR's reference and Norse's ``LIFBox`` do).
Per neuron, ``a = dt/τ`` (0 where ``τ = ∞``: no leak)::

    h[t] = v[t-1] + a·(v_leak − v[t-1] + r·x[t])
    s[t] = 1  iff  h[t] > θ                          (strict, as NIR)
    v[t] = v_reset  where s[t] = 1,  else h[t]      (reset "hard", nir ≥ 1.0.6)
    v[t] = h[t] − θ·s[t]                            (reset "soft": files written by nir < 1.0.6)
    v[0] = 0

Float semantics: the arithmetic above in the array's dtype. Integer semantics (Loihi's
fixed point, as Lava's bit-accurate LIF with ``du = 4095``): ``a = dv/4096`` for a 12-bit
``dv``, input gain ``r·a = 1``, ``v_leak = 0``, integer θ and ``v_reset``; the membrane lives
on a 1/64 grid and its decay rounds toward zero there::

    h[t] = trunc_{1/64}(v[t-1]·(4096 − dv)/4096) + x[t]

Xylo's integer semantics (``decays = "xylo"``, a graph quantized with ``kdsnn quantize --target xylo``):
``a = 2^−dash`` for an integer ``dash``, input gain 1, ``v_leak = 0``; the membrane is an integer and
decays by Xylo's bit shift (the arithmetic right shift, floor toward −∞)::

    h[t] = v[t-1] − (v[t-1] >> dash) + x[t]

Refused in one line: ``r = τ = ∞`` (undefined), ``dt/τ > 1`` (Euler meaningless), τ ≤ 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from kdsnn.errors import KdsnnError

from . import _leaky as L
from ._params import param, vector
from ._params import value_range as _r
from .protocol import OnnxOps


@dataclass(frozen=True, eq=False)
class LIFModel:
    """One LIF population: ``tau``, ``r``, ``v_leak``, ``threshold``, ``v_reset`` (flat arrays of 1
    or n values), ``dt`` and ``integer`` (Loihi's fixed point)."""

    tau: np.ndarray
    r: np.ndarray
    v_leak: np.ndarray
    threshold: np.ndarray
    v_reset: np.ndarray
    dt: float = 1.0
    integer: bool = False
    reset: str = "hard"  # "hard": to v_reset (nir ≥ 1.0.6); "soft": subtract θ (the rule of files before nir 1.0.6)
    decays: str = "loihi"  # integer mode: Loihi's 12-bit fraction, or Xylo's bit shift ("xylo")
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    kind = "LIF"
    spiking = True
    state_vars = ("v",)

    def __post_init__(self) -> None:
        L.check_reset(self.reset)
        if self.decays not in L.DECAY_RULES:
            raise KdsnnError(f"unknown decay rule {self.decays!r} (known: {', '.join(L.DECAY_RULES)})")
        a, g = L.euler(self.tau, self.r, self.dt)
        if self.integer:
            a, g = L.snap_fixed(a, g)
        object.__setattr__(self, "leak", a)
        object.__setattr__(self, "gain", g)
        if self.integer:
            why = self.integer_problem()
            if why:
                raise KdsnnError(f"LIF has no integer (Loihi fixed-point) semantics here: {why}")

    @classmethod
    def from_nir(cls, node: nir.LIF, dt: float = 1.0, reset: str = "hard", integer: bool = False,
                 decays: str = "loihi") -> LIFModel:
        """The model of a ``nir.LIF`` node; ``reset`` is the file's rule (export/reading.py: "soft" for files written
        by nir < 1.0.6, whose LIF docstring subtracted θ); ``decays`` the integer decay rule the graph states."""
        return cls(tau=vector(node.tau, np.inf), r=vector(node.r, 1.0), v_leak=vector(node.v_leak, 0.0),
                   threshold=vector(node.v_threshold, 1.0), v_reset=vector(getattr(node, "v_reset", None), 0.0),
                   dt=float(dt), integer=integer, reset=reset, decays=decays)

    def integer_problem(self) -> str | None:
        """Why the integer rule (Loihi's fixed point, or Xylo's bit shift) cannot state this population (None if it
        can)."""
        if self.decays == "xylo":
            if L.xylo_dash(self.leak) is None:
                return f"dt/τ = {float(self.leak.flat[0]):g} is not one bit-shift decay 2^−dash (0 ≤ dash ≤ 15)"
        elif L.loihi_decay(self.leak) is None:
            return f"dt/τ = {float(self.leak.flat[0]):g} is not one 12-bit fraction dv/4096"
        if not np.all(self.gain == 1.0):
            return "the input gain r·dt/τ is not 1"
        return L.integer_level_problem(self.v_leak, self.threshold, self.v_reset)

    def integer_exact(self) -> bool:
        return self.integer_problem() is None

    def size_ok(self, n: int) -> str | None:
        return L.check_sizes(n, tau=self.tau, r=self.r, v_leak=self.v_leak, v_threshold=self.threshold,
                             v_reset=self.v_reset)

    def summary(self) -> str:
        return (f"τ {_r(self.tau)}, r {_r(self.r)}, dt/τ {_r(self.leak)}, r·dt/τ {_r(self.gain)}, "
                f"θ {_r(self.threshold)}, " + L.reset_text(self.reset, self.v_reset)
                + (f", Xylo's bit-shift decay dash {L.xylo_dash(self.leak)}" if self.decays == "xylo" else ""))

    def initial_state(self, like: Any) -> Any:
        return L.zeros(like)

    def membrane(self, state: Any) -> Any:
        return state

    def charge(self, x: Any, v: Any) -> Any:
        """The pre-reset membrane ``h`` from input ``x`` and membrane ``v``."""
        if self.integer and self.decays == "xylo":
            return L.shift_decay(v, L.xylo_dash(self.leak)) + x
        if self.integer:
            return L.fixed_decay(v, param(self, self.leak, v, "leak")) + x
        a = param(self, self.leak, x, "leak")
        return v + a * (param(self, self.v_leak, x, "v_leak") - v + param(self, self.r, x, "r") * x)

    def step(self, x: Any, v: Any) -> tuple[Any, Any]:
        """One step: (spikes, new membrane)."""
        h = self.charge(x, v)
        return L.fire_reset(h, param(self, self.threshold, h, "th"), param(self, self.v_reset, h, "vr"), self.reset)

    def run(self, x_seq: Any) -> tuple[Any, Any]:
        """All steps of ``x_seq`` ``[T, ...]``: (spikes, membranes after each step)."""
        return L.run_steps(self, x_seq)

    def decay_rates(self) -> list[np.ndarray]:
        return [self.leak]

    def onnx_problem(self) -> str | None:
        return None

    def onnx_params(self) -> list[tuple[str, np.ndarray]]:
        levels = [("v_threshold", self.threshold), ("v_reset", self.v_reset)]
        if self.integer:  # the decay alone (r·dt/τ = 1, v_leak = 0): no unused initializers
            return [("leak", self.leak), *levels]
        return [("leak", self.leak), ("r", self.r), ("v_leak", self.v_leak), *levels]

    def onnx_step(self, ops: OnnxOps, x: str, state: dict[str, str | None]) -> tuple[str, dict[str, str]]:
        if self.integer and self.decays == "xylo":  # v − floor(v·2^−dash) + x: exact in float32 (a power of two)
            v0 = state["v"]
            h = x if v0 is None else ops.op("Add", [ops.op("Sub", [v0, ops.op("Floor", [
                ops.op("Mul", [v0, ops.param("leak")], ".vs")], ".shift")], ".dv"), x], ".h")
        elif self.integer:  # Loihi's fixed-point decay, in int64 where float32 would round
            h = L.onnx_add(ops, L.onnx_fixed_decay(ops, state["v"], "leak"), x, ".h")
        else:
            h = L.onnx_euler(ops, state["v"], x)
        spikes, v = L.onnx_fire(ops, self.reset, h)
        return spikes, {"v": v}
