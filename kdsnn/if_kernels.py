"""Compiled CPU kernels for the IF recurrence of training (forward and hand-written backward).

The fused autograd node of :mod:`kdsnn.neurons` runs the T-step recurrence; with PyTorch
ops each step is several passes over ``B·C·H·W`` elements (compare, copy, select, add;
backward about a dozen), and on the CPU those passes, not the convolutions, set much of an
SNN step's cost. Here each element's whole T-step history is one pass: the membrane of a
tile of neurons stays in cache while the steps go by. Same arithmetic as the PyTorch ops,
operation for operation (tests compare both with autograd through :func:`kdsnn.neurons.if_step`).

Arrays are ``[T, N]`` views of the maps in their physical order (any dense layout:
NCHW or channels-last; elementwise work does not care which), split over threads by N.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit

RECTANGULAR, SIGMOID, ARCTAN = 0, 1, 2
SURROGATE_CODES = {"rectangular": RECTANGULAR, "sigmoid": SIGMOID, "arctan": ARCTAN}
_TILE = 1024           # neurons whose membranes stay in L1 while the T steps go by
_MIN_PER_THREAD = 1 << 16
_pool: ThreadPoolExecutor | None = None


@njit(cache=True, nogil=True)
def _forward(x, h_out, s_out, threshold, hard, v_reset, lo, hi):  # pragma: no cover - compiled
    """h[t] = v[t−1] + x[t]; s[t] = h[t] > θ; v[t] = reset(h[t], s[t]) for elements lo..hi.

    ``x`` is ``[T, N]`` or ``[1, N]`` (the same input every step: direct encoding). Inner loops
    index tile slices from 0 so that LLVM can vectorize them (no wrap-around checks)."""
    steps, static = h_out.shape[0], x.shape[0] == 1
    v_buf = np.empty(_TILE, dtype=h_out.dtype)
    for start in range(lo, hi, _TILE):
        end = min(start + _TILE, hi)
        v = v_buf[:end - start]
        for t in range(steps):
            xt = x[0, start:end] if static else x[t, start:end]
            ht, st = h_out[t, start:end], s_out[t, start:end]
            for k in range(v.size):
                h = xt[k] if t == 0 else v[k] + xt[k]
                fired = h > threshold
                ht[k] = h
                st[k] = 1.0 if fired else 0.0
                if hard:
                    v[k] = v_reset if fired else h
                else:
                    v[k] = h - threshold * (1.0 if fired else 0.0)
    return 0


@njit(cache=True, nogil=True)
def _backward(h_all, grad_s, sig, grad_x, threshold, hard, v_reset, detach,
              kind, param, summed, lo, hi):  # pragma: no cover
    """grad_x[t] = grad_s[t]·g[t] + grad_x[t+1]·dv[t]/dh[t], t = T−1 … 0, for elements lo..hi.

    g is the surrogate derivative at h − θ; for SIGMOID ``sig`` holds σ(α·(h − θ)), computed
    beforehand by PyTorch's vectorized sigmoid (numba has no vector exp here: an exp written
    out as a polynomial measured slower than PyTorch's three passes). ``summed`` (one input map
    fed at every step, as direct encoding does): ``grad_x`` is ``[1, N]`` and receives Σ_t, what the expand's backward
    would sum. Each branch is its own simple loop over a tile (g first, then the recurrence),
    which LLVM vectorizes; one loop with the branches inside it stays scalar."""
    steps = h_all.shape[0]
    carry_buf = np.empty(_TILE, dtype=grad_x.dtype)
    g_buf = np.empty(_TILE, dtype=grad_x.dtype)
    sum_buf = np.zeros(_TILE, dtype=grad_x.dtype)
    half_width = param / 2
    atan_k = math.pi / 2 * param
    for start in range(lo, hi, _TILE):
        end = min(start + _TILE, hi)
        carry, g, total = carry_buf[:end - start], g_buf[:end - start], sum_buf[:end - start]
        for t in range(steps - 1, -1, -1):
            ht, gst, gxt = h_all[t, start:end], grad_s[t, start:end], grad_x[0 if summed else t, start:end]
            if kind == RECTANGULAR:
                for k in range(g.size):
                    g[k] = (1.0 if abs(ht[k] - threshold) < half_width else 0.0) / param
            elif kind == SIGMOID:
                sgt = sig[t, start:end]
                for k in range(g.size):
                    g[k] = (sgt[k] - sgt[k] * sgt[k]) * param
            else:
                for k in range(g.size):
                    a = atan_k * (ht[k] - threshold)
                    g[k] = (param / 2) / (1.0 + a * a)
            if t == steps - 1:
                for k in range(g.size):
                    carry[k] = gst[k] * g[k]
            elif hard and detach:
                for k in range(g.size):
                    carry[k] = gst[k] * g[k] + carry[k] * (0.0 if ht[k] > threshold else 1.0)
            elif hard:
                for k in range(g.size):
                    s = 1.0 if ht[k] > threshold else 0.0
                    carry[k] = gst[k] * g[k] + carry[k] * ((v_reset - ht[k]) * g[k] + 1.0 - s)
            elif detach:
                for k in range(g.size):
                    carry[k] = gst[k] * g[k] + carry[k]
            else:
                for k in range(g.size):
                    carry[k] = gst[k] * g[k] + carry[k] * (1.0 - threshold * g[k])
            if summed:
                for k in range(g.size):
                    total[k] += carry[k]
            else:
                for k in range(g.size):
                    gxt[k] = carry[k]
        if summed:
            for k in range(total.size):
                gxt[k] = total[k]
                total[k] = 0.0
    return 0


def _run(kernel, n: int, *args) -> None:
    """Run ``kernel(*args, lo, hi)`` over ``0..n`` split between PyTorch's CPU threads."""
    global _pool
    workers = max(1, min(torch.get_num_threads(), n // _MIN_PER_THREAD))
    if workers == 1:
        kernel(*args, 0, n)
        return
    if _pool is None or _pool._max_workers < workers:  # noqa: SLF001 - grow once to the thread count
        _pool = ThreadPoolExecutor(workers, thread_name_prefix="kdsnn-if")
    bounds = [(n * k // workers) // _TILE * _TILE for k in range(workers)] + [n]
    jobs = [_pool.submit(kernel, *args, bounds[k], bounds[k + 1]) for k in range(workers)]
    for j in jobs:
        j.result()


def steps_view(x: torch.Tensor) -> torch.Tensor | None:
    """``[T, B, ...]`` as ``[T, N]`` over each step's memory (``[1, N]`` when every step is the
    same memory, as an expanded direct-encoded input is); None when a step is not one dense block."""
    step = x[0]
    if not (step.is_contiguous() or (step.dim() == 4 and step.is_contiguous(memory_format=torch.channels_last))):
        return None
    n = step.numel()
    if x.shape[0] > 1 and x.stride(0) == 0:
        return x.as_strided((1, n), (n, 1), x.storage_offset())
    if x.shape[0] > 1 and x.stride(0) != n:
        return None
    return x.as_strided((x.shape[0], n), (n, 1), x.storage_offset())


def supported(x: torch.Tensor) -> bool:
    """Whether the kernels take ``x`` (CPU, float32/float64, dense steps)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and steps_view(x) is not None


def if_forward(x_seq: torch.Tensor, h_all: torch.Tensor, s_all: torch.Tensor, threshold: float, hard: bool,
               v_reset: float) -> None:
    """Fill ``h_all`` (pre-reset membranes) and ``s_all`` (spikes), laid out like ``x_seq``'s steps."""
    x, h, s = steps_view(x_seq), steps_view(h_all), steps_view(s_all)
    _run(_forward, h.shape[1], x.numpy(), h.numpy(), s.numpy(), float(threshold), bool(hard), float(v_reset))


def if_backward(h_all: torch.Tensor, grad_s: torch.Tensor, threshold: float, hard: bool, v_reset: float,
                detach: bool, surrogate: str, param: float, summed: bool = False) -> torch.Tensor:
    """dL/dx for every step from dL/ds (``grad_s``), given the saved pre-reset membranes;
    ``summed``: one map, Σ over steps (the gradient of a single input fed at every step)."""
    if grad_s.stride() != h_all.stride() or steps_view(grad_s) is None:
        grad_s = torch.empty_like(h_all).copy_(grad_s)  # same physical order as h_all
    grad_x = torch.empty_like(h_all[0] if summed else h_all)
    kind = SURROGATE_CODES[surrogate]
    sig = h_all[:1]  # unread unless SIGMOID
    if kind == SIGMOID:  # σ(α(h − θ)), PyTorch-vectorized; into grad_x's memory when it has T steps
        sig = torch.sub(h_all, threshold, out=torch.empty_like(h_all) if summed else grad_x).mul_(param).sigmoid_()
    h, gs, sg = steps_view(h_all), steps_view(grad_s), steps_view(sig)
    gx = grad_x.as_strided((1, grad_x.numel()), (grad_x.numel(), 1)) if summed else steps_view(grad_x)
    _run(_backward, h.shape[1], h.numpy(), gs.numpy(), sg.numpy(), gx.numpy(), float(threshold), bool(hard),
         float(v_reset), bool(detach), kind, float(param), bool(summed))
    return grad_x
