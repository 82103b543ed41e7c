"""Building blocks of the student SNNs, all acting on ``[T, B, ...]`` tensors.

Convolutions, BN and linear layers fold T into the batch (one big call instead of T small
ones); only the IF neuron loops over T. Each block is also what the exporters walk: a
student is a flat list of these blocks (see :class:`SpikingNet`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import KdsnnError
from ..neurons import IFNeuron, IFParams
from .output import ModelOutput
from .pointwise import PointwiseConv2d


def fold(x: torch.Tensor) -> torch.Tensor:
    """``[T, B, ...] → [T·B, ...]`` (a view)."""
    return x.flatten(0, 1)


def unfold(x: torch.Tensor, t: int) -> torch.Tensor:
    """``[T·B, ...] → [T, B, ...]`` (a view)."""
    return x.view(t, x.shape[0] // t, *x.shape[1:])


class ConvBNIF(nn.Module):
    """conv (no bias) → BN → IF; with a static input (direct encoding) conv and BN run once."""

    def __init__(self, cin: int, cout: int, neuron: IFParams, kernel: int = 3, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.neuron = IFNeuron(neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[0]
        return self.neuron(unfold(self.bn(self.conv(fold(x))), t))

    def forward_static(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Input ``[B, ...]`` identical at every step: compute the current once, feed it T times."""
        return self.neuron(self.bn(self.conv(x)), t)


class SpikingBasicBlock(nn.Module):
    """ResNet basic block with IF: conv-BN-IF-conv-BN, plus shortcut, then IF on the sum.

    The shortcut is identity (spikes added with weight 1) or 1×1 conv + BN when the shape
    changes; both feed the same IF population, as NIR expresses by two edges into one node.
    """

    def __init__(self, cin: int, cout: int, stride: int, neuron: IFParams) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.neuron1 = IFNeuron(neuron)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.neuron2 = IFNeuron(neuron)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(PointwiseConv2d(cin, cout, stride), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[0]
        xf = fold(x)
        mid = self.neuron1(unfold(self.bn1(self.conv1(xf)), t))
        out = self.bn2(self.conv2(fold(mid)))
        out = out + (xf if self.shortcut is None else self.shortcut(xf))
        return self.neuron2(unfold(out, t))


class _TiledAvgPool(torch.autograd.Function):
    """Average pooling whose windows tile the map (kernel = stride, no padding), with a backward
    that spreads ``grad / k²`` over each window in one pass, in the input's memory format.

    PyTorch's CPU ``avg_pool2d_backward`` zero-fills and accumulates, and takes about 13× longer
    when the incoming gradient is NCHW and the input channels-last (as after a Flatten); the
    values are the same (one division per element either way)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:  # type: ignore[override]
        ctx.kernel = kernel
        ctx.channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return F.avg_pool2d(x, kernel)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (kh, kw), (n, c, ho, wo) = ctx.kernel, grad.shape
        g = grad / (kh * kw)
        if ctx.channels_last:
            out = torch.empty((n, ho * kh, wo * kw, c), dtype=g.dtype, device=g.device)
            out.view(n, ho, kh, wo, kw, c).copy_(
                g.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(n, ho, kh, wo, kw, c))
            return out.permute(0, 3, 1, 2), None
        out = torch.empty((n, c, ho * kh, wo * kw), dtype=g.dtype, device=g.device)
        out.view(n, c, ho, kh, wo, kw).copy_(g[:, :, :, None, :, None].expand(n, c, ho, kh, wo, kw))
        return out, None


class AvgPool(nn.Module):
    """Average pooling over each step's map (linear: exporters fold it into the next layer)."""

    def __init__(self, kernel: int | tuple[int, int]) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel)
        self.kernel = (kernel, kernel) if isinstance(kernel, int) else (int(kernel[0]), int(kernel[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = fold(x)
        kh, kw = self.kernel
        tiles = flat.shape[-2] % kh == 0 and flat.shape[-1] % kw == 0
        if tiles and flat.requires_grad and torch.is_grad_enabled() and not flat.is_cuda:
            return unfold(_TiledAvgPool.apply(flat, self.kernel), x.shape[0])
        return unfold(self.pool(flat), x.shape[0])


class Flatten(nn.Module):
    """``[T, B, C, H, W] → [T, B, C·H·W]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)


class Readout(nn.Module):
    """Final linear layer. ``membrane``: logits = mean over T of its output (a non-spiking
    integrator's ``v[T]/T``); ``spike``: an IF layer whose logits are spike counts over T."""

    def __init__(self, fin: int, classes: int, mode: str, neuron: IFParams) -> None:
        super().__init__()
        self.fc = nn.Linear(fin, classes)
        self.mode = mode
        self.neuron = IFNeuron(neuron) if mode == "spike" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = unfold(self.fc(fold(x)), x.shape[0])
        if self.neuron is None:
            return current.mean(0)
        return self.neuron(current).sum(0)


ENCODINGS = ("direct", "bernoulli", "events")
READOUTS = ("membrane", "spike")


class SpikingNet(nn.Module):
    """A student SNN: a flat list of blocks, named feature taps, encoding and T.

    Input ``[B, C, H, W]`` (analog, encoded here over T) or ``[T, B, C, H, W]`` (already
    spikes or per-step input). ``taps`` maps a feature name to the index of the block whose
    output (spike rate over T) is that feature.
    """

    def __init__(self, blocks: list[nn.Module], taps: dict[str, int], timesteps: int = 4, encoding: str = "direct",
                 input_hw: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.input_hw = input_hw
        self.blocks = nn.ModuleList(blocks)
        self.taps = dict(taps)
        self.timesteps = timesteps
        self.encoding = encoding
        self._layout: str | None = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        t = self.timesteps
        if self.encoding == "events":
            raise KdsnnError(f"this student takes event frames [T, B, C, H, W]; got a {list(x.shape)} batch without a "
                             "time axis (read the data with its event data set, binned to T frames)")
        if self.encoding == "bernoulli":
            return torch.bernoulli(x.clamp(0, 1).unsqueeze(0).expand(t, *x.shape))
        return x.unsqueeze(0).expand(t, *x.shape)

    def set_layout(self, device_type: str) -> None:
        """Lay conv weights out for ``device_type``: NHWC on the CPU, where oneDNN's convolutions
        run about 1.6× faster on it; NCHW on CUDA, where fp32 cuDNN measured faster on NCHW.
        Values never change. Called by the trainer before DDP wraps the model, and by
        :meth:`forward` when the device changes."""
        fmt = torch.channels_last if device_type == "cpu" else torch.contiguous_format
        for p in self.parameters():
            if p.dim() == 4:
                p.data = p.data.contiguous(memory_format=fmt)
        self._layout = device_type

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if self._layout != x.device.type:
            self.set_layout(x.device.type)
        if x.dim() == 4 and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        tap_at = {i: name for name, i in self.taps.items()}
        features: dict[str, torch.Tensor] = {}
        first = 0
        if x.dim() == 4 and self.encoding == "direct" and isinstance(self.blocks[0], ConvBNIF):
            h = self.blocks[0].forward_static(x, self.timesteps)
            first = 1
        else:
            h = self.encode(x) if x.dim() == 4 else x
        if first == 1 and 0 in tap_at:
            features[tap_at[0]] = h.mean(0)
        for i in range(first, len(self.blocks)):
            h = self.blocks[i](h)
            if i in tap_at:
                features[tap_at[i]] = h.mean(0)
        return ModelOutput(h, features)
