"""NIR files for toolchains pinned to nir 1.0.4 (Sinabs 3.1 for Speck, Rockpool 3.1 for Xylo).

nir 1.0.4's reader builds each node from exactly its fields of that version and refuses any other
(``IF.__init__() got an unexpected keyword argument 'v_reset'`` on a file nir ≥ 1.0.6 wrote), and
its ``IF``, ``LIF`` and ``CubaLIF`` reset by subtracting the threshold (nir 1.0.4's docstrings;
nir ≥ 1.0.6 resets to ``v_reset``). :func:`write_nir104` writes a graph in that version's layout
and records ``version = "1.0.4"`` in the file, so every reader, kdsnn's included
(:mod:`kdsnn.export.reading`), reads its neurons as resetting by subtraction. The caller makes
sure that is what the graph means (a soft-reset graph); values go out as float32, the dtype
Sinabs' and Rockpool's torch modules hold (Sinabs 3.1.3's graph extractor fails on float64 states).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import nir
import numpy as np

from kdsnn.atomic import atomic_path
from kdsnn.errors import KdsnnError

VERSION = "1.0.4"
# Each node type's fields in nir 1.0.4 (nir/serialization.py and nir/ir/*.py of that release).
FIELDS: dict[str, tuple[str, ...]] = {
    "Input": ("shape",), "Output": ("shape",),
    "Affine": ("weight", "bias"), "Linear": ("weight",), "Scale": ("scale",),
    "Conv2d": ("input_shape", "weight", "stride", "padding", "dilation", "groups", "bias"),
    "SumPool2d": ("kernel_size", "stride", "padding"), "Flatten": ("start_dim", "end_dim", "input_type"),
    "IF": ("r", "v_threshold"), "LIF": ("tau", "r", "v_leak", "v_threshold"),
    "CubaLIF": ("tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "w_in"),
}
# Fields nir ≥ 1.0.6 added that this layout leaves out: the reset target, which nir 1.0.4 replaces
# by subtraction (the caller has checked the graph means that).
DROPPED = {"v_reset"}


def _node_dict(name: str, d: dict[str, Any]) -> dict[str, Any]:
    kind = d["type"]
    if kind not in FIELDS:
        raise KdsnnError(f"node {name!r}: {kind} cannot be written for nir 1.0.4 readers "
                         f"(known: {', '.join(FIELDS)})")
    extra = set(d) - set(FIELDS[kind]) - {"type", "metadata"} - DROPPED
    if extra:
        raise KdsnnError(f"node {name!r}: {kind} field(s) {', '.join(sorted(extra))} do not exist in nir 1.0.4")
    out: dict[str, Any] = {"type": kind}
    for k in FIELDS[kind]:
        if k not in d or d[k] is None:
            continue
        v = d[k]
        if isinstance(v, dict):  # Flatten's input_type: nir 1.0.4 stores the array itself
            v = np.asarray(v.get("input"))
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
            v = v.astype(np.float32)
        out[k] = v
    return out


def graph_dict(graph: nir.NIRGraph) -> dict[str, Any]:
    """``graph.to_dict()`` in nir 1.0.4's fields (nested graphs refused)."""
    d = graph.to_dict()
    nodes = {}
    for name, nd in d["nodes"].items():
        if nd["type"] == "NIRGraph":
            raise KdsnnError(f"node {name!r}: nested graphs are not written for nir 1.0.4 readers")
        nodes[name] = _node_dict(name, nd)
    meta = {k: v for k, v in (d.get("metadata") or {}).items() if isinstance(v, str)}
    return {"type": "NIRGraph", "nodes": nodes, "edges": [list(e) for e in d["edges"]], "metadata": meta}


def _write(group: h5py.Group, d: dict[str, Any]) -> None:
    for k, v in d.items():
        if k == "metadata":
            if v:
                _write(group.create_group(k), v)
        elif isinstance(v, str):
            group.create_dataset(k, data=v, dtype=h5py.string_dtype())
        elif isinstance(v, dict):
            _write(group.create_group(str(k)), v)
        elif k == "edges":
            group.create_dataset(k, data=np.asarray(v, dtype=object).reshape(-1, 2), dtype=h5py.string_dtype())
        else:
            group.create_dataset(k, data=np.asarray(v))


def write_nir104(graph: nir.NIRGraph, path: str | Path) -> Path:
    """Write ``graph`` (whose neurons reset by subtraction) as a nir 1.0.4 file, atomically."""
    d = graph_dict(graph)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("version", data=VERSION, dtype=h5py.string_dtype())
        _write(f.create_group("node"), d)
    return Path(path)
