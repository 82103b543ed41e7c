"""Every neuron implementation against the one reference step of its model (:mod:`kdsnn.neuron_models`).

The same currents (random float and integer, exactly at threshold, negative, near the 24-bit
bound, per-neuron thresholds, soft reset float and integer, and the leaky models) go to every
implementation: the training step and its compiled and PyTorch-op kernels, both simulator paths
(kernels directly, and whole runs forced onto each path), the ONNX step form with its membranes,
Lava's LIF process, and every backend of the registry (``kdsnn.deploy.backends.BACKENDS``: a new
backend gets its rows here without a line of this file) run on a one-population graph. Each must
give the reference's spikes (a readout's outputs), and its membranes where it exposes them, at
every step; a backend that returns only logits is held to the reference's spike counts (or mean
readout). A case an implementation cannot represent is skipped with the implementation's reason
(a backend's own ``supports``). The reference itself is checked by hand below. Adding a neuron
model is one module in kdsnn/neuron_models, one line in its ``MODELS``, and its cases here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import nir
import numpy as np
import pytest
import torch

from kdsnn import if_kernels
from kdsnn.deploy.backends import BACKENDS
from kdsnn.deploy.simulator import V_MAX
from kdsnn.export.graph import set_meta
from kdsnn.export.graph_view import GraphView
from kdsnn.neuron_models import MODELS, IFModel
from kdsnn.neurons import IFParams, _forward_steps, if_step

T, B, N = 9, 3, 12
V24 = V_MAX  # 2^23 − 1: the largest 24-bit membrane


@dataclass
class Case:
    name: str
    threshold: np.ndarray      # [N] (per neuron) or [1]
    v_reset: float
    reset: str
    x: np.ndarray              # [T, B, N]
    integer: bool
    node: nir.NIRNode | None = None   # a leaky model's NIR node (LIF, CubaLIF, LI, I); None: IF from the fields above
    dt: float = 1.0
    decays: str = "loihi"  # an integer LIF's decay rule: Loihi's 12-bit fraction, or Xylo's bit shift

    @property
    def per_neuron(self) -> bool:
        return self.threshold.size > 1

    @property
    def kind(self) -> str:
        return "IF" if self.node is None else self.model().kind

    def model(self):
        if self.node is not None:
            rule = {"decays": self.decays} if self.decays != "loihi" else {}
            return MODELS[type(self.node)](self.node, dt=self.dt, integer=self.integer, reset=self.reset, **rule)
        return IFModel(threshold=self.threshold.astype(np.float64), r=np.ones(1), v_reset=np.array([self.v_reset]),
                       reset=self.reset)


def _full(v: float) -> np.ndarray:
    return np.full(N, float(v))


def _leaky_cases(rng: np.random.Generator) -> list[Case]:
    """Leaky models: float (NIR's forward Euler with dt; τ powers of two where Norse must agree bit for
    bit) and integer (Loihi's 12-bit decays: dt/τ = dv/4096, (du + 1)/4096; unit input gains)."""
    one, z = np.ones(1), _full(0.0)
    flt = lambda mu, sd: rng.normal(mu, sd, (T, B, N)).astype(np.float32).astype(np.float64)  # noqa: E731
    ints = lambda lo, hi: rng.integers(lo, hi, (T, B, N)).astype(np.float64)  # noqa: E731
    taus = 2.0 ** rng.integers(1, 5, N)
    return [
        Case("lif_float", one, 0.0, "hard", flt(0.5, 0.6), False,
             nir.LIF(tau=taus, r=_full(1.0), v_leak=z, v_threshold=_full(1.0), v_reset=z)),
        Case("lif_leak_gain_dt", one, 0.0, "hard", flt(0.1, 0.1), False,
             nir.LIF(tau=_full(1e-3), r=_full(10.0), v_leak=_full(0.05), v_threshold=_full(1.0), v_reset=_full(-0.1)),
             dt=1e-4),
        Case("cubalif_float", one, 0.0, "hard", flt(0.4, 0.5), False,
             nir.CubaLIF(tau_syn=_full(4.0), tau_mem=taus, r=_full(1.0), v_leak=z, v_threshold=_full(0.5),
                         v_reset=z, w_in=_full(4.0))),
        Case("cubalif_gain", one, 0.0, "hard", flt(0.2, 0.5), False,
             nir.CubaLIF(tau_syn=_full(5.0), tau_mem=_full(10.0), r=_full(2.0), v_leak=_full(0.1),
                         v_threshold=_full(0.3), v_reset=z, w_in=_full(3.0))),
        Case("li_float", one, 0.0, "hard", flt(0.3, 0.6), False,
             nir.LI(tau=_full(4.0), r=_full(1.5), v_leak=_full(0.2))),
        Case("integrator_float", one, 0.0, "hard", flt(0.1, 0.6), False, nir.I(r=_full(0.5))),
        Case("lif_integer", one, 0.0, "hard", ints(-20, 41), True,
             nir.LIF(tau=_full(8.0), r=_full(8.0), v_leak=z, v_threshold=_full(37.0), v_reset=z)),
        Case("cubalif_integer", one, 0.0, "hard", ints(-15, 30), True,
             nir.CubaLIF(tau_syn=_full(4.0), tau_mem=_full(8.0), r=_full(8.0), v_leak=z, v_threshold=_full(60.0),
                         v_reset=z, w_in=_full(4.0))),
        # issue 15: the subtract reset of files written by nir < 1.0.6, CubaLI and Threshold
        Case("lif_soft_float", one, 0.0, "soft", flt(0.5, 0.6), False,
             nir.LIF(tau=taus, r=_full(1.0), v_leak=z, v_threshold=_full(1.0), v_reset=z)),
        Case("cubalif_soft_integer", one, 0.0, "soft", ints(-15, 30), True,
             nir.CubaLIF(tau_syn=_full(4.0), tau_mem=_full(8.0), r=_full(8.0), v_leak=z, v_threshold=_full(60.0),
                         v_reset=z, w_in=_full(4.0))),
        Case("cubali_float", one, 0.0, "hard", flt(0.3, 0.6), False,
             nir.CubaLI(tau_syn=_full(4.0), tau_mem=taus, r=_full(1.0), v_leak=_full(0.1), w_in=_full(4.0))),
        Case("threshold_float", one, 0.0, "hard", flt(0.2, 0.6), False, nir.Threshold(threshold=_full(0.25))),
        # Xylo's bit-shift decay (kdsnn quantize --target xylo): dt/τ = 1/4, dash 2, negative membranes floor
        Case("lif_xylo_integer", one, 0.0, "hard", ints(-20, 41), True,
             nir.LIF(tau=_full(4.0), r=_full(4.0), v_leak=z, v_threshold=_full(37.0), v_reset=z), decays="xylo"),
    ]


def _cases() -> list[Case]:
    rng = np.random.default_rng(7)
    one = np.ones(1)
    at = np.zeros((T, B, N))
    at[0], at[1], at[2], at[3], at[4] = 5, 0, 2, 3, 1   # h = 5 = θ (no spike), 5, 7 > θ (spike), 3, 4
    at[5:] = rng.integers(-5, 6, (T - 5, B, N))
    big = rng.integers(2 ** 20, 2 ** 21, (T, B, N)).astype(np.float64)
    big[::3] *= -1
    return [
        Case("float", one * 1.0, 0.0, "hard",
             rng.normal(0.35, 0.6, (T, B, N)).astype(np.float32).astype(np.float64), False),
        Case("float_soft", one * 0.75, 0.0, "soft",
             rng.normal(0.3, 0.5, (T, B, N)).astype(np.float32).astype(np.float64), False),
        Case("integer", one * 37, 0.0, "hard", rng.integers(-20, 41, (T, B, N)).astype(np.float64), True),
        Case("integer_v_reset", one * 10, -3.0, "hard", rng.integers(-6, 12, (T, B, N)).astype(np.float64), True),
        Case("integer_soft", one * 7, 0.0, "soft", rng.integers(-4, 16, (T, B, N)).astype(np.float64), True),
        Case("at_threshold", one * 5, 0.0, "hard", at, True),
        Case("negative", one * 4, 0.0, "hard", -rng.integers(0, 500, (T, B, N)).astype(np.float64), True),
        Case("near_24_bit", one * (V24 - 3 * 2 ** 20), 0.0, "hard", big, True),
        Case("per_neuron_threshold", rng.integers(1, 30, N).astype(np.float64), 0.0, "hard",
             rng.integers(-5, 15, (T, B, N)).astype(np.float64), True),
        *_leaky_cases(np.random.default_rng(11)),
    ]


CASES = _cases()


# ----------------------------------------------------------------------------- implementations
# Each returns (spikes [T, B, N], membranes after each step [T, B, N] or None, pre-reset h or None)
# and says which cases it can run (None: runs it; a string: why not, checked to be a real limit).

def _train_params(c: Case) -> IFParams:
    return IFParams(threshold=float(c.threshold[0]), reset=c.reset, v_reset=c.v_reset)


def training_step(c: Case):
    p, x = _train_params(c), torch.from_numpy(c.x)
    v, s_all, v_all = torch.zeros(B, N, dtype=torch.float64), [], []
    for t in range(T):
        s, v = if_step(x[t], v, p)
        s_all.append(s)
        v_all.append(v)
    return torch.stack(s_all).numpy(), torch.stack(v_all).numpy(), None


def training_compiled_kernel(c: Case):
    x = torch.from_numpy(c.x.copy())
    h, s = torch.empty_like(x), torch.empty_like(x)
    assert if_kernels.supported(x)
    if_kernels.if_forward(x, h, s, float(c.threshold[0]), c.reset == "hard", c.v_reset)
    return s.numpy(), None, h.numpy()


def training_torch_ops(c: Case):
    x = torch.from_numpy(c.x.copy())
    h, s = torch.empty_like(x), torch.empty_like(x)
    _forward_steps(x, h, s, _train_params(c))
    return s.numpy(), None, h.numpy()


def training_fused_autograd(c: Case):
    from kdsnn.neurons import IFNeuron
    x = torch.from_numpy(c.x.copy()).requires_grad_(True)
    s = IFNeuron(_train_params(c))(x)
    return s.detach().numpy(), None, None


def _graph(c: Case) -> nir.NIRGraph:
    ones = np.ones(N)
    node = c.node if c.node is not None else nir.IF(r=ones, v_threshold=np.broadcast_to(c.threshold, (N,)).copy(),
                                                    v_reset=ones * c.v_reset)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([N])}),
                            "if1": node,
                            "output": nir.Output(output_type={"output": np.array([N])})},
                     edges=[("input", "if1"), ("if1", "output")], type_check=False)
    set_meta(g, {"producer": "kdsnn", "timesteps": T, "encoding": "direct", "integer": c.integer,
                 "input_scale": None, "readout": "spike" if c.model().spiking else "membrane", "dt": c.dt,
                 "reset": c.reset, **({"decays": c.decays} if c.decays != "loihi" else {})})
    return g


def simulator_general_kernel(c: Case):
    from kdsnn.deploy.simulator.kernels import update_if
    v, spk = np.zeros((B, N)), np.zeros((B, N), dtype=np.uint8)
    th = np.ascontiguousarray(np.broadcast_to(c.threshold, (N,)), dtype=np.float64)
    vr, r = np.full(N, c.v_reset), np.ones(N)
    s_all, v_all = [], []
    for t in range(T):
        update_if(v, np.ascontiguousarray(c.x[t]), r, False, th, vr, np.zeros((B, N), np.bool_), spk,
                np.zeros(B, np.int64), np.zeros((B, N), np.int64), c.integer, np.zeros(3, np.int64), c.reset == "soft")
        s_all.append(spk.astype(np.float64))
        v_all.append(v.copy())
    return np.stack(s_all), np.stack(v_all), None


def simulator_fast_kernel(c: Case):
    from kdsnn.deploy.simulator.fast_kernels import _integrate
    th = np.ascontiguousarray(np.broadcast_to(c.threshold, (N,)), dtype=np.int64)
    vr = np.full(N, int(c.v_reset), dtype=np.int64)
    lim = np.array([-V24 - 1, V24, np.iinfo(np.int64).min, np.iinfo(np.int64).max], dtype=np.int64)
    s_all, v_all = np.zeros((T, B, N)), np.zeros((T, B, N))
    for b in range(B):
        v, spk = np.zeros(N, np.int64), np.zeros(N, np.uint8)
        stats = np.array([0, 0, 0, np.iinfo(np.int64).min, np.iinfo(np.int64).max], dtype=np.int64)
        for t in range(T):
            _integrate(v, c.x[t, b].astype(np.int64), v, th, vr, spk, lim, stats, False, not c.per_neuron, True)
            s_all[t, b], v_all[t, b] = spk, v
    return s_all, v_all, None


def simulator_general_run(c: Case):
    """Whole runs of the general path; a non-spiking readout's outputs are the Output's sequence."""
    from kdsnn.deploy.simulator import simulate
    res = simulate(_graph(c), torch.from_numpy(c.x), fast=False)
    out = res.spikes["if1"] if "if1" in res.spikes else res.output_seq
    return out.double().numpy(), None, None


def simulator_fast_run(c: Case):
    from kdsnn.deploy.simulator import Plan, simulate
    plan = Plan(_graph(c))
    assert plan.fast is not None, "an integer graph must take the fast path"
    return simulate(plan, torch.from_numpy(c.x), fast=True).spikes["if1"].double().numpy(), None, None


def onnx_step(c: Case, tmp_path):
    from kdsnn.export.onnx import OnnxModel, export_onnx, initial_states, run_steps
    model = OnnxModel(export_onnx(_graph(c), tmp_path / "if.onnx", "step"))
    states = initial_states(model, B)
    s_all, v_all = [], []
    for t in range(T):
        run = run_steps(model, c.x[t:t + 1].astype(np.float32), states)
        states = run.states
        s_all.append(run.outputs[0])
        v_all.append(states["v_if1"])
    return np.stack(s_all).astype(np.float64), np.stack(v_all).astype(np.float64), None


def lava_lif(c: Case):
    """Lava's bit-accurate LIF (fixed_pt) with kdsnn's IF parameters, driven with the exact integer
    currents (a source straight into its input port: the current of the step it is sent in).
    Lava holds 64·v: its membranes are read after every step and divided by 64."""
    from kdsnn.deploy.lava.runtime import lava_available

    ok, why = lava_available()  # first: it lets Lava's import set the multiprocessing start method
    assert ok, why
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    from kdsnn.deploy.lava.graph import lif_params

    source = Source(data=np.moveaxis(c.x.reshape(T, B * N), 0, -1).astype(np.int32))
    if c.node is None:
        lif = LIF(**lif_params((B * N,), int(c.threshold[0]), np.zeros(1)))
    else:  # Loihi's CUBA with the model's 12-bit decays: dt/τ_mem = dv/4096, dt/τ_syn = (du + 1)/4096
        m = c.model()
        dv = round(float(m.leak.flat[0]) * 4096)
        du = round(float(m.syn_leak.flat[0]) * 4096) - 1 if m.kind == "CubaLIF" else 4095
        lif = LIF(shape=(B * N,), du=du, dv=dv, vth=int(m.threshold.flat[0]), bias_mant=np.zeros(B * N, np.int32),
                  bias_exp=0)
    sink = Sink(shape=(B * N,), buffer=T)
    source.s_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    v_all = []
    try:
        for _ in range(T):
            source.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            v_all.append(np.asarray(lif.v.get(), dtype=np.float64) / 64)
        spikes = np.moveaxis(np.asarray(sink.data.get(), dtype=np.float64), -1, 0)
    finally:
        source.stop()
    return spikes.reshape(T, B, N), np.stack(v_all).reshape(T, B, N), None


def _lava_limit(c: Case) -> str | None:
    from kdsnn.export.loihi import STATE_MAX
    if c.node is not None:
        if not c.integer or c.kind not in ("LIF", "CubaLIF"):
            return "Loihi's fixed point: integer LIF and CubaLIF only"
        if c.reset == "soft":
            return "Lava's LIF resets to 0"
        if c.decays != "loihi":
            return "Lava's LIF decays by Loihi's 12-bit fraction, not Xylo's bit shift"
        return None
    if not c.integer or c.reset == "soft" or c.per_neuron:
        return "integer graphs, hard reset, one threshold per population"
    if c.v_reset != 0:
        return "Lava's LIF resets to 0"
    if np.abs(np.cumsum(c.x, 0)).max() > STATE_MAX:
        return "Lava holds 64·v in 24 bits: |v| ≤ 2^17 − 1"
    return None


def _backend(name: str) -> Callable:
    """Backend ``name`` of the registry on the case's one-population graph, fed the currents as ``[T, B, N]``:
    its spikes (a readout's output sequence) where it returns them, else its logits (``"logits"``)."""
    def run(c: Case, tmp_path):
        res = BACKENDS[name].run(_graph(c), torch.from_numpy(c.x), workdir=tmp_path)
        if res.spikes is not None and "if1" in res.spikes:
            return np.asarray(res.spikes["if1"], dtype=np.float64), None, None
        if res.output is not None:
            return np.asarray(res.output, dtype=np.float64), None, None
        return np.asarray(res.logits, dtype=np.float64), "logits", None
    return run


def _backend_limit(name: str) -> Callable[[Case], str | None]:
    """The backend's own word: unavailable here, or ``supports`` refuses the case's graph."""
    def limit(c: Case) -> str | None:
        ok, why = BACKENDS[name].usable_for(GraphView.of(_graph(c)))
        return None if ok else why
    return limit


def _if_only(limit: Callable[[Case], str | None]) -> Callable[[Case], str | None]:
    """An IF-only implementation's limit: leaky models are outside it."""
    return lambda c: "IF only" if c.node is not None else limit(c)


def _onnx_limit(c: Case) -> str | None:
    """The emitter's own word (each neuron model says whether float32 operators state it exactly)."""
    from kdsnn.export.onnx import onnx_supports
    ok, why = onnx_supports(GraphView.of(_graph(c)))
    return None if ok else why


_ONE_THETA = "IFParams has one θ per layer"
_FAST = "the compiled integer update resets to v_reset (a soft reset runs the general path)"

IMPLEMENTATIONS: dict[str, tuple[Callable, Callable[[Case], str | None]]] = {
    "training if_step": (training_step, _if_only(lambda c: _ONE_THETA if c.per_neuron else None)),
    "training compiled kernel": (training_compiled_kernel, _if_only(lambda c: _ONE_THETA if c.per_neuron else None)),
    "training torch ops": (training_torch_ops, _if_only(lambda c: _ONE_THETA if c.per_neuron else None)),
    "training fused autograd": (training_fused_autograd, _if_only(lambda c: _ONE_THETA if c.per_neuron else None)),
    "simulator general kernel": (simulator_general_kernel, _if_only(lambda c: None)),
    "simulator fast kernel": (simulator_fast_kernel, _if_only(lambda c: "integer graphs only" if not c.integer else
                                                              (_FAST if c.reset == "soft" else None))),
    "simulator general run": (simulator_general_run, lambda c: None),  # leaky populations step by their model
    "simulator fast run": (simulator_fast_run, _if_only(lambda c: "integer graphs only" if not c.integer else
                                                        (_FAST if c.reset == "soft" else None))),
    "onnx step": (onnx_step, _onnx_limit),
    "lava lif": (lava_lif, _lava_limit),
    **{f"backend {name}": (_backend(name), _backend_limit(name)) for name in BACKENDS},
}


def _reference(c: Case, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The spec's spikes (a readout's outputs), membranes and pre-reset membranes (IF), in the implementation's
    precision."""
    m = c.model()
    x = c.x.astype(dtype)
    if c.node is not None:
        return (*m.run(x), None)
    v = np.zeros((B, N), dtype=dtype)
    s_all, v_all, h_all = [], [], []
    for t in range(T):
        h = m.charge(x[t], v)
        s, v = m.fire_reset(h)
        s_all.append(s)
        v_all.append(v)
        h_all.append(h)
    return np.stack(s_all), np.stack(v_all), np.stack(h_all)


def _float_dtype(impl: str) -> type:
    """The precision an implementation computes float cases in (a backend states its own)."""
    if impl.startswith("backend "):
        return np.dtype(BACKENDS[impl.removeprefix("backend ")].float_dtype).type
    return np.float32 if impl == "onnx step" else np.float64


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_conformance(impl: str, case: Case, tmp_path) -> None:
    run, limit = IMPLEMENTATIONS[impl]
    why = limit(case)
    if why is not None:
        pytest.skip(f"{impl} cannot represent {case.name}: {why}")
    dtype = np.float64 if case.integer else _float_dtype(impl)
    spikes, membranes, pre = run(case, tmp_path) if impl.startswith(("onnx", "backend")) else run(case)
    ref_s, ref_v, ref_h = _reference(case, dtype)
    if isinstance(membranes, str):  # logits: spike counts over T, or a readout's mean over T (summed in order)
        if case.node is not None and not case.model().spiking:
            acc = ref_s[0]
            for t in range(1, T):
                acc = acc + ref_s[t]
            np.testing.assert_array_equal(spikes, acc / dtype(T))
            return
        np.testing.assert_array_equal(spikes, ref_s.sum(0))
        return
    np.testing.assert_array_equal(spikes.reshape(T, B, N), ref_s, err_msg=f"{impl}: spikes differ from the spec")
    if membranes is not None:
        np.testing.assert_array_equal(membranes.reshape(T, B, N), ref_v, err_msg=f"{impl}: membranes differ")
    if pre is not None:
        np.testing.assert_array_equal(pre.reshape(T, B, N), ref_h, err_msg=f"{impl}: pre-reset membranes differ")


def test_cases_exercise_the_edges() -> None:
    """The cases really contain what their names promise (spikes, silence, at-threshold, 24-bit)."""
    by = {c.name: c for c in CASES}
    s, v, h = _reference(by["at_threshold"], np.float64)
    assert (h == 5).any() and (s[h == 5] == 0).all()      # h = θ exactly: no spike
    s, v, h = _reference(by["negative"], np.float64)
    assert s.sum() == 0 and v.min() < -2000
    for name, keep in (("lif_integer", 4096 - 512), ("cubalif_integer", 4096 - 512)):  # dt/τ_mem = 1/8
        s, v, h = _reference(by[name], np.float64)
        p = v * 64 * keep  # Loihi's decay rounds toward zero: on negative membranes it differs from a floor
        assert (v < 0).any() and (np.trunc(p / 4096) != np.floor(p / 4096)).any()
    s, v, h = _reference(by["near_24_bit"], np.float64)
    assert V24 - 2 ** 21 < h.max() <= V24 and s.any()   # within 2^21 of the 24-bit bound, never past it
    for c in CASES:
        s, _, _ = _reference(c, np.float64)
        assert 0 < s.mean() < 1 or c.name == "negative" or not c.model().spiking, c.name


def test_reference_step_by_hand() -> None:
    """The spec on sequences worked out by hand (hard and soft reset, strict threshold, gain)."""
    hard = IFModel(threshold=np.array([1.0]), r=np.ones(1), v_reset=np.zeros(1))
    s, v = hard.run(np.array([[0.6], [0.6], [0.6], [1.5], [-0.2], [1.0]]))
    # h: 0.6, 1.2→spike→0, 0.6, 2.1→spike→0, -0.2, 0.8
    assert s.ravel().tolist() == [0, 1, 0, 1, 0, 0]
    assert v.ravel() == pytest.approx([0.6, 0, 0.6, 0, -0.2, 0.8])
    soft = IFModel(threshold=np.array([1.0]), r=np.ones(1), v_reset=np.zeros(1), reset="soft")
    s, v = soft.run(np.array([[0.6], [0.6], [0.6], [1.5], [-0.2]]))
    # h: 0.6, 1.2→spike→0.2, 0.8, 2.3→spike→1.3, 1.1→spike→0.1
    assert s.ravel().tolist() == [0, 1, 0, 1, 1]
    assert v.ravel() == pytest.approx([0.6, 0.2, 0.8, 1.3, 0.1])
    exact = IFModel(threshold=np.array([2.0]), r=np.ones(1), v_reset=np.zeros(1))
    assert exact.run(np.array([[2.0], [0.0]]))[0].ravel().tolist() == [0, 0]   # h = θ does not fire
    gain = IFModel(threshold=np.array([1.0]), r=np.array([4.0]), v_reset=np.zeros(1), dt=0.5)
    assert gain.run(np.array([[0.3], [0.3]]))[0].ravel().tolist() == [0, 1]   # 0.6, 1.2
    torch_s, torch_v = hard.run(torch.tensor([[0.6], [0.6]], dtype=torch.float64))
    assert torch_s.ravel().tolist() == [0, 1] and torch_v.ravel().tolist() == pytest.approx([0.6, 0.0])


def test_leaky_reference_by_hand() -> None:
    """LIF, CubaLIF, LI and Integrator on sequences worked out by hand (forward Euler with dt)."""
    from kdsnn.errors import KdsnnError
    from kdsnn.neuron_models import CubaLIFModel, IntegratorModel, LIFModel, LIModel

    one, zero = np.ones(1), np.zeros(1)
    lif = LIFModel(tau=np.array([2.0]), r=np.array([2.0]), v_leak=zero, threshold=one, v_reset=zero, dt=1.0)
    # a = 1/2: h = v + (−v + 2x)/2 = v/2 + x: 0.5, 0.25+0.5=0.75, 0.375+0.8=1.175→spike→0, 0.3
    s, v = lif.run(np.array([[0.5], [0.5], [0.8], [0.3]]))
    assert s.ravel().tolist() == [0, 0, 1, 0] and v.ravel() == pytest.approx([0.5, 0.75, 0.0, 0.3])
    snn = LIFModel(tau=np.array([1e-3]), r=np.array([10.0]), v_leak=zero, threshold=one, v_reset=zero, dt=1e-4)
    s, v = snn.run(np.array([[0.6], [0.6]]))    # snnTorch's β = 0.9 at dt = 1e-4: v = 0.9v + x: 0.6, 1.14 > 1
    assert s.ravel().tolist() == [0, 1] and v.ravel() == pytest.approx([0.6, 0.0])
    no_leak = LIFModel(tau=np.array([np.inf]), r=np.array([1.0]), v_leak=zero, threshold=one, v_reset=zero)
    assert no_leak.leak.item() == 0 and no_leak.run(np.array([[5.0]]))[1].item() == 0   # τ = ∞: no leak, no drive
    cuba = CubaLIFModel(tau_syn=np.array([2.0]), tau_mem=np.array([4.0]), r=np.array([4.0]), v_leak=zero,
                        threshold=one, v_reset=zero, w_in=np.array([2.0]))
    # I = I/2 + x; h = 3v/4 + I: x = 1, 0, 0 → I 1, 0.5, 0.25; h 1 (= θ: no spike), 1.25→spike→0, 0.25
    s, v = cuba.run(np.array([[1.0], [0.0], [0.0]]))
    assert s.ravel().tolist() == [0, 1, 0] and v.ravel() == pytest.approx([1.0, 0.0, 0.25])
    li = LIModel(tau=np.array([2.0]), r=one, v_leak=np.array([1.0]), dt=1.0)
    assert li.run(np.array([[1.0], [1.0]]))[0].ravel() == pytest.approx([1.0, 1.5])     # v += (1 − v + x)/2
    assert IntegratorModel(r=np.array([2.0]), dt=0.5).run(np.array([[1.0], [-3.0]]))[0].ravel().tolist() == [1.0, -2.0]
    # Loihi's fixed point: the decay rounds toward zero on the 1/64 grid (dv = 512: keep 7/8)
    fixed = LIFModel(tau=np.array([8.0]), r=np.array([8.0]), v_leak=zero, threshold=np.array([100.0]), v_reset=zero,
                     integer=True)
    v = fixed.run(np.array([[3.0], [0.0], [0.0]]))[1].ravel()
    assert v.tolist() == [3.0, 168 / 64, 147 / 64]          # 3·7/8 = 2.625 = 168/64; 168·7/8 = 147
    assert fixed.run(np.array([[-1.0], [0.0]]))[1].ravel().tolist() == [-1.0, -56 / 64]
    with pytest.raises(KdsnnError, match="∞/∞ undefined"):
        LIFModel(tau=np.array([np.inf]), r=np.array([np.inf]), v_leak=zero, threshold=one, v_reset=zero)
    with pytest.raises(KdsnnError, match=r"dt/τ = 2 > 1"):
        LIFModel(tau=np.array([0.5]), r=one, v_leak=zero, threshold=one, v_reset=zero)
    with pytest.raises(KdsnnError, match="12-bit"):
        LIFModel(tau=np.array([3.0]), r=np.array([3.0]), v_leak=zero, threshold=one, v_reset=zero, integer=True)


def test_soft_reset_runs_wherever_it_is_implemented() -> None:
    """The soft-reset cases really reset by subtraction (their graph records it and the view's model does it),
    and every implementation that has a soft reset runs them rather than declaring them out of reach."""
    implemented = ["training if_step", "training compiled kernel", "training torch ops", "training fused autograd",
                   "simulator general kernel", "simulator general run", "onnx step", "backend pytorch",
                   "backend nir-file", "backend simulator", "backend onnx", "backend onnx-step"]
    soft = [c for c in CASES if c.reset == "soft"]
    assert {c.integer for c in soft} == {False, True}
    for c in soft:
        assert GraphView.of(_graph(c)).models["if1"].reset == "soft"
        if c.node is None:  # the training implementations are IF's
            assert [impl for impl in implemented if IMPLEMENTATIONS[impl][1](c) is not None] == [], c.name
