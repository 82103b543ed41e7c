"""NIR files: write atomically, read with one-line errors, import into a runnable SNN.

Import builds :class:`~kdsnn.export.runtime.GraphSNN` directly from the graph's nodes (never
nirtorch's generic loader, which leaves an Affine's bias random in nirtorch 2.6).
"""
from __future__ import annotations

import copy
from pathlib import Path

import h5py
import nir

from kdsnn.atomic import atomic_path
from kdsnn.budget import require
from kdsnn.errors import KdsnnError

from . import reading
from .graph import get_meta
from .runtime import GraphSNN


def write(graph: nir.NIRGraph, path: str | Path) -> Path:
    """Write ``graph`` to ``path`` (HDF5, NIR's format) atomically. A graph read from a file keeps
    its meaning: the resolved IF reset rule and dt go into its reading record."""
    rec = reading.get_record(graph)
    if rec:
        out = copy.copy(graph)
        out.metadata = dict(graph.metadata or {})
        reading.set_record(out, reading.resolve(graph, get_meta(graph)).persisted())
        graph = out
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return Path(path)


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"


def read(path: str | Path, dt: float | None = None, legacy_if_reset: str | None = None) -> nir.NIRGraph:
    """Read a NIR graph; a missing, corrupt or foreign file gives a :class:`KdsnnError`.

    The nir version that wrote the file, and ``dt`` / ``legacy_if_reset`` when given (the
    ``--dt`` and ``--legacy-if-reset`` options), are recorded in the graph's metadata
    (:mod:`kdsnn.export.reading`), so every consumer reads the file the same way. A file that
    fails nir's own type check (Norse's batch axis on Input) is read without it, with a note.
    """
    path = Path(path)
    if not path.is_file():
        raise KdsnnError(f"NIR file {path} does not exist")
    if not h5py.is_hdf5(path):
        raise KdsnnError(f"{path} is not a NIR file (not HDF5; corrupt, truncated or another format)")
    notes: list[str] = []
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f or "version" not in f:
                raise KdsnnError(f"{path} is HDF5 but not a NIR graph "
                                 "(no 'node'/'version'; a netx file? try `kdsnn inspect`)")
            version = f["version"][()]
            require(stored_bytes(f), f"reading {path} (the arrays it declares)",
                    "the file declares arrays larger than this machine can hold")
        version = version.decode() if isinstance(version, bytes) else str(version)
        try:
            graph = nir.read(path)
        except ValueError as exc:
            if "type" not in str(exc).lower():
                raise
            graph = nir.read(path, type_check=False)
            notes.append(f"nir's type check fails on this file ({str(exc).splitlines()[0][:100]}); "
                         "read without it, shapes inferred by kdsnn")
    except KdsnnError:
        raise
    except Exception as exc:  # nir raises many types on malformed content
        raise KdsnnError(f"{path} could not be read as NIR ({_first_line(exc)})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise KdsnnError(f"{path} holds a single NIR node, not a graph")
    try:  # kdsnn's own records in the file: validated now, naming the file
        get_meta(graph)
        reading.get_record(graph)
    except KdsnnError as exc:
        raise KdsnnError(f"{path}: {exc}") from None
    return reading.record(graph, version, dt, legacy_if_reset, notes)


def stored_bytes(f: h5py.File) -> int:
    """Bytes the arrays of an HDF5 file take once read (declared shapes: a dataset may declare more than
    the file stores, unallocated or compressed)."""
    total = 0

    def add(_name: str, obj: object) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += int(obj.size or 0) * int(obj.dtype.itemsize)

    f.visititems(add)
    return total


def load_snn(path: str | Path, timesteps: int | None = None, dt: float | None = None,
             legacy_if_reset: str | None = None) -> GraphSNN:
    """Import a NIR file (ours or another tool's) as a runnable PyTorch SNN."""
    return GraphSNN(read(path, dt, legacy_if_reset), timesteps)
