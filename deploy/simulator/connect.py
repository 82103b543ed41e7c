"""Connectivity as kernels: what a spike reaches, computed from the layer, never stored per synapse.

A connection's synapses are :class:`Tables`: each source element points at a *pattern* (a
list of runs of targets with the weights they take) and at its first target; sources whose
synapses are translated copies of each other share a pattern. Convolutions are built
analytically from the kernel, stride, padding and dilation (borders exact): one pattern per
(input channel, row class, column class), where a row class is the set of kernel rows that
land inside the output for that input row; the weights are the kernel itself, laid out so a
kernel row's taps are one contiguous run. So memory is O(parameters + neurons), as on a chip
that stores a kernel once. A non-overlapping pool before the synaptic layer is composed by
coordinates (each source lands in one pooled position, or none); Flatten is index arithmetic;
Scale and identity edges are elementwise; Affine/Linear are their dense matrix.

Targets are numbered C-order (``chw``) or, for (C, H, W) populations in the integer fast
path, channels-last (``hwc``: index (y·W + x)·C + c), where a conv tap's targets are one
contiguous run of output channels.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import nir
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from kdsnn.errors import KdsnnError
from kdsnn.export.node_shapes import conv_pads, pair

from .tables import Tables, channels_last


def _i64(*arrays) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.int64) for a in arrays]


def _axis_classes(n: int, n_out: int, k: int, s: int, pad: int, d: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Per input coordinate along one axis: its class, its first output coordinate, and per class the
    kernel taps landing inside the output as ``(tap, output offset from the first)`` (borders exact)."""
    cls, base, classes, seen = np.zeros(n, np.int64), np.zeros(n, np.int64), [], {}
    for i in range(n):
        taps = [(kk, (i + pad - kk * d) // s) for kk in range(k)
                if i + pad - kk * d >= 0 and (i + pad - kk * d) % s == 0 and (i + pad - kk * d) // s < n_out]
        b = min((o for _, o in taps), default=0)
        key = tuple(sorted((o - b, kk) for kk, o in taps))
        if key not in seen:
            seen[key] = len(classes)
            classes.append(key)
        cls[i], base[i] = seen[key], b
    return cls, base, classes


def _taps(n: int, n_out: int, k: int, s: int, pad: int, d: int) -> np.ndarray:
    """Per input coordinate along one axis: how many kernel taps land inside the output."""
    cls, _, classes = _axis_classes(n, n_out, k, s, pad, d)
    return np.array([len(classes[c]) for c in cls], dtype=np.int64)


def tap_order(k: int, dilation: int, stride: int) -> list[int]:
    """A kernel axis's taps ordered so that the taps one input position reaches (same ``tap·d mod s``)
    are adjacent, each class from the last tap back (ascending output positions)."""
    return sorted(range(k), key=lambda t: ((t * dilation) % stride, -t))


@dataclass
class ConvOp:
    """A Conv2d's connectivity from its kernel (weights already scaled by any pool before it)."""

    weight: np.ndarray   # [C_out, C_in/groups, kh, kw] float64
    groups: int
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]   # top, left, bottom, right
    dilation: tuple[int, int]

    def tables(self, hwc: bool, shared: bool = False) -> Tables:
        """Tables over the op's input positions (C-order), targets ``hwc`` or C-order.

        ``shared`` (C-order targets, the general path): one pattern per border class for all input
        channels, each channel's weights found through ``kbase``; a pattern's runs go output channel by
        output channel, kernel row by kernel row, over the contiguous output columns of the row's taps.
        Otherwise one pattern per (input channel, border class), a run per tap over the output channels.
        """
        if shared and not hwc:
            return self._shared()
        w, g = self.weight, self.groups
        cout, cin_g, kh, kw = w.shape
        c, h, wd = self.in_shape
        _, ho, wo = self.out_shape
        cout_g = cout // g
        (sy, sx), (dy, dx) = self.stride, self.dilation
        korder = tap_order(kw, dx, sx)  # a kernel row's valid taps: adjacent
        kpos = np.argsort(korder)
        wk = w.reshape(g, cout_g, cin_g, kh, kw)[..., korder].transpose(0, 2, 3, 4, 1)
        weight = np.ascontiguousarray(wk, dtype=np.float64).ravel() + 0.0
        ycls, ybase, yclasses = _axis_classes(h, ho, kh, sy, self.pads[0], dy)
        xcls, xbase, xclasses = _axis_classes(wd, wo, kw, sx, self.pads[1], dx)
        c_at, c_k, c_len, c_step, c_ptr = [], [], [], [], [0]
        for yc in yclasses:
            for xc in xclasses:
                runs: list[list[int]] = []
                for ry, ky in yc:
                    for rx, kx in xc:
                        at = (ry * wo + rx) * cout if hwc else ry * wo + rx
                        k = (ky * kw + int(kpos[kx])) * cout_g
                        step = 1 if hwc else ho * wo
                        if runs and hwc and runs[-1][0] + runs[-1][2] == at and runs[-1][1] + runs[-1][2] == k:
                            runs[-1][2] += cout_g  # contiguous targets and weights: one longer run
                        else:
                            runs.append([at, k, cout_g, step])
                for at, k, n, step in runs:
                    c_at.append(at), c_k.append(k), c_len.append(n), c_step.append(step)
                c_ptr.append(len(c_at))
        c_at, c_k, c_len, c_step, c_ptr = _i64(c_at, c_k, c_len, c_step, c_ptr)
        n_combo, n_runs = c_ptr.size - 1, c_at.size
        ci = np.arange(c, dtype=np.int64)
        rptr = np.append((ci[:, None] * n_runs + c_ptr[None, :-1]).ravel(), c * n_runs)
        run_k = (np.tile(c_k, c).reshape(c, n_runs) + ci[:, None] * (kh * kw * cout_g)).ravel()
        combo = ycls[:, None] * len(xclasses) + xcls[None, :]
        pattern = (ci[:, None, None] * n_combo + combo[None]).ravel()
        grp = (ci // cin_g) * cout_g
        pos = ybase[:, None] * wo + xbase[None, :]
        first = ((grp[:, None, None] + pos[None] * cout) if hwc
                 else (grp[:, None, None] * (ho * wo) + pos[None])).ravel()
        return Tables(pattern, first, rptr, np.tile(c_at, c), np.tile(c_len, c), run_k, np.tile(c_step, c), weight)

    def _shared(self) -> Tables:
        w, g = self.weight, self.groups
        cout, cin_g, kh, kw = w.shape
        c, h, wd = self.in_shape
        _, ho, wo = self.out_shape
        cout_g = cout // g
        (sy, sx), (dy, dx) = self.stride, self.dilation
        korder = tap_order(kw, dx, sx)
        kpos = np.argsort(korder)
        yorder = tap_order(kh, dy, sy)  # rows too: an interior source's
        ypos = np.argsort(yorder)                                          # weights are then consecutive
        wk = w.reshape(g, cout_g, cin_g, kh, kw)[:, :, :, yorder][..., korder].transpose(0, 2, 1, 3, 4)
        weight = np.ascontiguousarray(wk, dtype=np.float64).ravel() + 0.0
        ycls, ybase, yclasses = _axis_classes(h, ho, kh, sy, self.pads[0], dy)
        xcls, xbase, xclasses = _axis_classes(wd, wo, kw, sx, self.pads[1], dx)
        at, kk, ln, ptr = [], [], [], [0]
        for yc in yclasses:
            for xc in xclasses:
                for co in range(cout_g):
                    for ry, ky in yc:
                        last = -1
                        for rx, kx in xc:
                            t, k = co * ho * wo + ry * wo + rx, (co * kh + int(ypos[ky])) * kw + int(kpos[kx])
                            if last >= 0 and at[last] + ln[last] == t and kk[last] + ln[last] == k:
                                ln[last] += 1
                            else:
                                last = len(at)
                                at.append(t), kk.append(k), ln.append(1)
                ptr.append(len(at))
        at, kk, ln, ptr = _i64(at, kk, ln, ptr)
        combo = (ycls[:, None] * len(xclasses) + xcls[None, :]).ravel()
        ci = np.arange(c, dtype=np.int64)
        pattern = np.broadcast_to(combo, (c, combo.size)).ravel()
        first = ((ci // cin_g) * cout_g * ho * wo)[:, None] + (ybase[:, None] * wo + xbase[None, :]).ravel()[None, :]
        kbase = np.repeat(ci * (cout_g * kh * kw), combo.size)
        return Tables(pattern, first.ravel(), ptr, at, ln, kk, np.ones_like(ln), weight, kbase)

    def fanout(self) -> np.ndarray:
        """Structural synapses of each input position (C-order): taps inside the output × output channels."""
        cout, _, kh, kw = self.weight.shape
        c, h, wd = self.in_shape
        _, ho, wo = self.out_shape
        ny = _taps(h, ho, kh, self.stride[0], self.pads[0], self.dilation[0])
        nx = _taps(wd, wo, kw, self.stride[1], self.pads[1], self.dilation[1])
        per = np.outer(ny, nx).astype(np.int64) * (cout // self.groups)
        return np.broadcast_to(per, (c, h, wd)).ravel()

    def abs_fanin(self, counts: np.ndarray) -> np.ndarray:
        """Σ |weight| × sources landing there, per output (C-order): a bound on one step's current."""
        top, left, bottom, right = self.pads
        x = F.pad(torch.from_numpy(counts.reshape(1, *self.in_shape)), (left, right, top, bottom))
        y = F.conv2d(x, torch.from_numpy(np.abs(self.weight)), None, self.stride, 0, self.dilation, self.groups)
        return y.numpy().ravel()


@dataclass
class DenseOp:
    """An Affine/Linear weight matrix ``[n_out, n_in]``: every input reaches every output."""

    weight: np.ndarray

    def tables(self, hwc: bool, shared: bool = False) -> Tables:
        n_out, n_in = self.weight.shape
        p = np.arange(n_in, dtype=np.int64)
        return Tables(p, np.zeros(n_in, np.int64), np.arange(n_in + 1, dtype=np.int64), np.zeros(n_in, np.int64),
                      np.full(n_in, n_out, np.int64), p * n_out, np.ones(n_in, np.int64),
                      np.ascontiguousarray(self.weight.T, dtype=np.float64).ravel() + 0.0)

    def fanout(self) -> np.ndarray:
        return np.full(self.weight.shape[1], self.weight.shape[0], dtype=np.int64)

    def abs_fanin(self, counts: np.ndarray) -> np.ndarray:
        return np.abs(self.weight) @ counts


@dataclass
class ElementwiseOp:
    """A Scale (or an identity edge): input ``i`` reaches output ``i`` with ``scale[i]``."""

    scale: np.ndarray   # 1 or n values
    n: int
    out_pos: np.ndarray | None = None  # internal position of each output when targets are channels-last

    def tables(self, hwc: bool, shared: bool = False) -> Tables:
        n, s = self.n, self.scale + 0.0
        first = np.arange(n, dtype=np.int64) if not hwc or self.out_pos is None else self.out_pos
        one = np.ones(1, np.int64)
        if s.size == 1:
            return Tables(np.zeros(n, np.int64), first, np.array([0, 1]), 0 * one, one, 0 * one, one, s)
        p = np.arange(n, dtype=np.int64)
        return Tables(p, first, np.arange(n + 1, dtype=np.int64), 0 * p, p * 0 + 1, p, p * 0 + 1, s)

    def fanout(self) -> np.ndarray:
        return np.ones(self.n, dtype=np.int64)

    def abs_fanin(self, counts: np.ndarray) -> np.ndarray:
        return np.abs(self.scale) * counts


def pool_index(node: nir.SumPool2d | nir.AvgPool2d, name: str, in_shape: tuple[int, ...],
               out_shape: tuple[int, ...]) -> tuple[np.ndarray, float] | None:
    """Where each input element (C-order) lands after a non-overlapping pool (−1: in no window), and the
    factor it is taken with (1, or 1/k² for an average); None for overlapping windows."""
    (kh, kw), (sy, sx) = pair(node.kernel_size, "kernel_size", name), pair(node.stride, "stride", name)
    py, px = pair(node.padding, "padding", name)
    if sy < kh or sx < kw:
        return None
    c, h, w = in_shape
    _, ho, wo = out_shape

    def axis(n: int, k: int, s: int, p: int, n_out: int) -> np.ndarray:
        i = np.arange(n) + p
        o = i // s
        return np.where((i - o * s < k) & (o < n_out), o, -1)

    oy, ox = axis(h, kh, sy, py, ho), axis(w, kw, sx, px, wo)
    idx = (np.arange(c)[:, None, None] * ho + oy[None, :, None]) * wo + ox[None, None, :]
    idx = np.where((oy[None, :, None] >= 0) & (ox[None, None, :] >= 0), idx, -1).ravel().astype(np.int64)
    return idx, (1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (kh * kw))


@dataclass
class KernelConnection:
    """A composed connection kept as an op (conv, dense, elementwise) after an optional pool."""

    name: str
    source: str
    target: str
    op: ConvOp | DenseOp | ElementwiseOp
    index: np.ndarray | None      # source (C-order) → op input (−1: nowhere); None: identity
    src_shape: tuple[int, ...]
    tgt_shape: tuple[int, ...]

    def tables(self, src_hwc: bool = False, tgt_hwc: bool = False, shared: bool = False) -> Tables:
        """The synapses with sources and targets numbered C-order or channels-last (``shared``: patterns
        shared across input channels through ``kbase``, which only the general path reads)."""
        t = self.op.tables(tgt_hwc and len(self.tgt_shape) == 3, shared)
        pos = channels_last(self.src_shape) if src_hwc and len(self.src_shape) == 3 else None
        return t.relocated(self.index, pos)

    @property
    def n_src(self) -> int:
        return int(np.prod(self.src_shape))

    @property
    def n_tgt(self) -> int:
        return int(np.prod(self.tgt_shape))

    @property
    def fanout(self) -> np.ndarray:
        """Structural synapses of each source element (C-order), from the op's geometry alone."""
        fan = self.op.fanout()
        if self.index is None:
            return fan
        return np.where(self.index >= 0, fan[np.maximum(self.index, 0)], 0)

    @cached_property
    def synapses(self) -> int:
        return int(self.fanout.sum())

    @cached_property
    def integral(self) -> bool:
        """Whether every weight is a finite integer (exact delivery may then apply)."""
        w = self.op.scale if isinstance(self.op, ElementwiseOp) else self.op.weight
        return bool(np.isfinite(w).all() and (w == np.round(w)).all())

    @cached_property
    def abs_fanin(self) -> np.ndarray:
        """Σ |weight| over each target's structural synapses (C-order): a bound on what one step adds."""
        n_in = (int(np.prod(self.op.in_shape)) if isinstance(self.op, ConvOp) else
                self.op.weight.shape[1] if isinstance(self.op, DenseOp) else self.op.n)
        counts = np.ones(n_in) if self.index is None else np.bincount(self.index[self.index >= 0], minlength=n_in)
        return np.asarray(self.op.abs_fanin(counts.astype(np.float64)), dtype=np.float64)

    def weights(self) -> sp.csc_matrix:
        """The real ``[n_tgt, n_src]`` weight matrix (explicit zeros kept): O(synapses), for tests and small graphs."""
        t = self.tables(shared=True)
        n_runs = t.rptr[1:][t.pattern] - t.rptr[:-1][t.pattern]  # per source
        src_r = np.repeat(np.arange(t.pattern.size), n_runs)
        run = (np.repeat(t.rptr[:-1][t.pattern], n_runs) + np.arange(src_r.size)
               - np.repeat(np.cumsum(n_runs) - n_runs, n_runs))
        lens = t.run_len[run]
        src = np.repeat(src_r, lens)
        r = np.repeat(run, lens)
        q = np.arange(src.size) - np.repeat(np.cumsum(lens) - lens, lens)
        rows_a = t.first[src] + t.run_at[r] + q * t.run_step[r]
        vals_a = t.weight[t.kbases[src] + t.run_k[r] + q]
        m = sp.csc_matrix((vals_a, (rows_a, src)), shape=(self.n_tgt, self.n_src))
        m.sort_indices()
        return m


def conv_op(node: nir.Conv2d, name: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
            factor: float) -> ConvOp:
    """The op of a Conv2d on ``in_shape`` with its weights times ``factor`` (a pool before it)."""
    w = np.asarray(node.weight, dtype=np.float64) * factor
    if w.ndim != 4:  # pragma: no cover - the graph view checks it
        raise KdsnnError(f"NIR node {name!r}: Conv2d weight must be 4-d")
    return ConvOp(w, int(node.groups), tuple(in_shape), tuple(out_shape), pair(node.stride, "stride", name),
                  conv_pads(node, name), pair(node.dilation, "dilation", name))
