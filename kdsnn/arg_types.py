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
