"""Progress bars: shown on a terminal, silent in logs and CI (tqdm's ``disable=None``).

``KDSNN_PROGRESS=1`` forces bars on (e.g. to watch a job's log), ``KDSNN_PROGRESS=0`` off.
"""
from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm


def progress(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar when ``enabled`` and stderr is a terminal (or forced); a pass-through otherwise."""
    forced = os.environ.get("KDSNN_PROGRESS")
    if not enabled or forced == "0":
        disable: bool | None = True
    else:
        disable = False if forced == "1" else None
    return tqdm(iterable, disable=disable, **kwargs)
