"""Checkpoints: weights plus everything needed to rebuild the model, loaded safely.

Written atomically; read with ``torch.load(weights_only=True)`` so a checkpoint can hold
tensors and plain data only. A file that is not ours, or is corrupt, gives a one-line error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_path
from .errors import KdsnnError
from .models import build_model, is_student

FORMAT = "kdsnn-checkpoint"
VERSION = 1


def save(path: str | Path, payload: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a kdsnn checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise KdsnnError(f"checkpoint {path} does not exist; "
                         "pass the checkpoint.pt a train-teacher or distill run wrote")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many types on corrupt input (IndexError, UnpicklingError, ...)
        raise KdsnnError(f"{path} is not a readable kdsnn checkpoint (corrupt, truncated or not a PyTorch file: "
                         f"{type(exc).__name__}); use the checkpoint.pt a kdsnn run wrote") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise KdsnnError(f"{path} is not a kdsnn checkpoint (no '{FORMAT}' marker); was it written by another tool?")
    if ckpt.get("version", 0) > VERSION:
        raise KdsnnError(f"{path} was written by a newer kdsnn (checkpoint version {ckpt['version']}); upgrade kdsnn")
    return ckpt


def model_spec(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments stored in a checkpoint."""
    return ckpt["model_spec"]


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    kwargs = {}
    if is_student(spec["arch"]):
        kwargs = {k: spec[k] for k in ("timesteps", "encoding", "readout", "neuron")}
        kwargs["width"] = spec.get("width", 1.0)  # absent from checkpoints written before --width
    return build_model(spec["arch"], tuple(spec["input_shape"]), spec["classes"], **kwargs)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, with its weights, in eval mode."""
    ckpt = load(path, map_location)
    try:
        model = build_from_spec(model_spec(ckpt))
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError) as exc:
        raise KdsnnError(f"{path}: checkpoint does not match its architecture "
                         f"({str(exc).splitlines()[0][:120]})") from None
    return model.eval(), ckpt


def checkpoint_dataset(ckpt: dict[str, Any], dataset: str | None, source: str) -> str:
    """The data set to use (the checkpoint's unless given), checked against the model's shapes."""
    from . import data

    name = dataset or ckpt.get("dataset", "digits")
    ds, spec = data.spec(name), model_spec(ckpt)
    if tuple(spec["input_shape"]) != ds.input_shape or spec["classes"] != ds.classes:
        raise KdsnnError(f"{source} expects {spec['input_shape']} inputs / {spec['classes']} classes; "
                         f"{name} has {list(ds.input_shape)} / {ds.classes}")
    return name
