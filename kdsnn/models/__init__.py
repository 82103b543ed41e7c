"""Model registry: a name resolves to a constructor; input shape and classes are parameters."""
from __future__ import annotations

from torch import nn

from ..errors import KdsnnError
from ..neurons import IFParams
from .output import ModelOutput
from .spiking import ENCODINGS, READOUTS, SpikingNet
from .students import STUDENTS, build_student
from .teachers import TEACHERS

__all__ = ["ModelOutput", "SpikingNet", "build_model", "is_student", "ARCHS", "STUDENTS", "TEACHERS"]

ARCHS = tuple(TEACHERS) + tuple(STUDENTS)


def is_student(arch: str) -> bool:
    """Whether ``arch`` names a registered student SNN."""
    return arch in STUDENTS


def build_model(arch: str, input_shape: tuple[int, int, int], classes: int, *, timesteps: int = 4,
                encoding: str = "direct", readout: str = "membrane", neuron: dict | IFParams | None = None,
                width: float = 1.0) -> nn.Module:
    """Build a registered teacher or student. Students also take T, encoding, readout, neuron
    and a channel-width multiplier."""
    input_shape = tuple(int(v) for v in input_shape)  # type: ignore[assignment]
    if arch in TEACHERS:
        return TEACHERS[arch](input_shape, classes)
    if arch not in STUDENTS:
        raise KdsnnError(f"unknown architecture {arch!r}; teachers: {', '.join(TEACHERS)}; "
                         f"students: {', '.join(STUDENTS)}")
    if encoding not in ENCODINGS:
        raise KdsnnError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
    if readout not in READOUTS:
        raise KdsnnError(f"unknown readout {readout!r}; choose one of {', '.join(READOUTS)}")
    if timesteps < 1:
        raise KdsnnError(f"--timesteps must be at least 1, got {timesteps}")
    if not width > 0:
        raise KdsnnError(f"--width must be positive (a channel multiplier, e.g. 0.25), got {width}")
    params = neuron if isinstance(neuron, IFParams) else IFParams(**(neuron or {}))
    return build_student(arch, input_shape, classes, timesteps, encoding, readout, params, float(width))
