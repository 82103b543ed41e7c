"""``kdsnn verify``: export a student to every format, run it on every backend, compare.

The integer k-bit graph run by PyTorch (:class:`~kdsnn.export.runtime.GraphSNN`) is the
reference; every backend of the registry (:mod:`kdsnn.deploy.backends`) must give identical
spike trains at every population it computes and identical logits. The float student is
compared with its BN-folded float graph (same function, up to float rounding). A backend that
cannot express the model (Norse reads no ``Scale``) is listed as such, not as a disagreement.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nir
import numpy as np
import torch

from kdsnn.errors import KdsnnError
from kdsnn.export.graph_view import GraphView
from kdsnn.export.runtime import GraphSNN
from kdsnn.export.student import Deployable

from .backends import BACKENDS, BASELINE
from .compare import first_mismatch

FLOAT_ATOL = 1e-4  # float readouts: |Δ logits| ≤ FLOAT_ATOL × max(1, max |logits|) (backends sum in other orders)


def comparison_rule(integer: bool) -> str:
    """How verify compares, in words (printed with its table)."""
    if integer:
        return "integer graph: spikes and integer readouts must be identical"
    return (f"float graph: spikes must be identical, float readouts agree within {FLOAT_ATOL:g} × max(1, |logits|) "
            "(backends sum in different orders)")


@dataclass
class Check:
    backend: str
    against: str
    status: str  # "agree", "DIFFER", "info", "not expressible", "unavailable"
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "DIFFER"


def accumulators(logits, meta: dict) -> np.ndarray:
    """Integer graphs: the integer quantities behind the logits (spike counts, or the summed
    integer readout currents), recovered from ``logits = acc × output_scale (/ T)``."""
    scale = float(meta.get("output_scale", 1.0))
    steps = 1 if meta.get("readout") == "spike" else int(meta.get("timesteps", 1))
    return np.asarray(logits, dtype=np.float64) / scale * steps


def _logit_check(backend: str, against: str, got, ref: torch.Tensor, exact: bool, meta: dict | None = None) -> Check:
    got_a = np.asarray(got, dtype=np.float64)
    ref_a = ref.double().numpy()
    if got_a.shape != ref_a.shape:
        return Check(backend, against, "DIFFER", f"logits shape {got_a.shape} ≠ {ref_a.shape}")
    if exact and meta is not None and meta.get("integer"):
        # float32 runtimes hold the same integers; compare those, not their scaled float image
        raw = accumulators(got_a, meta)
        a, b = np.rint(raw), np.rint(accumulators(ref_a, meta))
        # float32 logits carry the integer up to float32 rounding of the final scaling
        off_ok = bool(np.all(np.abs(raw - a) <= 1e-6 * np.maximum(1.0, np.abs(a)) + 1e-6))
        if not off_ok and np.array_equal(got_a, ref_a):  # a leaky readout's fixed-point membrane (1/64 grid)
            return Check(backend, against, "agree", "identical logits")
        same = np.array_equal(a, b) and off_ok
        what = "spike counts" if meta.get("readout") == "spike" else "integer readout sums"
        return Check(backend, against, "agree" if same else "DIFFER",
                     f"identical {what}" if same else f"{int((a != b).sum())} of {a.size} {what} differ")
    diff = float(np.abs(got_a - ref_a).max()) if got_a.size else 0.0
    tol = 0.0 if exact else FLOAT_ATOL * max(1.0, float(np.abs(ref_a).max(initial=0.0)))
    ok = diff <= tol
    detail = "identical logits" if diff == 0 else f"max |Δ logits| = {diff:.3g}" + (
        "" if exact else f" ({'within' if ok else 'beyond'} the float tolerance {tol:.3g})")
    return Check(backend, against, "agree" if ok else "DIFFER", detail)


def _spike_check(backend: str, against: str, ref_spikes, spikes, logits, ref_logits, order, meta: dict,
                 exact: bool = True) -> Check:
    mm = first_mismatch(ref_spikes, spikes, order)
    if mm is not None:
        return Check(backend, against, "DIFFER", str(mm))
    compared = [n for n in order if n in ref_spikes and n in spikes]
    lc = _logit_check(backend, against, logits, ref_logits, exact=exact, meta=meta)
    detail = f"identical spikes at {len(compared)} populations; {lc.detail}"
    return Check(backend, against, lc.status, detail)


def verify(dep: Deployable, x: torch.Tensor, workdir: str | Path | None = None, progress: bool = False,
           slow_samples: int | None = None) -> list[Check]:
    """The float student against its folded graph, then every backend against the integer graph
    (the slow ones on the first ``slow_samples`` inputs when given)."""
    with torch.no_grad():
        student = dep.model(x).logits
        float_run = GraphSNN(dep.float_graph).run(x)
        ref = GraphSNN(dep.int_graph).run(x)
    checks = [_logit_check("PyTorch float graph (BN folded)", "float student", float_run.logits, student, exact=False)]
    agree = float((ref.logits.argmax(1) == student.argmax(1)).float().mean())
    checks.append(Check(f"PyTorch integer ({dep.bits}-bit)", "float student", "info",
                        f"same class on {agree * 100:.0f} % of inputs (quantization rounds values by design; "
                        "the integer graph is the reference below)"))
    return checks + verify_graph(dep.int_graph, x, workdir, progress, f"PyTorch integer ({dep.bits}-bit)", slow_samples)


def verify_graph(graph: nir.NIRGraph, x: torch.Tensor, workdir: str | Path | None = None, progress: bool = False,
                 ref_name: str = "PyTorch graph runtime", slow_samples: int | None = None) -> list[Check]:
    """Run every registered backend on ``x`` and compare it with the PyTorch graph runtime, step by step.

    Slow backends (``Backend.slow``: Lava, Norse) see only the first ``slow_samples`` inputs when it is given. Files
    the backends write go to ``workdir`` (a temporary folder by default)."""
    if slow_samples is not None and slow_samples < 1:
        raise KdsnnError(f"--slow-samples must be at least 1, got {slow_samples}")
    view = GraphView.of(graph)
    order = list(view.populations)
    reference = BACKENDS[BASELINE].run(view, x)
    seq = torch.as_tensor(x).dim() == len(view.input_shape) + 2  # [T, B, ...]: the batch is axis 1
    batch = int(x.shape[1] if seq else len(x))
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="kdsnn-verify-") as tmp:
        out = Path(workdir or tmp)
        out.mkdir(parents=True, exist_ok=True)
        for backend in BACKENDS.values():
            if backend.name == BASELINE:
                continue
            ok, why = backend.available()
            if not ok:
                checks.append(Check(backend.label, ref_name, "unavailable", why))
                continue
            ok, why = backend.supports(view)
            if not ok:
                checks.append(Check(backend.label, ref_name, "not expressible", why))
                continue
            n = min(batch, slow_samples) if backend.slow and slow_samples else batch
            run = backend.run(view, x[:, :n] if seq else x[:n], progress=progress, workdir=out)
            ref_spikes = {k: v[:, :n] for k, v in reference.spikes.items()}
            if run.spikes is None:
                check = _logit_check(backend.label, ref_name, run.logits, reference.logits[:n], exact=view.integer,
                                     meta=view.meta)
            else:
                check = _spike_check(backend.label, ref_name, ref_spikes, run.spikes, run.logits,
                                     reference.logits[:n], order, view.meta, exact=view.integer)
            if n < batch:
                check.detail += f" (first {n} of {batch} inputs)"
            if run.note:
                check.detail += f"; {run.note}"
            checks.append(check)
    return checks


def format_table(checks: list[Check]) -> str:
    width = max(len(c.backend) for c in checks)
    lines = [f"{'backend'.ljust(width)}  {'result'.ljust(15)}  detail"]
    for c in checks:
        lines.append(f"{c.backend.ljust(width)}  {c.status.ljust(15)}  {c.detail} (vs {c.against})")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
