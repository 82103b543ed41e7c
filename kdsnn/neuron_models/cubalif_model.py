"""The current-based LIF neuron (NIR ``CubaLIF``): parameters and the one reference step.

NIR's ODEs ``τ_syn dI/dt = −I + w_in·x`` and ``τ_mem dv/dt = (v_leak − v) + r·I``, spike where
``v > θ``, then ``v = v_reset``, discretized by forward Euler with step ``dt`` (as NIR's
reference and Norse's ``LIFCell`` do: the current first, the membrane from the new current).
Per neuron, ``a_s = dt/τ_syn`` and ``a_m = dt/τ_mem`` (0 where τ = ∞)::

    I[t] = I[t-1] + a_s·(w_in·x[t] − I[t-1])
    h[t] = v[t-1] + a_m·(v_leak − v[t-1] + r·I[t])
    s[t] = 1  iff  h[t] > θ;   v[t] = v_reset where s[t] = 1, else h[t]
    (reset "soft", the rule of files written by nir < 1.0.6: v[t] = h[t] − θ·s[t]; the current is kept)
    I[0] = v[0] = 0

(Norse's ``i += x`` jump is this step with ``w_in = τ_syn/dt``.) Integer semantics (Loihi's
CUBA, as Lava's bit-accurate LIF): ``a_s = (du + 1)/4096``, ``a_m = dv/4096`` for 12-bit
``du``, ``dv``; ``w_in·a_s = r·a_m = 1``; ``v_leak = 0``; current and membrane on a 1/64 grid,
each decay rounded toward zero there::

    I[t] = trunc_{1/64}(I[t-1]·(4095 − du)/4096) + x[t]
    h[t] = trunc_{1/64}(v[t-1]·(4096 − dv)/4096) + I[t]

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
class CubaLIFModel:
    """One CubaLIF population (flat arrays of 1 or n values), ``dt`` and ``integer``."""

    tau_syn: np.ndarray
    tau_mem: np.ndarray
    r: np.ndarray
    v_leak: np.ndarray
    threshold: np.ndarray
    v_reset: np.ndarray
    w_in: np.ndarray
    dt: float = 1.0
    integer: bool = False
    reset: str = "hard"  # "hard": to v_reset (nir ≥ 1.0.6); "soft": subtract θ (the rule of files before nir 1.0.6)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    kind = "CubaLIF"
    spiking = True
    state_vars = ("v", "i")  # membrane, synaptic current

    def __post_init__(self) -> None:
        L.check_reset(self.reset)
        a_s, g_s = L.euler(self.tau_syn, self.w_in, self.dt, "τ_syn")
        a_m, g_m = L.euler(self.tau_mem, self.r, self.dt, "τ_mem")
        if self.integer:
            (a_s, g_s), (a_m, g_m) = L.snap_fixed(a_s, g_s), L.snap_fixed(a_m, g_m)
        for k, v in (("syn_leak", a_s), ("syn_gain", g_s), ("leak", a_m), ("gain", g_m)):
            object.__setattr__(self, k, v)
        if self.integer:
            why = self.integer_problem()
            if why:
                raise KdsnnError(f"CubaLIF has no integer (Loihi fixed-point) semantics here: {why}")

    @classmethod
    def from_nir(cls, node: nir.CubaLIF, dt: float = 1.0, reset: str = "hard", integer: bool = False) -> CubaLIFModel:
        return cls(tau_syn=vector(node.tau_syn, np.inf), tau_mem=vector(node.tau_mem, np.inf),
                   r=vector(node.r, 1.0), v_leak=vector(node.v_leak, 0.0),
                   threshold=vector(node.v_threshold, 1.0), v_reset=vector(getattr(node, "v_reset", None), 0.0),
                   w_in=vector(getattr(node, "w_in", None), 1.0), dt=float(dt), integer=integer, reset=reset)

    def integer_problem(self) -> str | None:
        return cuba_integer_problem(self) or L.integer_level_problem(self.v_leak, self.threshold, self.v_reset)

    def integer_exact(self) -> bool:
        return self.integer_problem() is None

    def size_ok(self, n: int) -> str | None:
        return L.check_sizes(n, tau_syn=self.tau_syn, tau_mem=self.tau_mem, r=self.r, v_leak=self.v_leak,
                             v_threshold=self.threshold, v_reset=self.v_reset, w_in=self.w_in)

    def summary(self) -> str:
        return (f"τ_syn {_r(self.tau_syn)}, τ_mem {_r(self.tau_mem)}, w_in {_r(self.w_in)}, r {_r(self.r)}, "
                f"dt/τ_syn {_r(self.syn_leak)}, dt/τ_mem {_r(self.leak)}, θ {_r(self.threshold)}, "
                + L.reset_text(self.reset, self.v_reset))

    def initial_state(self, like: Any) -> tuple[Any, Any]:
        return L.zeros(like), L.zeros(like)

    def membrane(self, state: tuple[Any, Any]) -> Any:
        return state[1]

    def charge(self, x: Any, state: tuple[Any, Any]) -> tuple[Any, Any]:
        """The new current and the pre-reset membrane."""
        i, v = state
        if self.integer:
            i = L.fixed_decay(i, param(self, self.syn_leak, i, "syn_leak")) + x
            return i, L.fixed_decay(v, param(self, self.leak, v, "leak")) + i

        def p(a: np.ndarray, key: str) -> Any:
            return param(self, a, x, key)

        i = i + p(self.syn_leak, "syn_leak") * (p(self.w_in, "w_in") * x - i)
        return i, v + p(self.leak, "leak") * (p(self.v_leak, "v_leak") - v + p(self.r, "r") * i)

    def step(self, x: Any, state: tuple[Any, Any]) -> tuple[Any, tuple[Any, Any]]:
        """One step: (spikes, (current, membrane))."""
        i, h = self.charge(x, state)
        s, v = L.fire_reset(h, param(self, self.threshold, h, "th"), param(self, self.v_reset, h, "vr"), self.reset)
        return s, (i, v)

    def run(self, x_seq: Any) -> tuple[Any, Any]:
        return L.run_steps(self, x_seq)

    def decay_rates(self) -> list[np.ndarray]:
        return [self.syn_leak, self.leak]

    def onnx_problem(self) -> str | None:
        return None

    def onnx_params(self) -> list[tuple[str, np.ndarray]]:
        if self.integer:  # the two decays alone (unit gains, v_leak = 0): no unused initializers
            return [("syn_leak", self.syn_leak), ("leak", self.leak), ("v_threshold", self.threshold),
                    ("v_reset", self.v_reset)]
        return [("syn_leak", self.syn_leak), ("w_in", self.w_in), ("leak", self.leak), ("r", self.r),
                ("v_leak", self.v_leak), ("v_threshold", self.threshold), ("v_reset", self.v_reset)]

    def onnx_step(self, ops: OnnxOps, x: str, state: dict[str, str | None]) -> tuple[str, dict[str, str]]:
        """``I ← I + a_s·(w_in·x − I)``, then LIF's step on ``I`` (integer: Loihi's fixed-point decays of both)."""
        if self.integer:
            i = L.onnx_add(ops, L.onnx_fixed_decay(ops, state["i"], "syn_leak"), x, ".i")
            h = L.onnx_add(ops, L.onnx_fixed_decay(ops, state["v"], "leak"), i, ".h")
            spikes, v = L.onnx_fire(ops, self.reset, h)
            return spikes, {"v": v, "i": i}
        i = L.onnx_current(ops, x, state["i"])
        spikes, v = L.onnx_fire(ops, self.reset, L.onnx_euler(ops, state["v"], i))
        return spikes, {"v": v, "i": i}


def cuba_integer_problem(model: CubaLIFModel | Any) -> str | None:
    """Why a current-based model's decays and gains are not Loihi's integer ones (None when they are): shared by
    CubaLIF and CubaLI, whose synaptic and membrane stages are the same."""
    if L.loihi_decay(model.syn_leak, offset=1) is None:
        return f"dt/τ_syn = {float(model.syn_leak.flat[0]):g} is not one (du + 1)/4096"
    if L.loihi_decay(model.leak) is None:
        return f"dt/τ_mem = {float(model.leak.flat[0]):g} is not one 12-bit fraction dv/4096"
    if not (np.all(model.syn_gain == 1.0) and np.all(model.gain == 1.0)):
        return "the input gains w_in·dt/τ_syn and r·dt/τ_mem are not 1"
    return None
