"""Running an exported ONNX file with onnxruntime: the unrolled model, or the step model looped over T."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from kdsnn.errors import KdsnnError

from ..metadata import onnx_info


class StepRun(NamedTuple):
    """A step model looped over T: logits, per-step outputs ``[T, B, ...]`` and the final states."""

    logits: np.ndarray
    outputs: np.ndarray
    states: dict[str, np.ndarray]


class OnnxModel:
    """An exported file opened with onnxruntime, with kdsnn's metadata."""

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise KdsnnError(f"ONNX file {path} does not exist")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise KdsnnError(f"{path} could not be loaded by onnxruntime ({first})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get("kdsnn")
        if raw is None:
            raise KdsnnError(f"{path} is an ONNX model, but not one kdsnn exported (no 'kdsnn' metadata)")
        self.info: dict[str, Any] = onnx_info(raw, f"{path}'s kdsnn metadata")
        self.form: str = self.info["form"]
        self.inputs = {i.name: i.shape for i in self.session.get_inputs()}

    def array(self, x: np.ndarray | torch.Tensor, name: str = "input") -> np.ndarray:
        """``x`` as the float32 array input ``name`` takes; a wrong shape is a :class:`KdsnnError`."""
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        want = list(self.inputs[name])
        if a.ndim != len(want) or any(isinstance(d, int) and d != s for d, s in zip(want, a.shape, strict=True)):
            raise KdsnnError(f"input {name!r} has shape {tuple(a.shape)}; the ONNX model expects "
                             f"{tuple(d if isinstance(d, int) else 'B' for d in want)}")
        return np.ascontiguousarray(a, dtype=np.float32)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One onnxruntime call; a feed onnxruntime rejects (shape, type) is a :class:`KdsnnError`."""
        try:
            return self.session.run(None, feeds)
        except Exception as exc:  # onnxruntime's InvalidArgument/Fail carry the reason in their text
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise KdsnnError(f"onnxruntime refused the inputs: {first}") from None


def run_onnx(path: str | Path, x: np.ndarray | torch.Tensor, states: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Logits of an exported model on ``x`` (an unrolled model, or a step model looped over T)."""
    m = OnnxModel(path)
    if m.form == "step":
        return run_steps(m, x, states).logits
    if states is not None:
        raise KdsnnError("states are only accepted by a step-form ONNX model; this one is unrolled")
    return m.run({"input": m.array(x)})[0]


def initial_states(model: OnnxModel, batch: int) -> dict[str, np.ndarray]:
    """Zero membranes (and accumulator) for a step model: the state before the first step."""
    return {name: np.zeros([batch, *shape[1:]], dtype=np.float32) for name, shape in model.inputs.items()
            if name != "input"}


def run_steps(model: OnnxModel | str | Path, x: np.ndarray | torch.Tensor,
              states: dict[str, np.ndarray] | None = None) -> StepRun:
    """Loop a step model over T, feeding its states back; ``x``: ``[B, ...]`` (direct) or ``[T, B, ...]``."""
    m = model if isinstance(model, OnnxModel) else OnnxModel(model)
    if m.form != "step":
        raise KdsnnError("run_steps needs a step-form ONNX model (kdsnn export --format onnx-step)")
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    t_total = int(m.info["timesteps"])
    per_step = a.ndim == len(m.inputs["input"]) + 1  # [T', B, ...]: a stream of any length T'
    if not per_step and m.info["encoding"] == "bernoulli":
        raise KdsnnError("a bernoulli-encoded model takes input spikes [T, B, ...]; sample them before running")
    seq = [a[t] for t in range(a.shape[0])] if per_step else [a] * t_total
    xs = [m.array(s) for s in seq]
    cur = dict(states) if states is not None else initial_states(m, xs[0].shape[0])
    expected = set(m.inputs) - {"input"}
    if set(cur) != expected:
        raise KdsnnError(f"the step model's states are {sorted(expected)}; got {sorted(cur)}")
    names = [o.name for o in m.session.get_outputs()]
    outs = []
    for xt in xs:
        res = dict(zip(names, m.run({"input": xt, **{k: np.asarray(v, dtype=np.float32) for k, v in cur.items()}}),
                       strict=True))
        outs.append(res["output"])
        cur = {k: res[f"{k}_next"] for k in cur}
    seq_out = np.stack(outs)
    logits = _step_logits(m.info, seq_out, cur, len(xs))
    return StepRun(logits, seq_out, cur)


def _step_logits(info: dict[str, Any], outs: np.ndarray, states: dict[str, np.ndarray], steps: int) -> np.ndarray:
    """Logits from a stepped run, computed as the unrolled model does (same order and precision)."""
    spiking = info["readout"] == "spike"
    if spiking:
        acc = outs[0].copy()
        for o in outs[1:]:
            acc = acc + o
    else:
        acc = states["acc"]
    scale = float(info.get("output_scale", 1.0))
    if info["integer"]:
        y = acc.astype(np.float64)
        if not spiking:
            y = y / float(steps)
        return (y * scale if scale != 1.0 else y).astype(np.float32)
    y = acc if spiking else acc / np.float32(steps)
    return (y * np.float32(scale) if scale != 1.0 else y).astype(np.float32)
