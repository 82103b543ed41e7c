"""ONNX export of a deployable graph, in two forms (``unrolled`` over T, or one ``step``).

``emit`` builds the ONNX graph from the graph view, ``range_proof`` proves that an integer
graph's sums stay exact in float32, ``writer`` writes and checks the file, ``run`` runs it
with onnxruntime (whole sequence or step by step with explicit membranes).
"""
from __future__ import annotations

from .emit import FORMS, OPSET, build_onnx, onnx_supports
from .run import OnnxModel, StepRun, initial_states, run_onnx, run_steps
from .writer import FLOAT_ATOL, export_onnx

__all__ = ["FLOAT_ATOL", "FORMS", "OPSET", "OnnxModel", "StepRun", "build_onnx", "export_onnx", "initial_states",
           "onnx_supports", "run_onnx", "run_steps"]
