"""A 1×1 convolution with stride > 1 computed as subsample-then-1×1 (same values, another kernel).

Why: on x86 CPUs without AVX-512 (measured on this project's AMD EPYC machines, PyTorch
2.14.1), oneDNN's AVX2 kernel for the weight gradient of a strided 1×1 convolution on a
channels-last input writes outside its buffers: with few input channels (1, 3, 6 measured) the
process aborts with "double free or corruption" or hangs forever in an OpenMP barrier; 3×3
convolutions and stride-1 1×1 convolutions are unaffected. A 1×1 kernel with stride s and no
padding reads exactly the inputs ``x[..., ::s, ::s]``, so subsampling first and convolving with
stride 1 gives the same output and gradients through a kernel that works. The module keeps the
stride in its attributes: exporters see an ordinary strided 1×1 ``nn.Conv2d``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(cin, cout, 1, stride, 0)`` whose forward subsamples before a stride-1 convolution."""

    def __init__(self, cin: int, cout: int, stride: int = 1, bias: bool = False) -> None:
        super().__init__(cin, cout, 1, stride, 0, bias=bias)

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        sh, sw = self.stride
        if (sh, sw) != (1, 1):
            x = x[..., ::sh, ::sw]
        return F.conv2d(x, weight, bias, 1, 0, self.dilation, self.groups)
