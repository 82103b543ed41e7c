"""What every neuron model answers for: the interface the graph view, the runners, the ONNX emitter
and the energy count read. A new model implements all of it (tests/kdsnn/test_neuron_models.py
checks each model in ``MODELS`` against it), so no consumer has to know the model's kind.
"""
from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


class OnnxOps(Protocol):
    """What a model's :meth:`NeuronModel.onnx_step` writes with: ONNX operators of one population at one
    step (names are made unique by the emitter; ``suffix`` only makes them readable)."""

    def param(self, key: str) -> str:
        """The initializer holding parameter ``key`` of :meth:`NeuronModel.onnx_params`, shaped like the
        population."""
        ...

    def op(self, op_type: str, inputs: list[str], suffix: str = "") -> str:
        """One standard ONNX operator (``Add``, ``Sub``, ``Mul``, ``Greater``, ``Where``, ...); its output."""
        ...

    def as_float(self, x: str, suffix: str = "") -> str:
        """A boolean tensor cast to float32 (spikes)."""
        ...

    def const(self, value: float, dtype: str = "float32", suffix: str = "") -> str:
        """A scalar constant of ``dtype`` ("float32" or "int64")."""
        ...

    def cast(self, x: str, dtype: str, suffix: str = "") -> str:
        """``x`` cast to ``dtype`` ("float32" or "int64"; float to int64 truncates toward zero)."""
        ...


@runtime_checkable
class NeuronModel(Protocol):
    """One population's parameters and its discrete-time dynamics (the reference ``step``).

    A spiking model also has ``charge(x, state)``: the state before firing and reset, whose
    ``membrane`` is the pre-reset membrane the simulator's counters read."""

    kind: ClassVar[str]        # the model's name, as messages and summaries show it
    spiking: ClassVar[bool]    # False: a readout whose output is its membrane (LI, Integrator)
    state_vars: ClassVar[tuple[str, ...]]  # its state variables, the membrane "v" first (ONNX step form inputs)
    reset: str                 # "hard" (to v_reset) or "soft" (subtract θ)
    dt: float

    def size_ok(self, n: int) -> str | None:
        """Why its parameters cannot drive a population of ``n`` neurons (None if they can)."""
        ...

    def integer_exact(self) -> bool:
        """Whether integer inputs keep its state exact (its integer semantics hold)."""
        ...

    def summary(self) -> str:
        """Its parameters in one line (``inspect``)."""
        ...

    def initial_state(self, like: Any) -> Any:
        """The resting state, shaped like one step's input."""
        ...

    def membrane(self, state: Any) -> Any:
        """The membrane held in ``state``."""
        ...

    def step(self, x: Any, state: Any) -> tuple[Any, Any]:
        """One step (numpy or torch): (output, new state); the reference every implementation is held to."""
        ...

    def run(self, x_seq: Any) -> tuple[Any, Any]:
        """All steps of ``x_seq`` ``[T, ...]`` from rest: (outputs, membranes after each step)."""
        ...

    def decay_rates(self) -> list[np.ndarray]:
        """The per-step leak ``dt/τ`` of each state variable it decays (none: an empty list); energy prices
        one decay per decaying variable, neuron and step."""
        ...

    def onnx_problem(self) -> str | None:
        """Why ONNX's float32 operators cannot state this population exactly (None if they can)."""
        ...

    def onnx_params(self) -> list[tuple[str, np.ndarray]]:
        """The parameters its ONNX step reads, as flat arrays of 1 or n values."""
        ...

    def onnx_step(self, ops: OnnxOps, x: str, state: dict[str, str | None]) -> tuple[str, dict[str, str]]:
        """Its step as ONNX operators, the same operations in the same order as :meth:`step` on torch:
        input ``x``, ``state`` by variable (None: at rest, the first step) → (output, new state)."""
        ...
