"""Student SNNs: the papers' students with IF after every conv/BN instead of ReLU.

Choices the papers leave open (documented in docs/models.md):
- ``snn_2conv`` (the MNIST "2conv"): conv 64 → pool → conv 128 → pool → linear.
- VGG pools are 2×2 average pools, skipped once the map is 1×1 (so 8×8 inputs work).
- ResNet/WRN students use post-activation basic blocks (IF after the residual sum) and end
  with a global average pool; ``snn_resnet14`` is ``[16, 16, 32, 64]``.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..neurons import IFParams
from .spiking import AvgPool, ConvBNIF, Flatten, Readout, SpikingBasicBlock, SpikingNet

Shape = tuple[int, int, int]

VGG_CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def _vgg(cfg: list, input_shape: Shape, classes: int, neuron: IFParams,
         readout: str) -> tuple[list[nn.Module], dict[str, int]]:
    c, h, w = input_shape
    blocks: list[nn.Module] = []
    taps: dict[str, int] = {}
    stage = 0
    for item in cfg:
        if item == "M":
            if h >= 2 and w >= 2:
                blocks.append(AvgPool(2))
                h, w = h // 2, w // 2
            stage += 1
            taps[f"stage{stage}"] = len(blocks) - 1
        else:
            blocks.append(ConvBNIF(c, item, neuron))
            c = item
    blocks += [Flatten(), Readout(c * h * w, classes, readout, neuron)]
    # taps on the last three pooled stages (the deep ones; shallow ones are mostly noise)
    names = sorted(taps, key=lambda n: int(n[5:]))[-3:]
    return blocks, {n: taps[n] for n in names}


def _resnet(widths: list[int], blocks_per_stage: int, input_shape: Shape, classes: int, neuron: IFParams,
            readout: str, strides: list[int]) -> tuple[list[nn.Module], dict[str, int]]:
    c, h, w = input_shape
    blocks: list[nn.Module] = [ConvBNIF(c, widths[0], neuron)]
    taps: dict[str, int] = {}
    cin = widths[0]
    for s, (width, stride) in enumerate(zip(widths[1:], strides, strict=True), start=1):
        for b in range(blocks_per_stage):
            st = stride if b == 0 else 1
            blocks.append(SpikingBasicBlock(cin, width, st, neuron))
            h, w = (h + 2 - 3) // st + 1, (w + 2 - 3) // st + 1
            cin = width
        taps[f"stage{s}"] = len(blocks) - 1
    blocks += [AvgPool((h, w)), Flatten(), Readout(cin, classes, readout, neuron)]
    return blocks, taps


def scaled(channels: int, width: float) -> int:
    """A layer's channel count at width multiplier ``width`` (rounded, at least 1)."""
    return max(1, int(round(channels * width)))


Layers = tuple[list[nn.Module], dict[str, int]]  # blocks, and the block index of each feature tap
Builder = Callable[[Shape, int, IFParams, str, float], Layers]  # (input_shape, classes, neuron, readout, width)


def _snn_2conv(input_shape: Shape, classes: int, neuron: IFParams, readout: str, width: float) -> Layers:
    c, h, w = input_shape
    c1, c2 = scaled(64, width), scaled(128, width)
    blocks: list[nn.Module] = [ConvBNIF(c, c1, neuron), AvgPool(2), ConvBNIF(c1, c2, neuron), AvgPool(2),
                               Flatten(), Readout(c2 * (h // 4) * (w // 4), classes, readout, neuron)]
    return blocks, {"stage1": 1, "stage2": 3}


def _snn_vgg(depth: str) -> Builder:
    def build(input_shape: Shape, classes: int, neuron: IFParams, readout: str, width: float) -> Layers:
        cfg = [item if item == "M" else scaled(item, width) for item in VGG_CONFIGS[depth]]
        return _vgg(cfg, input_shape, classes, neuron, readout)
    return build


def _snn_resnet(widths: tuple[int, ...], strides: list[int]) -> Builder:
    def build(input_shape: Shape, classes: int, neuron: IFParams, readout: str, width: float) -> Layers:
        return _resnet([scaled(c, width) for c in widths], 2, input_shape, classes, neuron, readout, strides)
    return build


# the student registry: name → builder of its blocks and feature taps
STUDENTS: dict[str, Builder] = {
    "snn_2conv": _snn_2conv,
    "snn_vgg11": _snn_vgg("vgg11"),
    "snn_vgg16": _snn_vgg("vgg16"),
    "snn_wrn16_2": _snn_resnet((16, 32, 64, 128), [1, 2, 2]),
    "snn_resnet14": _snn_resnet((16, 16, 32, 64), [1, 2, 2]),
    "snn_resnet18": _snn_resnet((64, 64, 128, 256, 512), [1, 2, 2, 2]),
}


def build_student(name: str, input_shape: Shape, classes: int, timesteps: int = 4, encoding: str = "direct",
                  readout: str = "membrane", neuron: IFParams | None = None, width: float = 1.0) -> SpikingNet:
    """Construct the named student for ``input_shape`` (C, H, W) and ``classes``; ``width``
    multiplies every layer's channel count (a smaller student for a smaller chip)."""
    blocks, taps = STUDENTS[name](input_shape, classes, neuron or IFParams(), readout, width)
    return SpikingNet(blocks, taps, timesteps, encoding, input_hw=(input_shape[1], input_shape[2]))
