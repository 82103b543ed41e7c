"""Read netx ``.net`` files: the ``kdsnn`` attribute of our own, and a summary of any."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from kdsnn.budget import require
from kdsnn.errors import KdsnnError

from ..nir_io import stored_bytes


def read_info(path: str | Path) -> dict[str, Any]:
    """The ``kdsnn`` attribute of a netx file we wrote; KdsnnError for missing/foreign files."""
    path = Path(path)
    _open_netx(path).close()
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("kdsnn")
    if raw is None:
        raise KdsnnError(f"{path} is a netx file but not one kdsnn wrote (no 'kdsnn' attribute); export it with kdsnn")
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise KdsnnError(f"{path}: the 'kdsnn' attribute is corrupt; export the file again") from None


def _open_netx(path: Path) -> h5py.File:
    if not path.is_file():
        raise KdsnnError(f"netx file {path} does not exist")
    if not h5py.is_hdf5(path):
        raise KdsnnError(f"{path} is not a netx file (not HDF5; corrupt, truncated or another format)")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise KdsnnError(f"{path} could not be opened as HDF5 ({exc})") from None
    if "layer" not in f or not isinstance(f["layer"], h5py.Group):
        f.close()
        raise KdsnnError(f"{path} is HDF5 but not a netx network (no 'layer' group; a NIR file? try `kdsnn inspect`)")
    return f


def _text(ds: h5py.Dataset) -> str:
    v = ds[()]
    v = v[0] if getattr(v, "shape", ()) else v
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def _range(a: np.ndarray) -> str:
    return f"[{a.min():g}, {a.max():g}]" if a.size else "[]"


def describe(path: str | Path) -> str:
    """A readable summary of a netx file: layers, shapes, weight ranges, thresholds."""
    path = Path(path)
    f = _open_netx(path)
    lines = [f"netx network {path.name}"]
    try:
        require(stored_bytes(f), f"reading {path} (the arrays it declares)",
                "the file declares arrays larger than this machine can hold")
        info = json.loads(f.attrs["kdsnn"]) if "kdsnn" in f.attrs else None
        group = f["layer"]
        keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if not keys or not all(k.isdigit() for k in keys):
            raise KdsnnError(f"{path}: netx 'layer' group must hold layers named 0, 1, 2, …")
        if info:
            lines.append(f"  kdsnn export: T={info['timesteps']}; host computes {' → '.join(info['host_nodes'][1:])} "
                         f"(input step {info['input_scale']}); load with reset_interval={info['reset_interval']}, "
                         f"reset_offset={info['reset_offset']}")
        for k in keys:
            layer = group[k]
            kind = _text(layer["type"])
            shape = tuple(int(v) for v in np.asarray(layer["shape"][()]).ravel()) if "shape" in layer else ()
            line = f"  {k}: {kind:<7} shape {shape}"
            if "weight" in layer:
                w = np.asarray(layer["weight"][()])
                line += f"  weight {tuple(w.shape)} in {_range(w)}"
            if kind == "conv":
                line += f"  stride {tuple(np.asarray(layer['stride'][()]).ravel().tolist())} padding " \
                        f"{tuple(np.asarray(layer['padding'][()]).ravel().tolist())}"
            if "bias" in layer:
                line += f"  bias in {_range(np.asarray(layer['bias'][()]))}"
            if "neuron" in layer:
                n = layer["neuron"]
                line += (f"  {_text(n['type'])} vThMant {int(n['vThMant'][()])} iDecay {int(n['iDecay'][()])} "
                         f"vDecay {int(n['vDecay'][()])}")
            lines.append(line)
        if info:
            names = [layer["neuron"] for layer in info["layers"]]
            lines.append(f"  Lava layers are the IF nodes {', '.join(names)}; readout: "
                         + (f"host computes {' → '.join(info['readout_nodes'])} from {names[-1]}'s spikes"
                            if info["readout_nodes"] else f"spike counts of {names[-1]}"))
            for layer in info["layers"]:
                lines += [f"  warning: {layer['neuron']}: {w}" for w in layer["warnings"]]
    except KdsnnError:
        raise
    except (KeyError, ValueError, TypeError, OSError, RuntimeError) as exc:
        raise KdsnnError(f"{path}: malformed netx file ({type(exc).__name__}: {exc})") from None
    finally:
        f.close()
    return "\n".join(lines)
