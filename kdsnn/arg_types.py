"""Argument types shared by every command's parser, so a bad number is refused while parsing, in one line."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer ≥ 1 (time steps, sample counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer ≥ 0 (worker processes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 0, got {value}")
    return value


SEED_LIMIT = 2**32  # PyTorch's generators take 64 bits; kdsnn derives per-epoch and per-sample seeds from this one


def seed(text: str) -> int:
    """A random seed: an integer of at most 32 bits (sign aside), so that the seeds derived from it fit 64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if abs(value) >= SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be an integer between -{SEED_LIMIT - 1} and {SEED_LIMIT - 1}, "
                                         f"got {value}")
    return value
