"""The leaky integrator (NIR ``LI``), a non-spiking readout: its output is its membrane.

NIR's ODE ``τ dv/dt = (v_leak − v) + r·x``, forward Euler with step ``dt`` (as NIR's
reference and Norse), ``a = dt/τ`` (0 where τ = ∞)::

    v[t] = v[t-1] + a·(v_leak − v[t-1] + r·x[t]),   output y[t] = v[t],   v[0] = 0

Integer semantics (Loihi's fixed point): ``a = dv/4096``, ``r·a = 1``, ``v_leak = 0``;
``v[t] = trunc_{1/64}(v[t-1]·(4096 − dv)/4096) + x[t]``. Refusals as for LIF.
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
class LIModel:
    """One LI population: ``tau``, ``r``, ``v_leak`` (flat arrays of 1 or n values), ``dt``, ``integer``."""

    tau: np.ndarray
    r: np.ndarray
    v_leak: np.ndarray
    dt: float = 1.0
    integer: bool = False
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    kind = "LI"
    spiking = False
    state_vars = ("v",)
    reset = "hard"

    def __post_init__(self) -> None:
        a, g = L.euler(self.tau, self.r, self.dt)
        if self.integer:
            a, g = L.snap_fixed(a, g)
        object.__setattr__(self, "leak", a)
        object.__setattr__(self, "gain", g)
        if self.integer and self.integer_problem():
            raise KdsnnError(f"LI has no integer (Loihi fixed-point) semantics here: {self.integer_problem()}")

    @classmethod
    def from_nir(cls, node: nir.LI, dt: float = 1.0, reset: str = "hard", integer: bool = False) -> LIModel:
        return cls(tau=vector(node.tau, np.inf), r=vector(node.r, 1.0), v_leak=vector(node.v_leak, 0.0),
                   dt=float(dt), integer=integer)

    def integer_problem(self) -> str | None:
        if L.loihi_decay(self.leak) is None:
            return f"dt/τ = {float(self.leak.flat[0]):g} is not one 12-bit fraction dv/4096"
        if not np.all(self.gain == 1.0):
            return "the input gain r·dt/τ is not 1"
        return L.integer_level_problem(self.v_leak)

    def integer_exact(self) -> bool:
        return self.integer_problem() is None

    def size_ok(self, n: int) -> str | None:
        return L.check_sizes(n, tau=self.tau, r=self.r, v_leak=self.v_leak)

    def summary(self) -> str:
        return f"τ {_r(self.tau)}, r {_r(self.r)}, dt/τ {_r(self.leak)}, r·dt/τ {_r(self.gain)} (readout: membrane)"

    def initial_state(self, like: Any) -> Any:
        return L.zeros(like)

    def membrane(self, state: Any) -> Any:
        return state

    def step(self, x: Any, v: Any) -> tuple[Any, Any]:
        """One step: (output = new membrane, new membrane)."""
        if self.integer:
            v = L.fixed_decay(v, param(self, self.leak, v, "leak")) + x
        else:
            a = param(self, self.leak, x, "leak")
            v = v + a * (param(self, self.v_leak, x, "v_leak") - v + param(self, self.r, x, "r") * x)
        return v, v

    def run(self, x_seq: Any) -> tuple[Any, Any]:
        return L.run_steps(self, x_seq)

    def decay_rates(self) -> list[np.ndarray]:
        return [self.leak]

    def onnx_problem(self) -> str | None:
        return None

    def onnx_params(self) -> list[tuple[str, np.ndarray]]:
        if self.integer:  # the decay alone (unit gain, v_leak = 0): no unused initializers
            return [("leak", self.leak)]
        return [("leak", self.leak), ("r", self.r), ("v_leak", self.v_leak)]

    def onnx_step(self, ops: OnnxOps, x: str, state: dict[str, str | None]) -> tuple[str, dict[str, str]]:
        if self.integer:  # Loihi's fixed-point decay, in int64 where float32 would round
            v = L.onnx_add(ops, L.onnx_fixed_decay(ops, state["v"], "leak"), x, ".v")
        else:
            v = L.onnx_euler(ops, state["v"], x)
        return v, {"v": v}
