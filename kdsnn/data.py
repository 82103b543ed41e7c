"""Data sets: the embedded ``digits`` default, MNIST / CIFAR read from a local root, seeded
random images of any shape (``fake:CxHxW:K``), event-camera recordings (N-MNIST, DVS128 Gesture:
``kdsnn/event_data.py``, samples already spikes over T), and the user's own samples (``.npy``).

Nothing is ever downloaded. Every data set yields images in [0, 1]; normalization
(mean/std) is applied after optional corruption, and is recorded so exporters can state how
raw data becomes the network's input.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from . import augment as augmentation
from . import corruptions, event_data
from .budget import require
from .errors import KdsnnError
from .npy_files import read_npy

DATASETS = ("digits", "mnist", "cifar10", "cifar100", *event_data.EVENT_DATASETS, "fake:CxHxW:K")
DATASETS_HELP = ("digits (embedded), mnist, cifar10, cifar100, and the event recordings nmnist, dvsgesture, "
                 "dvsgesture:64, dvsgesture:32 (binned to T frames of 2 polarities; all from --data-root), or "
                 "fake:CxHxW:K: seeded random images of C×H×W (C ≤ 4) in K classes, e.g. fake:3x32x32:10, for "
                 "shapes whose data is not here")


@dataclass
class DataSpec:
    """What a model needs to know about its data: shape, classes and preprocessing."""

    name: str
    input_shape: tuple[int, int, int]
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    raw_scale: float  # raw value × raw_scale = value in [0, 1] (digits: 1/16, images: 1/255)

    def preprocessing(self) -> dict:
        """How raw data becomes the network's input (recorded in checkpoints and graphs)."""
        return {"raw_scale": self.raw_scale, "mean": list(self.mean), "std": list(self.std)}


SPECS = {
    "digits": DataSpec("digits", (1, 8, 8), 10, (0.0,), (1.0,), 1 / 16),
    "mnist": DataSpec("mnist", (1, 28, 28), 10, (0.0,), (1.0,), 1 / 255),
    "cifar10": DataSpec("cifar10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 1 / 255),
    "cifar100": DataSpec("cifar100", (3, 32, 32), 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 1 / 255),
}

EXPECTED_FILES = {
    "mnist": ("MNIST/raw/train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
              "t10k-labels-idx1-ubyte"),
    "cifar10": "cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta",
    "cifar100": "cifar-100-python/train, test, meta",
}


FAKE_SIZES = {"train": 512, "test": 128}
FAKE_OFFSETS = {"train": 0, "test": 1_000_000}  # FakeData seeds image i with i + offset: the splits never meet
# FakeData's pixels are uniform on {0, …, 255} (a normal draw × 255, wrapped to a byte): mean ½, std √((256²−1)/12)/255
FAKE_MEAN, FAKE_STD = 0.5, 0.2898
MAX_CLASSES = 2 ** 63 - 1  # FakeData draws labels with torch.randint: a class index must fit int64
FLOAT_BYTES = 4
FAKE_SYNTAX = "fake:CxHxW:K, e.g. fake:3x32x32:10 (channels 1-4 × height × width, K >= 1 classes)"


def spec(name: str) -> DataSpec:
    """The :class:`DataSpec` of a data set name (one of :data:`DATASETS`)."""
    if name.startswith("fake"):
        return _fake_spec(name)
    if event_data.is_event_dataset(name):
        return DataSpec(name, event_data.input_shape(name), event_data.classes(name), (0.0, 0.0), (1.0, 1.0), 1.0)
    if name not in SPECS:
        raise KdsnnError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return SPECS[name]


def _fake_spec(name: str) -> DataSpec:
    m = re.fullmatch(r"fake:(\d+)x(\d+)x(\d+):(\d+)", name)
    if not m:
        raise KdsnnError(f"cannot read dataset {name!r}: write {FAKE_SYNTAX}")
    c, h, w, k = (int(v) for v in m.groups())
    if not 1 <= c <= 4 or h < 1 or w < 1 or not 1 <= k <= MAX_CLASSES:
        raise KdsnnError(f"dataset {name!r} is out of range: write {FAKE_SYNTAX} "
                         "(torchvision's FakeData draws images of 1 to 4 channels; K must fit a 64-bit integer)")
    require(c * h * w * FLOAT_BYTES, f"one {c}×{h}×{w} image of dataset {name!r}", "choose a smaller image shape")
    return DataSpec(name, (c, h, w), k, (FAKE_MEAN,) * c, (FAKE_STD,) * c, 1 / 255)


class Prepared(Dataset):
    """Wraps a [0,1]-image data set: (augment, training splits only) → (corrupt) → normalize."""

    def __init__(self, base: Dataset, ds: DataSpec, train: bool, noise: tuple[str, float] | None = None,
                 noise_seed: int = 0, augment: str | None = None) -> None:
        self.base, self.ds, self.train, self.noise = base, ds, train, noise
        self.mean = torch.tensor(ds.mean).view(-1, 1, 1)
        self.std = torch.tensor(ds.std).view(-1, 1, 1)
        self.noise_seed = noise_seed
        # the transform (kdsnn/augment.py) is built for training splits only: test and val images stay as they are
        flippable = ds.name not in ("digits", "mnist")
        self.augment = augmentation.build(augment, ds.input_shape[1:], flippable) if train else None

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.base[i]
        if self.augment is not None:
            x = self.augment(x)
        return self._finish(x, i), int(y)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A batch (what DataLoader asks for): a batched augmentation (``affine``) draws and warps
        the whole batch in one call; otherwise each image as ``__getitem__`` gives it."""
        if not getattr(self.augment, "batched", False):
            return [self[i] for i in indices]
        fetch = getattr(self.base, "__getitems__", None)
        pairs = fetch(indices) if fetch is not None else [self.base[i] for i in indices]
        warped = self.augment(torch.stack([x for x, _ in pairs]))
        return [(self._finish(x, i), int(y)) for x, i, (_, y) in zip(warped, indices, pairs, strict=True)]

    def _finish(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Corrupt (seeded by the sample's index) and normalize one [0, 1] image."""
        if self.noise is not None:
            g = torch.Generator().manual_seed(self.noise_seed * 1_000_003 + i)
            x = corruptions.apply(x.unsqueeze(0), *self.noise, generator=g)[0]
        return (x - self.mean) / self.std


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


def _fake(ds: DataSpec, train: bool) -> Dataset:
    """torchvision's FakeData for ``ds``: a fixed, seeded draw (train and test from different seeds)."""
    from torchvision.datasets import FakeData
    from torchvision.transforms import ToTensor

    split = "train" if train else "test"
    return FakeData(FAKE_SIZES[split], ds.input_shape, ds.classes, transform=ToTensor(),
                    random_offset=FAKE_OFFSETS[split])


def _torchvision(name: str, root: str | None, train: bool) -> Dataset:
    import torchvision

    if not root:
        raise KdsnnError(f"dataset {name} needs --data-root DIR holding {EXPECTED_FILES[name]} (nothing is downloaded)")
    if not Path(root).is_dir():
        raise KdsnnError(f"data root {root} does not exist; it should hold {EXPECTED_FILES[name]}")
    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10,
           "cifar100": torchvision.datasets.CIFAR100}[name]
    _check_files(name, cls, Path(root))
    try:
        images = cls(root, train=train, download=False)
    except Exception as exc:  # torchvision raises ValueError, AssertionError, RuntimeError, pickle errors on bad files
        raise KdsnnError(f"{name} under {root} is unreadable, corrupt or truncated ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:100] if str(exc) else 'no detail'}); "
                         f"replace its files ({EXPECTED_FILES[name]}) with the originals") from None
    return ImageBytes(images.data, images.targets)


class ImageBytes(Dataset):
    """Images kept as the bytes torchvision read (``[N, H, W]`` or ``[N, H, W, C]``), each returned as
    a ``[C, H, W]`` float tensor in [0, 1] (what ``ToTensor`` gives, without a PIL image per sample)."""

    def __init__(self, images, targets) -> None:
        x = torch.as_tensor(images)
        self.images = (x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)).contiguous()
        self.targets = torch.as_tensor(targets, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i].float().div(255), int(self.targets[i])

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """Many samples in one indexing (what DataLoader asks for a batch)."""
        x = self.images[indices].float().div(255)
        return list(zip(x, self.targets[indices].tolist(), strict=True))


MNIST_IDX = {  # file → (magic number, shape after the count)
    "train-images-idx3-ubyte": (0x0803, (28, 28)), "train-labels-idx1-ubyte": (0x0801, ()),
    "t10k-images-idx3-ubyte": (0x0803, (28, 28)), "t10k-labels-idx1-ubyte": (0x0801, ()),
}


def _check_files(name: str, cls: type, root: Path) -> None:
    """Refuse a root whose files are missing or damaged before torchvision reads them, naming the file."""
    if name == "mnist":
        raw = root / "MNIST" / "raw"
        if (root / "MNIST" / "processed" / "training.pt").is_file():
            return  # torchvision's old processed layout: it reads that instead (a failure is caught by the caller)
        missing = [f for f in MNIST_IDX if not (raw / f).is_file()]
        if missing:
            raise KdsnnError(f"mnist not found under {root}: expected {EXPECTED_FILES[name]} "
                             f"(missing {', '.join(missing)}; uncompressed, as torchvision stores them)")
        counts = {f: _check_idx(raw / f, *MNIST_IDX[f]) for f in MNIST_IDX}
        for prefix in ("train", "t10k"):
            n_img, n_lab = counts[f"{prefix}-images-idx3-ubyte"], counts[f"{prefix}-labels-idx1-ubyte"]
            if n_img != n_lab:
                raise KdsnnError(f"mnist under {root}: {prefix}-images-idx3-ubyte holds {n_img} images but "
                                 f"{prefix}-labels-idx1-ubyte {n_lab} labels; replace both with the originals")
        return
    from torchvision.datasets.utils import check_integrity

    folder = root / cls.base_folder
    files = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
    missing = [f for f, _ in files if not (folder / f).is_file()]
    if missing:
        raise KdsnnError(f"{name} not found under {root}: expected {EXPECTED_FILES[name]} "
                         f"(missing {', '.join(missing)})")
    for f, md5 in files:
        if not check_integrity(str(folder / f), md5):
            raise KdsnnError(f"{name} file {folder / f} is corrupt or truncated (its MD5 is not the published one); "
                             "replace it with the original from the CIFAR python archive")


def _check_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> int:
    """Check an MNIST IDX file's header and length; return its item count."""
    import struct

    ndim = 1 + len(item_shape)
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
    fix = "replace it with the original (uncompressed) MNIST file"
    if len(header) < 4 + 4 * ndim:
        raise KdsnnError(f"mnist file {path} is truncated ({size} bytes, shorter than its header); {fix}")
    found, *dims = struct.unpack(f">{1 + ndim}I", header)
    if found != magic:
        raise KdsnnError(f"mnist file {path} is corrupt or not an MNIST file (IDX magic number {found:#010x}, "
                         f"expected {magic:#010x}); {fix}")
    if tuple(dims[1:]) != item_shape:
        raise KdsnnError(f"mnist file {path} holds {'x'.join(map(str, dims[1:]))} images, not "
                         f"{'x'.join(map(str, item_shape))}; {fix}")
    expected = len(header) + int(np.prod(dims))
    if size != expected:
        raise KdsnnError(f"mnist file {path} is {'truncated' if size < expected else 'too long'} ({size} bytes; its "
                         f"header promises {expected}); {fix}")
    return dims[0]


SPLITS = ("train", "test", "fit", "val")
VAL_FRACTION = 0.2  # of the training split, held out by ``fit``/``val``


def validation_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, val) indices of a training split of ``n`` examples: a fixed random ``VAL_FRACTION``
    held out (seed 0, whatever the run's seed), so every run validates on the same images."""
    perm = np.random.default_rng(0).permutation(n)
    n_val = max(1, int(round(n * VAL_FRACTION)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def load(name: str, split: str, root: str | None = None, noise: str | None = None, noise_seed: int = 0,
         timesteps: int | None = None, augment: str | None = None) -> Dataset:
    """A split of ``name``, normalized, optionally corrupted: ``train``, ``test``, or the training
    split divided into ``fit`` (for training) and ``val`` (held out), for choosing options without
    looking at the test split. ``augment`` (kdsnn/augment.py syntax) applies to ``train`` and
    ``fit`` only; ``test`` and ``val`` are never augmented. Event data sets are binned to
    ``timesteps`` frames (needed for them) and yield ``[T, 2, H, W]`` spikes (batch them with :func:`loader`)."""
    ds = spec(name)
    if split not in SPLITS:
        raise KdsnnError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    train = split != "test"
    if event_data.is_event_dataset(name):
        if noise:
            raise KdsnnError(f"--noise corrupts images; {name} is event recordings: drop --noise")
        events = event_data.load(name, "train" if train else "test", root, timesteps)
        if split in ("fit", "val"):
            fit, val = validation_indices(len(events))
            return Subset(events, (fit if split == "fit" else val).tolist())
        return events
    if name == "digits":
        base = _digits(train)
    elif name.startswith("fake"):
        base = _fake(ds, train)
    else:
        base = _torchvision(name, root, train)
    if split in ("fit", "val"):
        fit, val = validation_indices(len(base))  # type: ignore[arg-type]
        base = Subset(base, (fit if split == "fit" else val).tolist())
    return Prepared(base, ds, split in ("train", "fit"), corruptions.parse(noise), noise_seed, augment)


def sample_batch(name: str, n: int, root: str | None = None, split: str = "test",
                 timesteps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples of a split as one batch (used by export checks and reports): ``[B, ...]``,
    or ``[T, B, 2, H, W]`` event frames for an event data set (binned to ``timesteps``)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise KdsnnError(f"need at least 1 input sample of {name}, got {n} (--samples must be >= 1)")
    data = load(name, split, root, timesteps=timesteps)
    count = min(n, len(data))
    require(count * int(np.prod(spec(name).input_shape)) * (timesteps or 1) * FLOAT_BYTES,
            f"{count} samples of {name}", "use fewer samples")
    items = [data[i] for i in range(count)]
    return torch.stack([x for x, _ in items], dim=1 if is_time_major(data) else 0), torch.tensor([y for _, y in items])


def is_time_major(dataset: Dataset) -> bool:
    """Whether ``dataset``'s samples are ``[T, ...]`` (event data: batches are ``[T, B, ...]``)."""
    return event_data.is_time_major(dataset)


def loader(dataset: Dataset, batch_size: int, **kwargs) -> DataLoader:
    """A :class:`DataLoader` of ``dataset`` whose batches are what a model takes: ``[B, ...]`` images, or
    ``[T, B, ...]`` event frames for an event data set."""
    if is_time_major(dataset):
        kwargs["collate_fn"] = event_data.collate
    return DataLoader(dataset, batch_size, **kwargs)


def load_inputs(path: str | Path, labels: str | Path | None = None, shape: tuple[int, ...] | None = None,
                classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The user's own samples: a ``.npy`` float array ``[N, C, H, W]`` (or ``[N, ...]``) taken as
    the network's input as is (already normalized), and optionally a ``.npy`` of N integer labels.

    ``shape`` is the expected per-sample shape (the model's input shape), ``classes`` the number
    of classes labels must lie below. Returns ``(x float32, y int64 or None)``.
    """
    arr = read_npy(path, "--inputs")
    if arr.dtype.kind != "f":
        raise KdsnnError(f"--inputs {path} holds {arr.dtype} values; it must be a floating-point array, normalized as "
                         "the network's input (convert with x.astype(np.float32))")
    if arr.ndim < 2:
        raise KdsnnError(f"--inputs {path} has shape {list(arr.shape)}; it must be [N, C, H, W] (a batch axis first)")
    if shape is not None and tuple(arr.shape[1:]) != tuple(shape):
        hint = " (one sample without its batch axis: save x[None])" if tuple(arr.shape) == tuple(shape) else ""
        raise KdsnnError(f"--inputs {path} has shape {list(arr.shape)}; the model expects [N, "
                         f"{', '.join(map(str, shape))}]{hint}")
    if arr.shape[0] == 0:
        raise KdsnnError(f"--inputs {path} holds no samples (shape {list(arr.shape)})")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(arr), -1).any(1))[0, 0])
        raise KdsnnError(f"--inputs {path} holds {int(bad.sum())} NaN or infinite values (first in sample {first})")
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if labels is None:
        return x, None
    lab = read_npy(labels, "--labels")
    if lab.ndim != 1 or len(lab) != len(arr):
        raise KdsnnError(f"--labels {labels} has shape {list(lab.shape)}; "
                         f"it must hold one label per input: [{len(arr)}]")
    if lab.dtype.kind in "iu":
        ints = lab.astype(np.int64)
    elif lab.dtype.kind == "f" and np.isfinite(lab).all() and (lab == np.round(lab)).all():
        ints = lab.astype(np.int64)
    else:
        raise KdsnnError(f"--labels {labels} must hold integer class indices, not {lab.dtype} values like {lab[0]!r}")
    if ints.min() < 0 or (classes is not None and ints.max() >= classes):
        limit = f"0..{classes - 1}" if classes is not None else "0 or more"
        raise KdsnnError(f"--labels {labels} holds labels from {ints.min()} to {ints.max()}; "
                         f"class indices must be {limit}")
    return x, torch.from_numpy(ints)
