"""Argument types shared by every command's parser, so a bad number is refused while parsing, in one line."""
from __future__ import annotations

import argparse


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1 (time steps, sample counts)."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """An integer ≥ 0 (worker processes)."""
    return _int_at_least(text, 0)


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
