"""The event-driven reference simulator: any NIR graph the PyTorch runtime runs, one spike at a time.

A :class:`Plan` is built once from the graph's view (populations, connections kept as kernels:
memory O(parameters + neurons)); :func:`simulate` encodes the input and runs it on the integer
fast path or the general path, which give the same bits and counts, and returns a
:class:`SimResult` with spikes, membranes and event counts. Modules: ``engine`` (the entry
point), ``plan`` (populations and connections), ``tables``/``connect``/``sparse`` (what one
spike reads: kernel tables and the explicit sparse formulation kept as test oracle and
fallback), ``kernels`` (compiled delivery and update), ``general`` and ``fast`` (the two
paths), ``results`` (result and counter types).
"""
from __future__ import annotations

from .engine import simulate
from .kernels import V_MAX, V_MIN
from .plan import Plan
from .results import LayerStats, NeuronStats, SimResult
from .sparse import conv_matrix, pool_matrix

__all__ = ["V_MAX", "V_MIN", "LayerStats", "NeuronStats", "Plan", "SimResult", "conv_matrix", "pool_matrix",
           "simulate"]
