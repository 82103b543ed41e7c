"""Data sets: the embedded ``digits`` default, and MNIST / CIFAR read from a local root.

Nothing is ever downloaded. Every data set yields images in [0, 1]; normalization
(mean/std) is applied after optional corruption, and is recorded so exporters can state how
raw data becomes the network's input.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from . import corruptions
from .errors import KdsnnError

DATASETS = ("digits", "mnist", "cifar10", "cifar100")


@dataclass
class DataSpec:
    """What a model needs to know about its data: shape, classes and preprocessing."""

    name: str
    input_shape: tuple[int, int, int]
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    raw_scale: float  # raw value × raw_scale = value in [0, 1] (digits: 1/16, images: 1/255)
    extra: dict = field(default_factory=dict)

    def preprocessing(self) -> dict:
        return {"raw_scale": self.raw_scale, "mean": list(self.mean), "std": list(self.std)}


SPECS = {
    "digits": DataSpec("digits", (1, 8, 8), 10, (0.0,), (1.0,), 1 / 16),
    "mnist": DataSpec("mnist", (1, 28, 28), 10, (0.0,), (1.0,), 1 / 255),
    "cifar10": DataSpec("cifar10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 1 / 255),
    "cifar100": DataSpec("cifar100", (3, 32, 32), 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 1 / 255),
}

EXPECTED_FILES = {
    "mnist": "MNIST/raw/train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte",
    "cifar10": "cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta",
    "cifar100": "cifar-100-python/train, test, meta",
}


def spec(name: str) -> DataSpec:
    if name not in SPECS:
        raise KdsnnError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return SPECS[name]


class Prepared(Dataset):
    """Wraps a [0,1]-image data set: (augment if training) → (corrupt) → normalize."""

    def __init__(self, base: Dataset, ds: DataSpec, train: bool, noise: tuple[str, float] | None = None,
                 noise_seed: int = 0) -> None:
        self.base, self.ds, self.train, self.noise = base, ds, train, noise
        self.mean = torch.tensor(ds.mean).view(-1, 1, 1)
        self.std = torch.tensor(ds.std).view(-1, 1, 1)
        self.noise_seed = noise_seed
        self.augment = train and ds.name != "mnist"

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.base[i]
        if self.augment:
            x = _shift_augment(x, pad=4 if self.ds.name.startswith("cifar") else 1,
                               flip=self.ds.name.startswith("cifar"))
        if self.noise is not None:
            g = torch.Generator().manual_seed(self.noise_seed * 1_000_003 + i)
            x = corruptions.apply(x.unsqueeze(0), *self.noise, generator=g)[0]
        return (x - self.mean) / self.std, int(y)


def _shift_augment(x: torch.Tensor, pad: int, flip: bool) -> torch.Tensor:
    """Random crop with zero padding ``pad`` (CIFAR: 4, the usual recipe; digits: 1 pixel of
    shift) and, for CIFAR, a horizontal flip. Digits are never flipped (a flipped 2 is no 2)."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    i, j = torch.randint(0, 2 * pad + 1, (2,)).tolist()
    x = padded[:, i:i + h, j:j + w]
    return x.flip(-1) if flip and torch.rand(()) < 0.5 else x


@functools.lru_cache(maxsize=1)
def _digits_split() -> tuple[np.ndarray, ...]:
    """scikit-learn's digits, scaled to [0, 1], split 75/25 with a fixed seed, stratified (read once)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    return tuple(train_test_split(x, d.target, test_size=0.25, random_state=0, stratify=d.target))


def _digits(train: bool) -> Dataset:
    xtr, xte, ytr, yte = _digits_split()
    xs, ys = (xtr, ytr) if train else (xte, yte)
    return TensorDataset(torch.from_numpy(xs.copy()).unsqueeze(1), torch.from_numpy(ys.astype(np.int64)))


def _torchvision(name: str, root: str | None, train: bool) -> Dataset:
    import torchvision
    from torchvision.transforms import ToTensor

    if not root:
        raise KdsnnError(f"dataset {name} needs --data-root DIR holding {EXPECTED_FILES[name]} (nothing is downloaded)")
    if not Path(root).is_dir():
        raise KdsnnError(f"data root {root} does not exist; it should hold {EXPECTED_FILES[name]}")
    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10,
           "cifar100": torchvision.datasets.CIFAR100}[name]
    try:
        return cls(root, train=train, download=False, transform=ToTensor())
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        raise KdsnnError(f"{name} not found under {root}: expected {EXPECTED_FILES[name]} ({exc})") from None


SPLITS = ("train", "test", "fit", "val")
VAL_FRACTION = 0.2  # of the training split, held out by ``fit``/``val``


def validation_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, val) indices of a training split of ``n`` examples: a fixed random ``VAL_FRACTION``
    held out (seed 0, whatever the run's seed), so every run validates on the same images."""
    perm = np.random.default_rng(0).permutation(n)
    n_val = max(1, int(round(n * VAL_FRACTION)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def load(name: str, split: str, root: str | None = None, noise: str | None = None, noise_seed: int = 0) -> Dataset:
    """A split of ``name``, normalized, optionally corrupted: ``train``, ``test``, or the training
    split divided into ``fit`` (augmented, for training) and ``val`` (held out, never augmented),
    for choosing options without looking at the test split."""
    ds = spec(name)
    if split not in SPLITS:
        raise KdsnnError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    train = split != "test"
    base = _digits(train) if name == "digits" else _torchvision(name, root, train)
    if split in ("fit", "val"):
        fit, val = validation_indices(len(base))  # type: ignore[arg-type]
        base = Subset(base, (fit if split == "fit" else val).tolist())
    return Prepared(base, ds, split in ("train", "fit"), corruptions.parse(noise), noise_seed)


def sample_batch(name: str, n: int, root: str | None = None, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples of a split as one batch (used by export checks and reports)."""
    data = load(name, split, root)
    items = [data[i] for i in range(min(n, len(data)))]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])
