"""What every model returns: logits plus named feature taps."""
from __future__ import annotations

from typing import NamedTuple

import torch


class ModelOutput(NamedTuple):
    """``logits [B, classes]`` and ``features``: stage name → tensor ``[B, C, H, W]``.

    Teachers tap stage ends before the ReLU; students tap the spike rate (mean over T) at
    stage ends. Feature and layer-wise distillation match these by position.
    """

    logits: torch.Tensor
    features: dict[str, torch.Tensor]
