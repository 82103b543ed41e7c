"""What a model will cost before it is built: parameters and activations, measured on PyTorch's
``meta`` device (shapes only, no memory), and checked against the memory budget.

Input shapes, class counts and T come from users, data set names and checkpoints; a model
built from absurd ones (``fake:3x100000x100000:10``, ``timesteps = 10**8``) would otherwise be
allocated first and fail deep inside PyTorch. The meta-device forward pass also finds inputs
too small for an architecture (a 1×1 image through a CNN with pooling) before any real work.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..budget import human_bytes, require
from ..errors import KdsnnError

FLOAT_BYTES = 4
TRAIN_PARAM_COPIES = 4   # weights, gradients, SGD momentum, and the optimizer's working copy
# every layer's output kept for backward, and its gradient: measured, distill snn_resnet14 (width 1,
# fake:3x32x32:10, batch 64, T = 4) peaks 0.77 GB above the 1.0 GB of an idle kdsnn process, this estimate
# 0.81 GB (parameters included)
TRAIN_ACTIVATION_COPIES = 2


@dataclass(frozen=True)
class ModelSize:
    """A model's parameter count and the activations one sample produces in one time step."""

    parameters: int
    activations: int  # elements output by all leaf modules, per sample and step

    def bytes(self, batch: int, timesteps: int, training: bool) -> int:
        """Memory to run ``batch`` samples over ``timesteps`` steps (training: with gradients)."""
        params = self.parameters * FLOAT_BYTES * (TRAIN_PARAM_COPIES if training else 1)
        acts = self.activations * batch * timesteps * FLOAT_BYTES * (TRAIN_ACTIVATION_COPIES if training else 1)
        return params + acts


def measure(arch: str, input_shape: tuple[int, ...], classes: int, **student: Any) -> ModelSize:
    """Build ``arch`` on the meta device with T = 1 and run one sample through it, counting."""
    from . import build_model, is_student

    shape = tuple(int(v) for v in input_shape)
    kwargs = {**student, "timesteps": 1} if is_student(arch) else {}
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op" and the like
            model = build_model(arch, shape, classes, **kwargs).eval()
    except (RuntimeError, OverflowError, ValueError, TypeError) as exc:  # sizes torch cannot even describe
        raise KdsnnError(f"{arch} with {'×'.join(map(str, shape))} inputs and {classes} classes cannot be built "
                         f"({_first_line(exc)}); check the input shape and class count") from None
    count = [0]

    def hook(_module: nn.Module, _inputs: Any, out: Any) -> None:
        count[0] += sum(t.numel() for t in (out if isinstance(out, (tuple, list)) else [out])
                        if isinstance(t, torch.Tensor))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.empty((1, *shape), device="meta"))
    except (RuntimeError, ValueError, IndexError) as exc:  # e.g. "Output size is too small" on a 1×1 image
        raise KdsnnError(f"{arch} cannot take {'×'.join(map(str, shape))} inputs ({_first_line(exc)}); "
                         "use a larger input or another architecture") from None
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    return ModelSize(int(params), int(count[0]))


def require_fits(arch: str, input_shape: tuple[int, ...], classes: int, batch: int, steps: int,
                 training: bool, where: str, device: Any = None, **student: Any) -> ModelSize:
    """Measure ``arch`` and refuse in one line when ``batch`` samples over ``steps`` time steps would not fit
    (on ``device`` when it is a CUDA device; ``student``: the student's constructor arguments, as
    :func:`measure` takes them)."""
    size = measure(arch, input_shape, classes, **student)
    need = size.bytes(batch, steps, training)
    require(need, f"{where}: {arch} ({size.parameters:,} parameters, {human_bytes(size.activations * FLOAT_BYTES)} "
                  f"of activations per sample and step) at batch {batch} and T = {steps}",
            "use a smaller input, fewer classes, fewer time steps or a smaller --batch-size", device)
    return size


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:140]
