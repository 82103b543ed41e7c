"""Teacher ANNs (CIFAR-style, as in the papers) with pre-ReLU stage taps.

Each network returns :class:`ModelOutput`; ``features[stageK]`` is the stage's output
before its ReLU (the partial-L2 feature loss needs the negative part). Parameter counts at
3×32×32 / 10 classes: resnet18 11.17 M, wrn28_4 5.85 M, preresnet20 0.27 M,
pyramidnet18 (our definition, docs/models.md) 1.55 M.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .output import ModelOutput
from .pointwise import PointwiseConv2d

Shape = tuple[int, int, int]


class BasicBlock(nn.Module):
    """Post-activation basic block; returns the pre-ReLU sum."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(PointwiseConv2d(cin, cout, stride), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out)) + self.shortcut(x)


class PreActBlock(nn.Module):
    """Pre-activation block (BN-ReLU-conv ×2); its output is already pre-ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = PointwiseConv2d(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        short = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = F.relu(self.bn2(out))
        if self.dropout:
            out = F.dropout(out, self.dropout, self.training)
        return self.conv2(out) + short


class PyramidBlock(nn.Module):
    """PyramidNet basic block (BN-conv-BN-ReLU-conv-BN) with a zero-padded identity shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(F.relu(self.bn2(self.conv1(self.bn1(x))))))
        short = F.avg_pool2d(x, self.stride, ceil_mode=True) if self.stride != 1 else x
        pad = out.shape[1] - short.shape[1]
        if pad:
            short = F.pad(short, (0, 0, 0, 0, 0, pad))
        return out + short


def frame_rate(x: torch.Tensor) -> torch.Tensor:
    """An ANN's view of event frames ``[T, B, C, H, W]``: the mean over T (each pixel's event rate per
    step), so a teacher trained on event data and the student it teaches see the same recording;
    images ``[B, C, H, W]`` pass unchanged."""
    return x.mean(0) if x.dim() == 5 else x


class StagedNet(nn.Module):
    """stem → stages (taps at each stage end, pre-ReLU) → [final BN] → ReLU → pool → fc."""

    def __init__(self, stem: nn.Module, stages: list[nn.Sequential], width: int, classes: int,
                 final_bn: bool, post_relu_between_blocks: bool) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.final_bn = nn.BatchNorm2d(width) if final_bn else nn.Identity()
        self.fc = nn.Linear(width, classes)
        self.relu_between = post_relu_between_blocks

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.stem(frame_rate(x))
        features = {}
        for i, stage in enumerate(self.stages, start=1):
            for j, block in enumerate(stage):
                if j > 0 and self.relu_between:
                    h = F.relu(h)
                h = block(h)
            features[f"stage{i}"] = h
            if self.relu_between and i < len(self.stages):
                h = F.relu(h)
        h = F.relu(self.final_bn(h))
        logits = self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))
        return ModelOutput(logits, features)


def _stages(block, widths: list[int], strides: list[int], n: int, cin: int, **kw) -> list[nn.Sequential]:
    stages = []
    for width, stride in zip(widths, strides, strict=True):
        layers = []
        for b in range(n):
            layers.append(block(cin, width, stride if b == 0 else 1, **kw))
            cin = width
        stages.append(nn.Sequential(*layers))
    return stages


def resnet18(input_shape: Shape, classes: int) -> StagedNet:
    stem = nn.Sequential(nn.Conv2d(input_shape[0], 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
    return StagedNet(stem, _stages(BasicBlock, [64, 128, 256, 512], [1, 2, 2, 2], 2, 64), 512, classes, False, True)


def wrn(depth: int, widen: int, input_shape: Shape, classes: int, dropout: float = 0.0) -> StagedNet:
    n = (depth - 4) // 6
    widths = [16 * widen, 32 * widen, 64 * widen]
    stem = nn.Conv2d(input_shape[0], 16, 3, 1, 1, bias=False)
    return StagedNet(stem, _stages(PreActBlock, widths, [1, 2, 2], n, 16, dropout=dropout), widths[-1], classes,
                     True, False)


def preresnet20(input_shape: Shape, classes: int) -> StagedNet:
    stem = nn.Conv2d(input_shape[0], 16, 3, 1, 1, bias=False)
    return StagedNet(stem, _stages(PreActBlock, [16, 32, 64], [1, 2, 2], 3, 16), 64, classes, True, False)


def pyramidnet18(input_shape: Shape, classes: int, alpha: int = 148) -> StagedNet:
    """PyramidNet with 8 basic blocks in 4 stages (1 + 16 + 1 = 18 weight layers); the
    width grows linearly by ``alpha/8`` per block from 16 (our definition)."""
    stem = nn.Sequential(nn.Conv2d(input_shape[0], 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
    stages, cin, k = [], 16, 0
    for stride in [1, 2, 2, 2]:
        layers = []
        for b in range(2):
            k += 1
            width = int(round(16 + alpha * k / 8))
            layers.append(PyramidBlock(cin, width, stride if b == 0 else 1))
            cin = width
        stages.append(nn.Sequential(*layers))
    return StagedNet(stem, stages, cin, classes, True, False)


class MnistCNN(nn.Module):
    """Small CNN teacher: conv32-conv64-pool-conv128-pool-fc256-fc; taps pre-ReLU."""

    def __init__(self, input_shape: Shape, classes: int) -> None:
        super().__init__()
        c, h, w = input_shape
        self.conv1 = nn.Sequential(nn.Conv2d(c, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32))
        self.conv2 = nn.Sequential(nn.Conv2d(32, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64))
        self.conv3 = nn.Sequential(nn.Conv2d(64, 128, 3, 1, 1, bias=False), nn.BatchNorm2d(128))
        self.fc1 = nn.Linear(128 * (h // 4) * (w // 4), 256)
        self.fc2 = nn.Linear(256, classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        s1 = self.conv2(F.relu(self.conv1(frame_rate(x))))
        s2 = self.conv3(F.avg_pool2d(F.relu(s1), 2))
        h = F.avg_pool2d(F.relu(s2), 2)
        logits = self.fc2(F.dropout(F.relu(self.fc1(h.flatten(1))), 0.2, self.training))
        return ModelOutput(logits, {"stage1": F.avg_pool2d(s1, 2), "stage2": F.avg_pool2d(s2, 2)})


class Ann2Conv(nn.Module):
    """The ANN twin of the ``snn_2conv`` student: its layers (conv 64 → BN → ReLU → pool → conv 128 → BN →
    ReLU → pool → linear) with ReLU in place of IF. Trained with the student's recipe it shows what that
    architecture reaches without spiking, so a gap to a teacher can be split into spiking and size."""

    def __init__(self, input_shape: Shape, classes: int) -> None:
        super().__init__()
        c, h, w = input_shape
        self.conv1 = nn.Sequential(nn.Conv2d(c, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64))
        self.conv2 = nn.Sequential(nn.Conv2d(64, 128, 3, 1, 1, bias=False), nn.BatchNorm2d(128))
        self.fc = nn.Linear(128 * (h // 4) * (w // 4), classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        s1 = self.conv1(frame_rate(x))
        s2 = self.conv2(F.avg_pool2d(F.relu(s1), 2))
        logits = self.fc(F.avg_pool2d(F.relu(s2), 2).flatten(1))
        return ModelOutput(logits, {"stage1": F.avg_pool2d(s1, 2), "stage2": F.avg_pool2d(s2, 2)})


TEACHERS = {
    "resnet18": resnet18,
    "wrn28_4": lambda s, k: wrn(28, 4, s, k),
    "pyramidnet18": pyramidnet18,
    "preresnet20": preresnet20,
    "mnist_cnn": MnistCNN,
    "ann_2conv": Ann2Conv,
}
