"""Progress: bars on a terminal (silent in logs and CI, tqdm's ``disable=None``) and one line per stage everywhere.

``progress`` wraps a loop in a bar; ``stage`` says what a long command is doing now, one line per stage on
stderr (a terminal and a log alike), so nothing stays silent between bars (Lava's start-up, flush and
teardown included). ``KDSNN_PROGRESS=1`` forces bars on (e.g. to watch a job's log), ``KDSNN_PROGRESS=0``
turns bars and stage lines off.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from tqdm.auto import tqdm

_START = time.monotonic()


def progress(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar when ``enabled`` and stderr is a terminal (or forced); a pass-through otherwise."""
    forced = os.environ.get("KDSNN_PROGRESS")
    if not enabled or forced == "0":
        disable: bool | None = True
    else:
        disable = False if forced == "1" else None
    return tqdm(iterable, disable=disable, **kwargs)


def stage(message: str, *, enabled: bool = True) -> None:
    """One line on stderr saying what starts now, with the seconds since the command began:
    ``[  12 s] report: mapping onto loihi2, speck, xylo (64 samples)``."""
    if not enabled or os.environ.get("KDSNN_PROGRESS") == "0":
        return
    tqdm.write(f"[{time.monotonic() - _START:5.0f} s] {message}", file=sys.stderr)


def restart_clock() -> None:
    """Count the stage lines' seconds from now (the start of a command)."""
    global _START
    _START = time.monotonic()


__all__ = ["progress", "restart_clock", "stage"]
