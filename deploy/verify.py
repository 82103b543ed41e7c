"""``kdsnn verify``: export a student to every format, run it on every backend, compare.

The integer k-bit graph run by PyTorch (:class:`~kdsnn.export.runtime.GraphSNN`) is the
reference; every other backend must give identical spike trains at every IF layer it
computes and identical logits. The float student is compared with its BN-folded float graph
(same function, up to float rounding). A backend that cannot express the model (netx has no
residual connections; Norse reads no ``Scale``) is listed as such, not as a disagreement.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nir
import numpy as np
import torch

from kdsnn.errors import KdsnnError
from kdsnn.export import nir_io
from kdsnn.export.graph import get_meta, topological_order
from kdsnn.export.onnx_export import export_onnx, run_onnx, run_steps
from kdsnn.export.runtime import GraphSNN

from .compare import first_mismatch
from .pipeline import Deployable

FLOAT_ATOL = 1e-4


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
        same = np.array_equal(a, b) and off_ok
        what = "spike counts" if meta.get("readout") == "spike" else "integer readout sums"
        return Check(backend, against, "agree" if same else "DIFFER",
                     f"identical {what}" if same else f"{int((a != b).sum())} of {a.size} {what} differ")
    diff = float(np.abs(got_a - ref_a).max())
    ok = diff == 0 if exact else diff <= FLOAT_ATOL * max(1.0, float(np.abs(ref_a).max()))
    return Check(backend, against, "agree" if ok else "DIFFER",
                 "identical logits" if diff == 0 else f"max |Δ logits| = {diff:.3g}")


def _spike_check(backend: str, against: str, ref_spikes, spikes, logits, ref_logits, order, meta: dict) -> Check:
    mm = first_mismatch(ref_spikes, spikes, order)
    if mm is not None:
        return Check(backend, against, "DIFFER", str(mm))
    compared = [n for n in order if n in ref_spikes and n in spikes]
    lc = _logit_check(backend, against, logits, ref_logits, exact=True, meta=meta)
    detail = f"identical spikes at {len(compared)} IF layers; {lc.detail}"
    return Check(backend, against, lc.status, detail)


def verify(dep: Deployable, x: torch.Tensor, workdir: str | Path | None = None, progress: bool = False) -> list[Check]:
    """Run every backend on ``x`` and compare; files go to ``workdir`` (a temporary one by default)."""
    checks: list[Check] = []
    g = dep.int_graph
    order = [n for n in topological_order(g) if isinstance(g.nodes[n], nir.IF)]
    meta = get_meta(g)
    with torch.no_grad():
        student = dep.model(x).logits
        float_run = GraphSNN(dep.float_graph).run(x)
        ref = GraphSNN(g).run(x)
    checks.append(_logit_check("PyTorch float graph (BN folded)", "float student", float_run.logits, student, exact=False))
    agree = float((ref.logits.argmax(1) == student.argmax(1)).float().mean())
    checks.append(Check(f"PyTorch integer ({dep.bits}-bit)", "float student", "info",
                        f"same class on {agree * 100:.0f} % of inputs (quantization rounds values by design; "
                        "the integer graph is the reference below)"))
    ref_name = f"PyTorch integer ({dep.bits}-bit)"
    with tempfile.TemporaryDirectory(prefix="kdsnn-verify-") as tmp:
        out = Path(workdir or tmp)
        out.mkdir(parents=True, exist_ok=True)
        nir_path = nir_io.write(g, out / "student.nir")
        back = GraphSNN(nir_io.read(nir_path)).run(x)
        checks.append(_spike_check("NIR file → PyTorch", ref_name, ref.outputs, back.outputs, back.logits, ref.logits, order, meta))

        from .simulator import simulate
        sim = simulate(g, x, progress=progress)
        checks.append(_spike_check("reference simulator", ref_name, ref.outputs, sim.spikes, sim.logits, ref.logits, order, meta))

        onnx_path = export_onnx(g, out / "student.onnx", "unrolled")
        checks.append(_logit_check("ONNX (onnxruntime)", ref_name, run_onnx(onnx_path, x), ref.logits, exact=True, meta=meta))
        step_path = export_onnx(g, out / "student_step.onnx", "step")
        step = run_steps(step_path, x)
        checks.append(_logit_check("ONNX step (onnxruntime)", ref_name, step.logits, ref.logits, exact=True, meta=meta))

        checks.append(_lava_check(g, x, out, ref, order, ref_name, progress, meta))
        checks.append(_norse_check(g, x, ref, order, ref_name, meta))
    return checks


def _lava_check(g, x, out: Path, ref, order, ref_name: str, progress: bool, meta: dict) -> Check:
    from kdsnn.export.netx_export import export_netx, netx_plan

    from .lava_backend import lava_available, run_lava

    try:
        netx_plan(g)
    except KdsnnError as exc:
        return Check("Lava (Loihi 2 sim, fixed_pt)", ref_name, "not expressible", str(exc))
    ok, why = lava_available()
    if not ok:
        return Check("Lava (Loihi 2 sim, fixed_pt)", ref_name, "unavailable", why)
    path = export_netx(g, out / "student.net")
    run = run_lava(g, x, netx_path=path, progress=progress)
    check = _spike_check("Lava (Loihi 2 sim, fixed_pt)", ref_name, ref.outputs, run.spikes, run.logits, ref.logits, order, meta)
    check.detail += f"; first layer on the host; {run.per_sample_s * 1000:.0f} ms per sample"
    return check


def _norse_check(g, x, ref, order, ref_name: str, meta: dict) -> Check:
    from .norse_backend import norse_available, norse_supports, run_norse

    ok, why = norse_available()
    if not ok:
        return Check("Norse 1.1 (from_nir)", ref_name, "unavailable", why)
    ok, why = norse_supports(g)
    if not ok:
        return Check("Norse 1.1 (from_nir)", ref_name, "not expressible", why)
    logits, spikes = run_norse(g, x)
    return _spike_check("Norse 1.1 (from_nir)", ref_name, ref.outputs, spikes, logits, ref.logits, order, meta)


def format_table(checks: list[Check]) -> str:
    width = max(len(c.backend) for c in checks)
    lines = [f"{'backend'.ljust(width)}  {'result'.ljust(15)}  detail"]
    for c in checks:
        lines.append(f"{c.backend.ljust(width)}  {c.status.ljust(15)}  {c.detail} (vs {c.against})")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
