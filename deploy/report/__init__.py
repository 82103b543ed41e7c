"""The HTML/JSON/PNG report of a student checkpoint (``student``) or of any NIR graph (``graph``).

Both build their pages from the same pieces (``html``: tables, images, accuracy/energy rows),
draw with ``plots`` (spike rasters, firing rates, SynOps and energy per layer, per-core load)
and add a section per hardware target (``targets``).
"""
from __future__ import annotations

from .graph import build_graph_report
from .student import build_report

__all__ = ["build_graph_report", "build_report"]
