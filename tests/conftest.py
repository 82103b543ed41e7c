"""Shared fixtures: real digits inputs (test split) and their preprocessing; helpers live in
:mod:`tests.helpers`. Tests mirror the package: ``tests/<room>/test_<module>.py`` tests that
module or room, ``tests/cli/`` runs whole commands, and the files at this level cut across
everything (neuron conformance, the configs folder)."""
from __future__ import annotations

import pytest
import torch

from kdsnn import data


@pytest.fixture(scope="session")
def digits_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """32 real test images of digits (normalized as the models see them) and labels."""
    return data.sample_batch("digits", 32)


@pytest.fixture(scope="session")
def digits_preprocessing() -> dict:
    return data.spec("digits").preprocessing()
