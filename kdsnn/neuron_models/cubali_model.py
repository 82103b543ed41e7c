"""The current-based leaky integrator (NIR ``CubaLI``), a non-spiking readout: its output is its membrane.

CubaLIF's two ODEs without the threshold (:mod:`.cubalif_model`): ``τ_syn dI/dt = −I + w_in·x`` and
``τ_mem dv/dt = (v_leak − v) + r·I``, forward Euler with step ``dt``, the current first::

    I[t] = I[t-1] + a_s·(w_in·x[t] − I[t-1]),   v[t] = v[t-1] + a_m·(v_leak − v[t-1] + r·I[t]),   y[t] = v[t]

with ``a_s = dt/τ_syn``, ``a_m = dt/τ_mem``. Integer semantics as CubaLIF's (Loihi's fixed point), without θ.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from . import _leaky as L
from ._params import value_range as _r
from ._params import vector
from .cubalif_model import CubaLIFModel, cuba_integer_problem
from .protocol import OnnxOps


@dataclass(frozen=True, eq=False)
class CubaLIModel(CubaLIFModel):
    """One CubaLI population: CubaLIF's parameters with no threshold (never fires, never resets)."""

    kind = "CubaLI"
    spiking = False

    @classmethod
    def from_nir(cls, node: nir.CubaLI, dt: float = 1.0, reset: str = "hard", integer: bool = False) -> CubaLIModel:
        return cls(tau_syn=vector(node.tau_syn, np.inf), tau_mem=vector(node.tau_mem, np.inf),
                   r=vector(node.r, 1.0), v_leak=vector(node.v_leak, 0.0), threshold=np.zeros(1),
                   v_reset=np.zeros(1), w_in=vector(getattr(node, "w_in", None), 1.0), dt=float(dt), integer=integer)

    def integer_problem(self) -> str | None:
        return cuba_integer_problem(self) or L.integer_level_problem(self.v_leak)

    def size_ok(self, n: int) -> str | None:
        return L.check_sizes(n, tau_syn=self.tau_syn, tau_mem=self.tau_mem, r=self.r, v_leak=self.v_leak,
                             w_in=self.w_in)

    def summary(self) -> str:
        return (f"τ_syn {_r(self.tau_syn)}, τ_mem {_r(self.tau_mem)}, w_in {_r(self.w_in)}, r {_r(self.r)}, "
                f"dt/τ_syn {_r(self.syn_leak)}, dt/τ_mem {_r(self.leak)} (readout: membrane)")

    def step(self, x: Any, state: tuple[Any, Any]) -> tuple[Any, tuple[Any, Any]]:
        """One step: (output = new membrane, (current, membrane))."""
        i, v = self.charge(x, state)
        return v, (i, v)

    def onnx_params(self) -> list[tuple[str, np.ndarray]]:
        return [("syn_leak", self.syn_leak), ("w_in", self.w_in), ("leak", self.leak), ("r", self.r),
                ("v_leak", self.v_leak)]

    def onnx_step(self, ops: OnnxOps, x: str, state: dict[str, str | None]) -> tuple[str, dict[str, str]]:
        """CubaLIF's current and membrane, no firing: the membrane is the output."""
        i = L.onnx_current(ops, x, state["i"])
        v = L.onnx_euler(ops, state["v"], i)
        return v, {"v": v, "i": i}
