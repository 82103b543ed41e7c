"""Training-time augmentation, named in recipes and ``--augment``: torchvision transforms on
[0, 1] images (before corruption and normalization), applied to the training split only.

Syntax: ``NAME`` or ``NAME:key=value,key=value`` (e.g. ``affine:degrees=10,translate=0.1``):

- ``none``: the image as it is;
- ``shift``: random crop of the image zero-padded by ``pad`` pixels (a shift of up to ``pad``);
- ``crop-flip``: the CIFAR recipe: random crop with zero padding ``pad`` (4) and a horizontal
  flip with probability ½ (never for digits: a flipped 2 is no 2);
- ``affine``: ``RandomAffine`` (rotation up to ``degrees``, shift up to ``translate`` of the size,
  scale within 1 ± ``scale``), the usual augmentation for handwritten digits.

Transforms draw from PyTorch's global generator, which the trainer seeds per epoch, so a
resumed run sees the same augmented images as an uninterrupted one. Each runs on one thread:
an image is too small to share, and with two threads ``RandomAffine``'s grid (a BLAS product)
took 5-20× longer on this machine (threads waiting for each other under load).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import KdsnnError

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Augmentation:
    """One named augmentation: its parameters with defaults, and how to build the transform."""

    name: str
    summary: str
    defaults: dict[str, float]
    build: Callable[[tuple[int, int], dict[str, float]], Transform | None]


def _shift(hw: tuple[int, int], p: dict[str, float]) -> Transform:
    from torchvision import transforms  # imported when used: torchvision takes seconds to import

    return transforms.RandomCrop(hw, padding=_whole(p, "pad"))


def _crop_flip(hw: tuple[int, int], p: dict[str, float]) -> Transform:
    from torchvision import transforms

    return transforms.Compose([transforms.RandomCrop(hw, padding=_whole(p, "pad")),
                               transforms.RandomHorizontalFlip()])


def _affine(hw: tuple[int, int], p: dict[str, float]) -> Transform:
    from torchvision import transforms

    t, s = p["translate"], p["scale"]
    return transforms.RandomAffine(degrees=p["degrees"], translate=(t, t) if t else None,
                                   scale=(1 - s, 1 + s) if s else None)


def _whole(p: dict[str, float], key: str) -> int:
    if p[key] != int(p[key]):
        raise KdsnnError(f"augmentation parameter {key} must be a whole number of pixels, got {p[key]}")
    return int(p[key])


AUGMENTATIONS: dict[str, Augmentation] = {a.name: a for a in (
    Augmentation("none", "no augmentation", {}, lambda hw, p: None),
    Augmentation("shift", "random crop of the zero-padded image (shift by up to pad pixels)", {"pad": 1.0}, _shift),
    Augmentation("crop-flip", "random crop with padding pad and horizontal flip (CIFAR)", {"pad": 4.0}, _crop_flip),
    Augmentation("affine", "RandomAffine: rotation ±degrees, shift ±translate, scale 1±scale (digits)",
                 {"degrees": 10.0, "translate": 0.1, "scale": 0.1}, _affine),
)}

LIMITS = {"pad": (0, 64), "degrees": (0, 180), "translate": (0, 1), "scale": (0, 0.9)}


def augment_help() -> str:
    """The ``--augment`` help text, generated from :data:`AUGMENTATIONS`."""
    items = "; ".join(f"{a.name}{_params_text(a.defaults)}: {a.summary}" for a in AUGMENTATIONS.values())
    return f"training augmentation, NAME or NAME:key=value,...: {items} (default: the recipe's)"


def _params_text(params: dict[str, float]) -> str:
    return ":" + ",".join(f"{k}={v:g}" for k, v in params.items()) if params else ""


def parse(spec: str) -> tuple[str, dict[str, float]]:
    """``"affine:degrees=5"`` → ``("affine", {"degrees": 5.0, "translate": 0.1, "scale": 0.1})``,
    or a one-line error naming what is wrong."""
    name, _, rest = str(spec).strip().partition(":")
    if name not in AUGMENTATIONS:
        raise KdsnnError(f"unknown augmentation {name!r}; choose one of {', '.join(AUGMENTATIONS)} "
                         "(optionally NAME:key=value,...)")
    aug = AUGMENTATIONS[name]
    params = dict(aug.defaults)
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if key not in aug.defaults or not eq:
            known = ", ".join(aug.defaults) or "none"
            raise KdsnnError(f"augmentation {name!r}: cannot read {item!r}; write key=value with key in: {known}")
        try:
            number = float(value)
        except ValueError:
            raise KdsnnError(f"augmentation {name!r}: {key} must be a number, got {value!r}") from None
        lo, hi = LIMITS[key]
        if not lo <= number <= hi:
            raise KdsnnError(f"augmentation {name!r}: {key} = {value} is outside [{lo}, {hi}]")
        params[key] = number
    return name, params


def build(spec: str | None, hw: tuple[int, int], flippable: bool = True) -> Transform | None:
    """The transform ``spec`` names for images of height × width ``hw``, or None for ``none``.

    ``flippable=False`` (digits, MNIST) refuses ``crop-flip``: mirrored digits are other digits.
    """
    if spec is None:
        return None
    name, params = parse(spec)
    if name == "crop-flip" and not flippable:
        raise KdsnnError("augmentation 'crop-flip' mirrors images, which turns digits into other symbols; "
                         "use shift or affine for digits and MNIST")
    transform = AUGMENTATIONS[name].build(hw, params)
    return None if transform is None else _SingleThreaded(transform)


class _SingleThreaded:
    """Run a per-image transform with one intra-op thread (switching costs well under a microsecond)."""

    def __init__(self, transform: Transform) -> None:
        self.transform = transform

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.transform(x)
        finally:
            torch.set_num_threads(threads)

    def __repr__(self) -> str:
        return repr(self.transform)
