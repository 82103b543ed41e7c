"""Progress bars: shown on a terminal, silent in logs and CI (tqdm's ``disable=None``)."""
from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


def progress(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar when ``enabled`` and stderr is a terminal; a pass-through otherwise."""
    return tqdm(iterable, disable=None if enabled else True, **kwargs)
