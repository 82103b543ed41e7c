"""The integrator (NIR ``I``), a non-spiking readout: its output is its membrane.

NIR's ODE ``dv/dt = r·x``, forward Euler with step ``dt`` (as NIR's reference and Norse)::

    v[t] = v[t-1] + r·dt·x[t],   output y[t] = v[t],   v[0] = 0

Integer semantics: ``r·dt = 1`` (every sum exact). ``r = ∞`` is refused in one line.
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
class IntegratorModel:
    """One integrator population: ``r`` (flat, 1 or n values), ``dt``, ``integer``."""

    r: np.ndarray
    dt: float = 1.0
    integer: bool = False
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    kind = "Integrator"
    spiking = False
    state_vars = ("v",)
    reset = "hard"

    def __post_init__(self) -> None:
        if not self.dt > 0:
            raise KdsnnError(f"time step dt must be positive, got {self.dt}")
        if not np.isfinite(self.r).all():
            raise KdsnnError("the integrator's r is not finite")
        object.__setattr__(self, "gain", self.r * self.dt)
        if self.integer and self.integer_problem():
            raise KdsnnError(f"Integrator has no integer semantics here: {self.integer_problem()}")

    @classmethod
    def from_nir(cls, node: nir.I, dt: float = 1.0, reset: str = "hard", integer: bool = False) -> IntegratorModel:
        return cls(r=vector(node.r, 1.0), dt=float(dt), integer=integer)

    def integer_problem(self) -> str | None:
        return None if np.all(self.gain == 1.0) else "r·dt is not 1"

    def integer_exact(self) -> bool:
        return self.integer_problem() is None

    def size_ok(self, n: int) -> str | None:
        return L.check_sizes(n, r=self.r)

    def summary(self) -> str:
        return f"r {_r(self.r)}, r·dt {_r(self.gain)} (readout: membrane)"

    def initial_state(self, like: Any) -> Any:
        return L.zeros(like)

    def membrane(self, state: Any) -> Any:
        return state

    def step(self, x: Any, v: Any) -> tuple[Any, Any]:
        """One step: (output = new membrane, new membrane)."""
        v = v + x if np.all(self.gain == 1.0) else v + param(self, self.gain, x, "gain") * x
        return v, v

    def run(self, x_seq: Any) -> tuple[Any, Any]:
        return L.run_steps(self, x_seq)

    def decay_rates(self) -> list[np.ndarray]:
        """The integrator does not leak."""
        return []

    def onnx_problem(self) -> str | None:
        return ("the float32 range proof of integer graphs covers IF populations only; the float model exports"
                if self.integer else None)

    def onnx_params(self) -> list[tuple[str, np.ndarray]]:
        return [("gain", self.gain)]

    def onnx_step(self, ops: OnnxOps, x: str, state: dict[str, str | None]) -> tuple[str, dict[str, str]]:
        """``v ← v + r·dt·x``."""
        xs = ops.op("Mul", [x, ops.param("gain")])
        v = xs if state["v"] is None else ops.op("Add", [state["v"], xs], ".v")
        return v, {"v": v}
