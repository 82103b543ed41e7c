"""Batch-norm folding: conv/linear followed by BN → one conv/linear with bias.

In eval mode ``BN(Wx + b) = γ·(Wx + b − μ)/√(σ² + ε) + β``, so
``W' = W·γ/√(σ²+ε)`` (per output channel) and ``b' = (b − μ)·γ/√(σ²+ε) + β``: exactly the
same function. BN here normalizes over the folded ``T·B`` batch, which is ordinary BN.
"""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None,
            bn: nn.BatchNorm2d | nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(W', b')`` equal to ``bn(layer(x))`` in eval mode (float64 for accuracy)."""
    w = weight.detach().double()
    b = torch.zeros(w.shape[0], dtype=torch.float64) if bias is None else bias.detach().double()
    gamma = bn.weight.detach().double() if bn.affine else torch.ones_like(b)
    beta = bn.bias.detach().double() if bn.affine else torch.zeros_like(b)
    factor = gamma / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    w_folded = w * factor.view(-1, *([1] * (w.dim() - 1)))
    b_folded = (b - bn.running_mean.detach().double()) * factor + beta
    return w_folded, b_folded
