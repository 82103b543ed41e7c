"""Event-camera data sets read from ``--data-root``: N-MNIST and DVS128 Gesture, binned to T frames.

Each sample is ``[T, 2, H, W]`` float32 of 0/1 (channel 0 OFF, 1 ON events; T = the student's time
steps, one frame per step): the student's first layer receives these events as its input spikes
(``encoding = "events"``). A batch of them is time-major, ``[T, B, 2, H, W]`` (:func:`collate`).

Layouts (as the data sets are distributed, or as ``tonic`` stores them under a folder of the data
set's name):

- ``nmnist``: ``NMNIST/Train/<digit>/*.bin`` and ``NMNIST/Test/<digit>/*.bin`` (or ``Train``/``Test``
  directly under the root), one recording per file; the bins span the recording.
- ``dvsgesture``: ``DvsGesture/`` with ``trials_to_train.txt`` and ``trials_to_test.txt`` (the AEDAT
  file of each trial), each ``userNN_<lighting>.aedat`` and its ``userNN_<lighting>_labels.csv``
  (``class,startTime_usec,endTime_usec``, classes 1-11): one sample per labelled gesture, the bins
  span its labelled window. ``dvsgesture:64`` and ``dvsgesture:32`` pool the 128×128 sensor 2× or
  4× per axis, as Speck's DVS pre-processing layer can.
"""
from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, default_collate

from .budget import require
from .errors import KdsnnError
from .event_files import bin_events, read_aedat31, read_nmnist
from .progress import progress

EVENT_DATASETS = ("nmnist", "dvsgesture", "dvsgesture:64", "dvsgesture:32")
NMNIST_SENSOR = (34, 34)
GESTURE_SENSOR = (128, 128)
GESTURE_CLASSES = 11
EXPECTED = {
    "nmnist": "NMNIST/Train/<digit>/*.bin and NMNIST/Test/<digit>/*.bin (N-MNIST's binary files)",
    "dvsgesture": "DvsGesture/trials_to_train.txt, trials_to_test.txt, userNN_<lighting>.aedat and "
                  "userNN_<lighting>_labels.csv (DVS128 Gesture's AEDAT 3.1 recordings)",
}


def is_event_dataset(name: str) -> bool:
    """Whether ``name`` is an event-camera data set (its samples are already spikes over T)."""
    return name in EVENT_DATASETS


def input_shape(name: str) -> tuple[int, int, int]:
    """(2 polarities, H, W) of an event data set."""
    if name == "nmnist":
        return (2, *NMNIST_SENSOR)
    side = GESTURE_SENSOR[0] // _pool(name)
    return (2, side, side)


def classes(name: str) -> int:
    return 10 if name == "nmnist" else GESTURE_CLASSES


def _pool(name: str) -> int:
    return GESTURE_SENSOR[0] // int(name.split(":")[1]) if ":" in name else 1


class EventFrames(Dataset):
    """Samples of an event data set, binned to ``timesteps`` frames when read (``time_major``: a batch
    of them is ``[T, B, ...]``)."""

    time_major = True

    def __init__(self, frames: Callable[[int], np.ndarray], labels: list[int]) -> None:
        self.frames, self.labels = frames, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.frames(i).astype(np.float32)), self.labels[i]


def is_time_major(dataset: Dataset) -> bool:
    """Whether ``dataset`` (or the data set a :class:`Subset` takes from) yields ``[T, ...]`` samples."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return bool(getattr(dataset, "time_major", False))


def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of ``[T, ...]`` samples as ``[T, B, ...]`` (what a student takes), labels as ``[B]``."""
    x, y = default_collate(batch)
    return x.transpose(0, 1), y


def load(name: str, split: str, root: str | None, timesteps: int | None) -> EventFrames:
    """The ``train`` or ``test`` split of an event data set under ``root``, binned to ``timesteps`` frames."""
    if not timesteps or timesteps < 1:
        raise KdsnnError(f"{name} is event data binned into one frame per time step: the number of steps is needed "
                         "(train with --timesteps T; a checkpoint or graph records its T)")
    family = name.split(":")[0]
    if not root:
        raise KdsnnError(f"dataset {name} needs --data-root DIR holding {EXPECTED[family]} (nothing is downloaded)")
    if not Path(root).is_dir():
        raise KdsnnError(f"data root {root} does not exist; it should hold {EXPECTED[family]}")
    if family == "nmnist":
        return _nmnist(Path(root), split == "train", timesteps)
    return _gesture(Path(root), split == "train", timesteps, _pool(name), name)


def _folder(root: Path, name: str, marker: str, family: str) -> Path:
    for folder in (root / name, root):
        if (folder / marker).exists():
            return folder
    raise KdsnnError(f"{family} not found under {root}: expected {EXPECTED[family]}")


def _nmnist(root: Path, train: bool, timesteps: int) -> EventFrames:
    split = "Train" if train else "Test"
    folder = _folder(root, "NMNIST", split, "nmnist") / split
    files = [(f, int(d.name)) for d in sorted(folder.iterdir()) if d.is_dir() and d.name.isdigit() and
             int(d.name) < 10 for f in sorted(d.glob("*.bin"))]
    if not files:
        raise KdsnnError(f"nmnist: {folder} holds no <digit>/*.bin recordings; expected {EXPECTED['nmnist']}")
    require(timesteps * 2 * NMNIST_SENSOR[0] * NMNIST_SENSOR[1] * 4, f"one N-MNIST sample of {timesteps} frames",
            "use fewer time steps")

    def frames(i: int) -> np.ndarray:
        path = files[i][0]
        return bin_events(read_nmnist(path), timesteps, NMNIST_SENSOR, source=f"N-MNIST file {path}")

    return EventFrames(frames, [label for _, label in files])


def _gesture(root: Path, train: bool, timesteps: int, pool: int, name: str) -> EventFrames:
    listing = "trials_to_train.txt" if train else "trials_to_test.txt"
    folder = _folder(root, "DvsGesture", listing, "dvsgesture")
    trials = [line.strip() for line in (folder / listing).read_text().splitlines() if line.strip()]
    windows = [(trial, start, end, label) for trial in trials for start, end, label in _labels(folder, trial)]
    if not windows:
        raise KdsnnError(f"dvsgesture: {folder / listing} names no labelled trials; expected {EXPECTED['dvsgesture']}")
    side = GESTURE_SENSOR[0] // pool
    require(len(windows) * timesteps * 2 * side * side, f"{len(windows)} gestures of {name} at {timesteps} frames",
            "use fewer time steps or a pooled version (dvsgesture:32)")
    store = np.zeros((len(windows), timesteps, 2, side, side), np.uint8)
    i = 0
    for trial in progress(trials, desc=f"read {name}", leave=False):
        path = folder / trial
        if not path.is_file():
            raise KdsnnError(f"dvsgesture: {folder / listing} names {trial}, which is not in {folder}")
        events = read_aedat31(path)
        for start, end, _ in _labels(folder, trial):
            store[i] = bin_events(events, timesteps, GESTURE_SENSOR, (start, end), pool, f"AEDAT file {path}")
            i += 1
    return EventFrames(lambda k: store[k], [label for *_, label in windows])


def _labels(folder: Path, trial: str) -> list[tuple[int, int, int]]:
    """(start µs, end µs, class 0-10) of each gesture in ``trial``'s label file."""
    path = folder / (Path(trial).stem + "_labels.csv")
    if not path.is_file():
        raise KdsnnError(f"dvsgesture: {trial} has no label file {path.name} in {folder}")
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                label, start, end = int(row["class"]), int(row["startTime_usec"]), int(row["endTime_usec"])
            except (KeyError, TypeError, ValueError):
                raise KdsnnError(f"dvsgesture: {path} is not a label file (rows of class,startTime_usec,endTime_usec "
                                 "integers); replace it with the original") from None
            if not 1 <= label <= GESTURE_CLASSES or end <= start:
                raise KdsnnError(f"dvsgesture: {path} has class {label} from {start} to {end} µs; classes are "
                                 f"1-{GESTURE_CLASSES} and a gesture ends after it starts")
            out.append((start, end, label - 1))
    return out
