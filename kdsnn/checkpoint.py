"""Checkpoints: weights plus everything needed to rebuild the model, loaded safely.

Written atomically; read with ``torch.load(weights_only=True)`` so a checkpoint can hold
tensors and plain data only. A file that is not ours, or is corrupt, gives a one-line error.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import schema as sc
from .atomic import atomic_path
from .errors import KdsnnError
from .models import build_model, is_student

FORMAT = "kdsnn-checkpoint"
VERSION = 1

# The fields a checkpoint holds (validated at load: a wrong type or range is one line naming the field).
FIELDS = {
    "format": sc.text(required=True), "version": sc.integer(0, required=True), "kind": sc.one_of("teacher", "student"),
    "model_spec": sc.table(), "dataset": sc.text(), "preprocessing": sc.table(), "model": sc.table(),
    "train_state": sc.table(), "optimizer": sc.table(), "scheduler": sc.table(), "epoch": sc.integer(0),
    "epochs": sc.integer(1), "config": sc.table(), "recipe": sc.table(),
}
SPEC_FIELDS = {
    "arch": sc.text(required=True), "input_shape": sc.int_list(3, required=True),
    "classes": sc.integer(1, required=True), "timesteps": sc.integer(1), "encoding": sc.text(),
    "readout": sc.text(), "width": sc.number(positive=True),
    "neuron": sc.table(),
}
NEURON_FIELDS = {
    "threshold": sc.number(), "reset": sc.one_of("hard", "soft"), "v_reset": sc.number(), "surrogate": sc.text(),
    "surrogate_param": sc.number(nullable=True), "detach_reset": sc.boolean(),
}
STUDENT_KEYS = ("timesteps", "encoding", "readout", "neuron")


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
        with warnings.catch_warnings():  # torch warns about a foreign pickle before refusing it: one line is ours
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many types on corrupt input (IndexError, UnpicklingError, ...)
        raise KdsnnError(f"{path} is not a readable kdsnn checkpoint (corrupt, truncated or not a PyTorch file: "
                         f"{type(exc).__name__}); use the checkpoint.pt a kdsnn run wrote") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise KdsnnError(f"{path} is not a kdsnn checkpoint (no '{FORMAT}' marker); was it written by another tool?")
    validate(ckpt, str(path))
    if ckpt["version"] > VERSION:
        raise KdsnnError(f"{path} was written by a newer kdsnn (checkpoint version {ckpt['version']}); upgrade kdsnn")
    return ckpt


def validate(ckpt: dict[str, Any], where: str) -> None:
    """Every field of a loaded checkpoint has its type and range (see :data:`FIELDS`)."""
    fix = "the file is damaged or was edited; use the checkpoint.pt a kdsnn run wrote"
    sc.validate(ckpt, FIELDS, f"checkpoint {where}", fix)
    if "model_spec" in ckpt:
        spec = sc.validate(ckpt["model_spec"], SPEC_FIELDS, f"checkpoint {where}, model_spec", fix)
        if "neuron" in spec:
            sc.validate(spec["neuron"], NEURON_FIELDS, f"checkpoint {where}, model_spec.neuron", fix)


def model_spec(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments stored in a checkpoint."""
    if "model_spec" not in ckpt:
        raise KdsnnError("the checkpoint has no model_spec (the constructor arguments of its model); "
                         "use the checkpoint.pt a kdsnn run wrote")
    return ckpt["model_spec"]


def constructor_args(spec: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`~kdsnn.models.build_model` beyond arch, shape and classes."""
    kwargs: dict[str, Any] = {}
    if is_student(spec["arch"]):
        missing = [k for k in STUDENT_KEYS if k not in spec]
        if missing:
            raise KdsnnError(f"the checkpoint's model_spec of student {spec['arch']} lacks {', '.join(missing)}; "
                             "use the checkpoint.pt a kdsnn run wrote")
        kwargs = {k: spec[k] for k in STUDENT_KEYS}
        kwargs["width"] = spec.get("width", 1.0)  # absent from checkpoints written before --width
    return kwargs


def build_from_spec(spec: dict[str, Any], batch: int = 1) -> nn.Module:
    """The model ``spec`` describes, once its size (``batch`` samples at its T) is known to fit in memory."""
    from .models.sizing import require_fits

    kwargs = constructor_args(spec)
    shape = tuple(spec["input_shape"])
    require_fits(spec["arch"], shape, spec["classes"], batch, kwargs.get("timesteps", 1), False,
                 "the checkpoint's model", **kwargs)
    return build_model(spec["arch"], shape, spec["classes"], **kwargs)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, with its weights, in eval mode."""
    ckpt = load(path, map_location)
    try:
        model = build_from_spec(model_spec(ckpt))
        model.load_state_dict(ckpt["model"])
    except KdsnnError as exc:
        raise KdsnnError(f"{path}: {exc}") from None
    except (KeyError, RuntimeError) as exc:
        raise KdsnnError(f"{path}: checkpoint does not match its architecture "
                         f"({str(exc).splitlines()[0][:120]})") from None
    broken = next((k for k, v in ckpt["model"].items()
                   if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if broken is not None:  # a run that diverged: every answer of the model would be NaN (10 % accuracy on digits)
        raise KdsnnError(f"{path}: weight {broken!r} holds NaN or infinite values (the training diverged?); "
                         "train it again, e.g. with a lower --lr")
    return model.eval(), ckpt


def data_timesteps(ckpt: dict[str, Any]) -> int | None:
    """The T an event data set is binned to for this checkpoint's model: a student's T, or the T its
    training run binned the events to (a teacher's ``config``)."""
    t = model_spec(ckpt).get("timesteps") or (ckpt.get("config") or {}).get("timesteps")
    return int(t) if t else None


def checkpoint_dataset(ckpt: dict[str, Any], dataset: str | None, source: str) -> str:
    """The data set to use (the checkpoint's unless given), checked against the model's shapes."""
    from . import data

    name = dataset or ckpt.get("dataset", "digits")
    spec = model_spec(ckpt)
    ds = data.spec(name)
    if tuple(spec["input_shape"]) != ds.input_shape or spec["classes"] != ds.classes:
        raise KdsnnError(f"{source} expects {spec['input_shape']} inputs / {spec['classes']} classes; "
                         f"{name} has {list(ds.input_shape)} / {ds.classes}")
    return name
