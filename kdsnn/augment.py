"""Training-time augmentation, named in recipes and ``--augment``: torchvision transforms on
[0, 1] images (before corruption and normalization), applied to the training split only.

Syntax: ``NAME`` or ``NAME:key=value,key=value`` (e.g. ``affine:degrees=10,translate=0.1``):

- ``none``: the image as it is;
- ``shift``: random crop of the image zero-padded by ``pad`` pixels (a shift of up to ``pad``);
- ``crop-flip``: the CIFAR recipe: random crop with zero padding ``pad`` (4) and a horizontal
  flip with probability ½ (never for digits: a flipped 2 is no 2);
- ``affine``: torchvision's ``RandomAffine`` (rotation up to ``degrees``, shift up to ``translate``
  of the size rounded to whole pixels, scale within 1 ± ``scale``; nearest pixel, zero fill), the
  usual augmentation for handwritten digits, optionally followed by a stroke width change (``width``)
  and an intensity gain (``gain``), applied to a whole batch at once (:class:`BatchAffine`:
  each image its own parameters, drawn from the same distribution; one ``grid_sample`` instead of
  one per image, which took 0.68 ms per MNIST image on this machine: bench/epoch_throughput.py).

Transforms draw from PyTorch's global generator, which the trainer seeds per epoch, so a
resumed run sees the same augmented images as an uninterrupted one. The per-image ones run on
one thread: an image is too small to share, and with two threads ``RandomAffine``'s grid (a
BLAS product) took 5-20× longer on this machine (threads waiting for each other under load).
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
    return BatchAffine(p["degrees"], p["translate"], p["scale"], p["width"], p["gain"])


class BatchAffine:
    """torchvision's ``RandomAffine(degrees, translate=(t, t), scale=(1 - s, 1 + s))`` (nearest pixel,
    zero fill, no shear) for a batch ``[N, C, H, W]`` (or one image ``[C, H, W]``), each image with
    its own parameters from the same distribution: angle uniform in ±degrees, shift uniform in
    ±translate · size rounded to whole pixels (half to even, as Python's ``round``), scale uniform
    in 1 ± scale. Then, where asked (both 0 by default, and then nothing more is drawn): a stroke
    width change of strength uniform in ±``width`` (:func:`apply_stroke`) and an intensity gain uniform
    in 1 ± ``gain`` (clipped to [0, 1]): an SNN with direct encoding turns intensity into spike counts,
    and the MNIST dev set's test digits have thinner strokes than its training digits."""

    batched = True  # kdsnn.data applies it to a batch (Prepared.__getitems__)

    def __init__(self, degrees: float, translate: float, scale: float, width: float = 0.0, gain: float = 0.0) -> None:
        self.degrees, self.translate, self.scale = float(degrees), float(translate), float(scale)
        self.width, self.gain = float(width), float(gain)

    def draw(self, n: int, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-image parameters: angles (degrees), whole-pixel shifts ``[n, 2]`` (x, y) and scales."""
        h, w = hw
        angle = torch.empty(n, dtype=torch.float64).uniform_(-self.degrees, self.degrees)
        limit = torch.tensor([self.translate * w, self.translate * h], dtype=torch.float64)
        shift = torch.round((torch.rand(n, 2, dtype=torch.float64) * 2 - 1) * limit)
        scale = torch.empty(n, dtype=torch.float64).uniform_(1 - self.scale, 1 + self.scale)
        return angle, shift, scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        one = x.dim() == 3
        batch = x.unsqueeze(0) if one else x
        out = apply_affine(batch, *self.draw(len(batch), tuple(batch.shape[-2:])))
        if self.width:
            out = apply_stroke(out, torch.empty(len(out), dtype=out.dtype).uniform_(-self.width, self.width))
        if self.gain:
            gain = torch.empty(len(out), 1, 1, 1, dtype=out.dtype).uniform_(1 - self.gain, 1 + self.gain)
            out = (out * gain).clamp(0, 1)
        return out[0] if one else out

    def __repr__(self) -> str:
        extra = f", width={self.width:g}, gain={self.gain:g}" if self.width or self.gain else ""
        return f"BatchAffine(degrees={self.degrees:g}, translate={self.translate:g}, scale={self.scale:g}{extra})"


def apply_stroke(x: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """Thicker or thinner strokes for ``x [N, C, H, W]`` in [0, 1], ``strength[i]`` in [-1, 1] per image:
    s > 0 raises each pixel towards s × its 3×3 neighbourhood's maximum (a soft dilation: s = 1 is a
    grey-scale dilation), s < 0 lowers it towards its 3×3 neighbourhood's minimum the same way (a soft
    erosion); s = 0 leaves the image as it is."""
    s = strength.to(x.dtype).view(-1, 1, 1, 1)
    grown = torch.maximum(x, s.clamp(min=0) * torch.nn.functional.max_pool2d(x, 3, 1, 1))
    room = 1 - torch.nn.functional.max_pool2d(1 - x, 3, 1, 1)  # the 3×3 minimum
    return torch.minimum(grown, 1 - (-s).clamp(min=0) * (1 - room))


def apply_affine(x: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x [N, C, H, W]`` rotated by ``angle[i]`` degrees about the image centre, scaled by
    ``scale[i]`` and moved by ``shift[i]`` = (x, y) pixels: torchvision's ``F.affine`` on a tensor
    (its inverse matrix with centre 0 and no shear, its pixel-centred grid, nearest, zero fill)
    computed the same way, for a whole batch in one grid and one ``grid_sample``."""
    n, _, h, w = x.shape
    rot = torch.deg2rad(angle.double())
    cos, sin = torch.cos(rot) / scale, torch.sin(rot) / scale
    tx, ty = shift[:, 0].double(), shift[:, 1].double()
    # the inverse map output pixel → input pixel, in pixels from the image centre (torchvision's
    # _get_inverse_affine_matrix in double precision, then used in the image's precision)
    theta = torch.stack([torch.stack([cos, sin, -cos * tx - sin * ty], 1),
                         torch.stack([-sin, cos, sin * tx - cos * ty], 1)], 1).to(x.dtype)
    # pixel-centred output coordinates (x, y, 1) and grid_sample's [-1, 1] units, as torchvision's _gen_affine_grid
    base = torch.empty(1, h, w, 3, dtype=x.dtype)
    base[..., 0] = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w)
    base[..., 1] = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h).unsqueeze(-1)
    base[..., 2] = 1
    rescaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=x.dtype)
    grid = base.view(1, h * w, 3).expand(n, h * w, 3).bmm(rescaled).view(n, h, w, 2)
    return torch.nn.functional.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _whole(p: dict[str, float], key: str) -> int:
    if p[key] != int(p[key]):
        raise KdsnnError(f"augmentation parameter {key} must be a whole number of pixels, got {p[key]}")
    return int(p[key])


AUGMENTATIONS: dict[str, Augmentation] = {a.name: a for a in (
    Augmentation("none", "no augmentation", {}, lambda hw, p: None),
    Augmentation("shift", "random crop of the zero-padded image (shift by up to pad pixels)", {"pad": 1.0}, _shift),
    Augmentation("crop-flip", "random crop with padding pad and horizontal flip (CIFAR)", {"pad": 4.0}, _crop_flip),
    Augmentation("affine", "RandomAffine (each image its own draw, a batch at a time): rotation ±degrees, "
                 "shift ±translate, scale 1±scale (digits); then stroke width ±width (soft 3×3 dilation or "
                 "erosion) and intensity gain 1±gain",
                 {"degrees": 10.0, "translate": 0.1, "scale": 0.1, "width": 0.0, "gain": 0.0}, _affine),
)}

LIMITS = {"pad": (0, 64), "degrees": (0, 180), "translate": (0, 1), "scale": (0, 0.9), "width": (0, 1),
          "gain": (0, 0.9)}


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
    if transform is None or getattr(transform, "batched", False):
        return transform
    return _SingleThreaded(transform)


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
