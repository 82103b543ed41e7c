"""NIR files: write atomically, read with one-line errors, import into a runnable SNN.

Import builds :class:`~kdsnn.export.runtime.GraphSNN` directly from the graph's nodes (never
nirtorch's generic loader, which leaves an Affine's bias random in nirtorch 2.6).
"""
from __future__ import annotations

from pathlib import Path

import h5py
import nir

from kdsnn.atomic import atomic_path
from kdsnn.errors import KdsnnError

from .runtime import GraphSNN


def write(graph: nir.NIRGraph, path: str | Path) -> Path:
    """Write ``graph`` to ``path`` (HDF5, NIR's format) atomically."""
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return Path(path)


def read(path: str | Path) -> nir.NIRGraph:
    """Read a NIR graph; a missing, corrupt or foreign file gives a :class:`KdsnnError`."""
    path = Path(path)
    if not path.is_file():
        raise KdsnnError(f"NIR file {path} does not exist")
    if not h5py.is_hdf5(path):
        raise KdsnnError(f"{path} is not a NIR file (not HDF5; corrupt, truncated or another format)")
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f or "version" not in f:
                raise KdsnnError(f"{path} is HDF5 but not a NIR graph (no 'node'/'version'; a netx file? try `kdsnn inspect`)")
        graph = nir.read(path)
    except KdsnnError:
        raise
    except Exception as exc:  # nir raises many types on malformed content
        raise KdsnnError(f"{path} could not be read as NIR ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise KdsnnError(f"{path} holds a single NIR node, not a graph")
    return graph


def load_snn(path: str | Path, timesteps: int | None = None) -> GraphSNN:
    """Import a NIR file (ours or another tool's) as a runnable PyTorch SNN."""
    return GraphSNN(read(path), timesteps)
