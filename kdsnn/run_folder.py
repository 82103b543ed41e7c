"""A training run's folder (``--out``): checked before training, locked while the run writes it,
and its ``metrics.jsonl`` read back line by line with a one-line error for a damaged line.

What the folder holds is the user's earlier work: a run refuses to write into a folder that
holds another run's checkpoint unless told to continue it (``--resume``) or to start over
(``--force``), refuses a teacher that lies where the student's checkpoint goes, and refuses
while another run writes the same folder (:mod:`kdsnn.folder_lock`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import KdsnnError
from .outputs import check_folder

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
WRITES = (CHECKPOINT, METRICS)


def check(out: str | Path, teacher: str | None, resume: bool, force: bool) -> Path:
    """Refuse an ``--out`` that cannot hold the run, would overwrite the teacher, or holds an earlier
    run that neither ``--resume`` nor ``--force`` was given for (or both: continue it and start it over)."""
    if resume and force:  # --resume used to win silently
        raise KdsnnError("give --resume (continue the run in --out) or --force (start it over), not both")
    return check_folder(out, "--out", WRITES, {"--teacher": teacher}, force=resume or force,
                        existing_hint="pass --resume to continue that run or --force to start over")


def read_metrics(path: Path, before_epoch: int) -> list[str]:
    """The lines of ``metrics.jsonl`` for epochs up to ``before_epoch`` (a resumed run redoes the rest)."""
    if before_epoch <= 0 or not path.exists():
        return []
    kept = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KdsnnError(f"{path} cannot be read ({type(exc).__name__}); move it away to --resume the run") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _record(line)
        if record is None:
            raise KdsnnError(f"{path}, line {number}, is not a metrics record (damaged: {line[:40]!r}); delete or "
                             "repair that line, then --resume again")
        if record["epoch"] <= before_epoch:
            kept.append(line)
    return kept


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(record, dict) and isinstance(record.get("epoch"), int) and not isinstance(record["epoch"], bool)
    return record if ok else None
