"""ONNX export of the deployable graph, and running the exported file with onnxruntime.

Two forms:

- ``unrolled``: the whole network over T steps in one model. Input ``input``: ``[B, C, H, W]``
  (direct encoding: the analog input, fed at every step) or ``[T, B, C, H, W]`` (``bernoulli``
  encoding: the caller's input spikes; sampling stays outside the model). Output ``logits``:
  exactly what :class:`~kdsnn.export.runtime.GraphSNN` computes (spike counts for a spike
  readout, the mean over T for a membrane readout, times ``output_scale`` in integer mode).
- ``step``: one time step for streaming runtimes. Inputs ``input`` (this step's input) and one
  membrane ``v_<node>`` per IF node (plus ``acc``, the readout accumulator, for a membrane
  readout); outputs ``output`` (this step's output: spikes or readout current, before
  ``output_scale``) and the new states ``v_<node>_next`` (``acc_next``). States start at 0.
  :func:`run_steps` loops it over T.

The model is written directly with ``onnx.helper`` (opset 17), one small group of standard
operators per NIR node, rather than through ``torch.onnx.export``: in torch 2.14 the default
(dynamo) exporter needs ``onnxscript``, which kdsnn does not depend on, and the TorchScript
exporter (``dynamo=False``) still works but is deprecated. IF is ``Add`` → ``Greater`` →
``Where`` (hard reset); ``SumPool2d`` is a depthwise ``Conv`` with a kernel of ones (exact,
unlike ``AveragePool`` followed by a multiply); ``Affine`` is ``Gemm``; the batch axis is dynamic.

Numerics. All tensors are float32. In an integer graph the weights, biases, thresholds and all
values the network computes are integers; the export bounds each of them from the weights
(``Σ|W|·max|input| + |b|`` per layer, membranes ``max(|θ|, |v_reset|) + T·max|current|``) and
refuses when a bound exceeds 2^24, beyond which float32 no longer holds every integer. The
input quantization ``round(x / input_scale)`` and the final scaling of the logits run in
float64 inside the model, as in GraphSNN, so an integer model's logits equal
``GraphSNN(graph).run(x).logits`` cast to float32, bit for bit. Float graphs: onnxruntime
sums in another order than PyTorch; logits agree within :data:`FLOAT_ATOL` (measured up to
1.4e-6; a spike can flip when a membrane lies within rounding of its threshold, which none
does on our test inputs).
"""
from __future__ import annotations

from pathlib import Path

import nir
import onnx

from kdsnn.atomic import atomic_path
from kdsnn.errors import KdsnnError

from ..graph_view import GraphView
from .emit import build_onnx

FLOAT_ATOL = 1e-4  # float graphs: |logits(onnxruntime) - logits(GraphSNN)|, see the module docstring

__all__ = ["FLOAT_ATOL", "export_onnx"]


def export_onnx(graph: nir.NIRGraph | GraphView, path: str | Path, form: str = "unrolled") -> Path:
    """Write ``graph`` as ONNX (``unrolled`` or ``step``) atomically; the file passes onnx's full check."""
    model = build_onnx(graph, form)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as exc:  # a bug in this module, never the user's input
            raise KdsnnError(f"the ONNX model failed onnx's check: {str(exc).splitlines()[0][:160]}") from None
    return Path(path)
