"""The threshold (NIR ``Threshold``): a stateless spiking nonlinearity, the Heaviside step of its input.

    s[t] = 1  iff  x[t] > θ      (strict, as NIR's docstring: z = 1 if v > v_thr)

No membrane is kept from one step to the next (its state is held at zero so that every consumer can treat it
like the other populations); its "membrane" is the step's input, what the simulator's counters read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from . import _leaky as L
from ._params import param, vector
from ._params import value_range as _r
from .protocol import OnnxOps


@dataclass(frozen=True, eq=False)
class ThresholdModel:
    """One Threshold population: ``threshold`` (flat array of 1 or n values)."""

    threshold: np.ndarray
    dt: float = 1.0
    integer: bool = False
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    kind = "Threshold"
    spiking = True
    state_vars = ("v",)
    reset = "hard"
    v_reset = np.zeros(1)

    @classmethod
    def from_nir(cls, node: nir.Threshold, dt: float = 1.0, reset: str = "hard",
                 integer: bool = False) -> ThresholdModel:
        return cls(threshold=vector(node.threshold, 0.0), dt=float(dt), integer=integer)

    def integer_exact(self) -> bool:
        return bool(np.all(self.threshold == np.round(self.threshold)))

    def size_ok(self, n: int) -> str | None:
        return L.check_sizes(n, threshold=self.threshold)

    def summary(self) -> str:
        return f"θ {_r(self.threshold)} (stateless: spikes where the input exceeds θ)"

    def initial_state(self, like: Any) -> Any:
        return L.zeros(like)

    def membrane(self, state: Any) -> Any:
        return state

    def charge(self, x: Any, state: Any) -> Any:
        """What the threshold compares: this step's input."""
        return x

    def step(self, x: Any, state: Any) -> tuple[Any, Any]:
        """One step: (spikes, the zero state)."""
        s, _ = L.fire_reset(x, param(self, self.threshold, x, "th"), 0.0, "hard")
        return s, state

    def run(self, x_seq: Any) -> tuple[Any, Any]:
        return L.run_steps(self, x_seq)

    def decay_rates(self) -> list[np.ndarray]:
        return []

    def onnx_problem(self) -> str | None:
        return None

    def onnx_params(self) -> list[tuple[str, np.ndarray]]:
        return [("v_threshold", self.threshold)]

    def onnx_step(self, ops: OnnxOps, x: str, state: dict[str, str | None]) -> tuple[str, dict[str, str]]:
        """``Greater(x, θ)`` as float spikes; the state stays zero."""
        spikes = ops.as_float(ops.op("Greater", [x, ops.param("v_threshold")], ".fired"), ".spikes")
        zero = ops.op("Sub", [x, x], ".zero")
        return spikes, {"v": zero}
