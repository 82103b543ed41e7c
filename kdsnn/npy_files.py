"""The user's ``.npy`` arrays (``--inputs``, ``--labels``): one array, numeric, no pickles, and sized from its
header against the memory budget (and the file's length) before numpy allocates it, so a header that declares
400 GB is refused in one line instead of ending in a MemoryError, and a truncated file is named as such."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib import format as npf

from .budget import require
from .errors import KdsnnError
from .outputs import require_path


def read_npy(path: str | Path, flag: str) -> np.ndarray:
    """Read one array from a ``.npy`` file (no pickles), or refuse in one line."""
    p = require_path(path, flag, ".npy file (numpy.save)")
    if not p.is_file():
        raise KdsnnError(f"{flag} {path} does not exist; pass a .npy file (numpy.save)")
    try:
        _check_npy_size(p, flag)
        arr = np.load(p, allow_pickle=False)
    except KdsnnError:
        raise
    except Exception as exc:  # ValueError, EOFError, OSError, UnpicklingError on non-npy or truncated files
        raise KdsnnError(f"{flag} {path} is not a readable .npy array (corrupt, truncated or another format: "
                         f"{type(exc).__name__}); write it with numpy.save") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        arr.close()
        raise KdsnnError(f"{flag} {path} is an .npz archive; pass one array saved with numpy.save (.npy)")
    if arr.dtype.kind not in "biuf":
        raise KdsnnError(f"{flag} {path} holds {arr.dtype} values; it must be a numeric array")
    return arr


def _check_npy_size(p: Path, flag: str) -> None:
    """The array a ``.npy`` header declares fits the budget and the file holds it (before numpy allocates it)."""
    with open(p, "rb") as f:
        if f.read(6) != npf.MAGIC_PREFIX:
            return  # not a .npy (an .npz, another format): np.load says what it is
        f.seek(0)
        read = {(1, 0): npf.read_array_header_1_0, (2, 0): npf.read_array_header_2_0}.get(npf.read_magic(f))
        if read is None:
            return  # a newer header version: np.load reads (or refuses) it
        shape, _, dtype = read(f)
        need, have = int(np.prod(shape, dtype=object)) * dtype.itemsize, p.stat().st_size - f.tell()
    require(need, f"{flag} {p} (an array of shape {list(shape)})", "pass fewer samples")
    if dtype.kind in "biufc" and have < need:
        raise KdsnnError(f"{flag} {p} is truncated: its header declares shape {list(shape)} ({need:,} bytes) "
                         f"but it holds {have:,}; write it again with numpy.save")
