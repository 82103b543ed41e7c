"""How a NIR file is read: the facts a file's writer decides, recorded once, resolved once.

What a NIR graph means is not all in its nodes. ``IF`` resets by subtraction in files written
by nir < 1.0.6 and to ``v_reset`` since (nir 1.0.8's reader silently fills ``v_reset = 0`` into
old IF nodes, so only the file's ``version`` can tell); leaky neurons need ``dt``, which most
writers leave out. :func:`record` stores, in ``graph.metadata["kdsnn_read"]`` (JSON), the nir
version that wrote the file and the reader's options (``--dt``, ``--legacy-if-reset``);
:func:`resolve` turns that and kdsnn's own metadata into the dt and IF reset rule every
consumer uses (through :class:`~kdsnn.export.graph_view.GraphView`), each with its reason.
The record is written back with the graph, holding the resolved rule and dt, so a foreign
graph exported again by kdsnn keeps its meaning.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from kdsnn.errors import KdsnnError

KEY = "kdsnn_read"
LEGACY_RESETS = {"zero": "hard", "subtract": "soft"}
IF_SUBTRACT_BEFORE = (1, 0, 6)  # nir < 1.0.6: IF resets by subtraction (nir 1.0.4's IF docstring)


def version_tuple(v: str | None) -> tuple[int, ...] | None:
    """``"1.0.4"`` → ``(1, 0, 4)``; None where no version is known or it cannot be parsed."""
    if not v:
        return None
    parts = []
    for p in str(v).split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        if not digits:
            return None
        parts.append(int(digits))
    return tuple(parts)


def get_record(graph: nir.NIRGraph) -> dict[str, Any]:
    """The reading record of ``graph`` (``{}`` for a graph built in memory)."""
    from .metadata import reading_record

    raw = (graph.metadata or {}).get(KEY)
    if raw is None:
        return {}
    return reading_record(raw) if isinstance(raw, (str, bytes, np.ndarray)) else dict(raw)


def set_record(graph: nir.NIRGraph, rec: dict[str, Any]) -> None:
    graph.metadata = {**(graph.metadata or {}), KEY: json.dumps(rec)}


def record(graph: nir.NIRGraph, file_version: str | None, dt: float | None = None,
           legacy_if_reset: str | None = None, notes: list[str] | None = None) -> nir.NIRGraph:
    """Store how ``graph`` was read: the writer's nir version (the original writer's, for a file
    kdsnn wrote from a foreign graph), ``--dt`` and ``--legacy-if-reset`` (None: not given)."""
    if legacy_if_reset is not None and legacy_if_reset not in LEGACY_RESETS:
        raise KdsnnError(f"--legacy-if-reset must be one of {', '.join(LEGACY_RESETS)}, got {legacy_if_reset!r}")
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise KdsnnError(f"--dt must be a positive number, got {dt}")
    rec = get_record(graph)
    rec.setdefault("nir_version", file_version)
    rec["file_version"] = file_version
    if dt is not None:
        rec["dt"], rec["dt_from"] = float(dt), "--dt"
    if legacy_if_reset is not None:
        rec["legacy_if_reset"] = legacy_if_reset
    rec["notes"] = list(notes or [])
    set_record(graph, rec)
    return graph


@dataclass(frozen=True)
class Reading:
    """The resolved reading: ``dt`` and the IF reset rule ("hard"/"soft"), with their reasons."""

    dt: float = 1.0
    dt_why: str = "default (no dt recorded)"
    if_reset: str = "hard"
    reset_why: str = "NIR ≥ 1.0.6: IF resets to v_reset"
    nir_version: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def persisted(self) -> dict[str, Any]:
        """What a re-exported file records so it reads the same."""
        return {"nir_version": self.nir_version, "dt": self.dt, "dt_from": self.dt_why,
                "if_reset": self.if_reset, "if_reset_why": self.reset_why}


def resolve(graph: nir.NIRGraph, meta: dict[str, Any]) -> Reading:
    """dt and the IF reset rule of ``graph`` (``meta``: its kdsnn metadata), with reasons and notes."""
    rec = get_record(graph)
    notes = list(rec.get("notes") or [])
    if rec.get("dt_from") == "--dt":
        dt, dt_why = float(rec["dt"]), "given (--dt)"
    elif "dt" in meta:
        dt, dt_why = float(meta["dt"]), "the file's kdsnn metadata"
    elif "dt" in rec:
        dt, dt_why = float(rec["dt"]), f"recorded when kdsnn re-exported it ({rec.get('dt_from', 'as read')})"
    else:
        dt, dt_why = 1.0, "default 1 (the file records no dt; give --dt if its writer meant another)"
    if not (np.isfinite(dt) and dt > 0):
        raise KdsnnError(f"time step dt must be a positive number, got {dt}")
    version = rec.get("nir_version")
    vt = version_tuple(version)
    legacy = vt is not None and vt < IF_SUBTRACT_BEFORE
    has_if = any(isinstance(n, nir.IF) for n in graph.nodes.values())
    override = rec.get("legacy_if_reset")
    if override is not None and legacy:
        rule = LEGACY_RESETS[override]
        why = (f"--legacy-if-reset {override} (the file was written by nir {version}, whose IF "
               f"{'would reset by subtraction' if rule == 'hard' else 'resets by subtraction'})")
    elif "if_reset" in rec:
        rule, why = rec["if_reset"], f"recorded when kdsnn re-exported it: {rec.get('if_reset_why', '')}".rstrip(": ")
    elif "reset" in meta:
        rule, why = str(meta["reset"]), "the file's kdsnn metadata"
    elif legacy:
        rule = "soft"
        why = (f"the file was written by nir {version}: before nir 1.0.6, IF resets by subtracting θ "
               "(if its writer meant reset to zero, as Norse 1.1 and zero-reset Sinabs networks did, "
               "give --legacy-if-reset zero)")
    else:
        rule = "hard"
        why = (f"the file was written by nir {version}: IF resets to v_reset (nir ≥ 1.0.6)" if version
               else "IF resets to v_reset (nir ≥ 1.0.6)")
    if override is not None and not legacy and has_if:
        notes.append(f"--legacy-if-reset {override} ignored: the file was written by nir {version or '≥ 1.0.6'}, "
                     "whose IF states its reset (v_reset)")
    if rule not in ("hard", "soft"):
        raise KdsnnError(f"unknown IF reset {rule!r} in the file's metadata (known: hard, soft)")
    return Reading(dt, dt_why, rule, why, version, tuple(notes))
