"""Explicit sparse connectivity: the simulator's previous formulation, kept as a test oracle and a fallback.

Every linear node becomes a ``scipy.sparse`` matrix (one entry per synapse, borders exact) and a
path of them is composed by matrix products (complex entries ``w + 1j`` keep the structure of
zero and cancelling weights). :mod:`kdsnn.deploy.simulator.connect` computes the same synapses from
the kernels without storing them; the plan uses this module only for chains the kernel forms do
not cover (two synaptic layers without a neuron between them, overlapping pools, a pool after a
synaptic layer), which cost O(synapses) memory, and tests build whole plans with it
(``Plan(graph, connectivity="sparse")``) to hold the kernel forms to it bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import nir
import numpy as np
import scipy.sparse as sp

from kdsnn.errors import KdsnnError
from kdsnn.export.graph_view import POOLS
from kdsnn.export.node_shapes import conv1d_as_2d, conv_pads, pair

from .tables import Tables, channels_last


def _window_taps(size_in: int, size_out: int, k: int, s: int, pad: int, d: int):
    """For each kernel tap: (output indices, input indices) that are inside the input (borders exact)."""
    o = np.arange(size_out)
    for tap in range(k):
        i = o * s - pad + tap * d
        ok = (i >= 0) & (i < size_in)
        yield tap, o[ok], i[ok]


def _csc(vals: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csc_matrix:
    """CSC matrix keeping explicit zeros (a zero weight is still a wired synapse)."""
    m = sp.csc_matrix((vals, (rows, cols)), shape=shape)
    m.sort_indices()
    return m


def conv_matrix(node: nir.Conv2d, in_shape: tuple[int, int, int]) -> tuple[sp.csc_matrix, tuple[int, int, int]]:
    """Exact connectivity of a Conv2d as a sparse ``[out, in]`` matrix (zero weights kept as structure)."""
    w = np.asarray(node.weight, dtype=np.float64)
    cout, cin_g, kh, kw = w.shape
    groups = int(node.groups)
    c, h, wd = in_shape
    if cin_g * groups != c or cout % groups:
        raise KdsnnError(f"Conv2d weight {w.shape} with groups={groups} does not fit an input of {c} channels")
    (sy, sx), (dy, dx) = pair(node.stride), pair(node.dilation)
    pt, pl, pb, pr = conv_pads(node)
    ho = (h + pt + pb - dy * (kh - 1) - 1) // sy + 1
    wo = (wd + pl + pr - dx * (kw - 1) - 1) // sx + 1
    co = np.arange(cout)
    ci = (co // (cout // groups))[:, None] * cin_g + np.arange(cin_g)[None, :]  # [cout, cin_g] absolute input channel
    rows, cols, vals = [], [], []
    for ky, oy, iy in _window_taps(h, ho, kh, sy, pt, dy):
        for kx, ox, ix in _window_taps(wd, wo, kw, sx, pl, dx):
            if not len(oy) or not len(ox):
                continue
            out_pos = (oy[:, None] * wo + ox[None, :]).ravel()
            in_pos = (iy[:, None] * wd + ix[None, :]).ravel()
            shape = (cout, cin_g, out_pos.size)
            rows.append(np.broadcast_to(co[:, None, None] * (ho * wo) + out_pos, shape).ravel())
            cols.append(np.broadcast_to(ci[:, :, None] * (h * wd) + in_pos, shape).ravel())
            vals.append(np.broadcast_to(w[:, :, ky, kx][:, :, None], shape).ravel())
    m = _csc(np.concatenate(vals), np.concatenate(rows), np.concatenate(cols), (cout * ho * wo, c * h * wd))
    return m, (cout, ho, wo)


def pool_matrix(node: nir.SumPool2d | nir.AvgPool2d,
                in_shape: tuple[int, int, int]) -> tuple[sp.csc_matrix, tuple[int, int, int]]:
    """Sum (or average, divisor k², padding counted) pooling as a sparse ``[out, in]`` matrix."""
    c, h, wd = in_shape
    (kh, kw), (sy, sx), (py, px) = pair(node.kernel_size), pair(node.stride), pair(node.padding)
    ho, wo = (h + 2 * py - kh) // sy + 1, (wd + 2 * px - kw) // sx + 1
    value = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (kh * kw)
    ch = np.arange(c)[:, None]
    rows, cols = [], []
    for _, oy, iy in _window_taps(h, ho, kh, sy, py, 1):
        for _, ox, ix in _window_taps(wd, wo, kw, sx, px, 1):
            rows.append((ch * (ho * wo) + (oy[:, None] * wo + ox[None, :]).ravel()).ravel())
            cols.append((ch * (h * wd) + (iy[:, None] * wd + ix[None, :]).ravel()).ravel())
    r, q = np.concatenate(rows), np.concatenate(cols)
    return _csc(np.full(r.size, value), r, q, (c * ho * wo, c * h * wd)), (c, ho, wo)


def linear_matrix(node: nir.NIRNode, in_shape: tuple[int, ...]) -> sp.csc_matrix:
    """Any linear node of a graph (synaptic, pooling, Flatten) as a real sparse ``[out, in]`` matrix."""
    n_in = int(np.prod(in_shape))
    if isinstance(node, nir.Conv2d):
        return conv_matrix(node, in_shape)[0]  # type: ignore[arg-type]
    if isinstance(node, nir.Conv1d):  # its 1×K Conv2d over [C, 1, L]: the same C-order numbering
        return conv_matrix(conv1d_as_2d(node), (in_shape[0], 1, in_shape[1]))[0]  # type: ignore[arg-type]
    if isinstance(node, POOLS):
        return pool_matrix(node, in_shape)[0]  # type: ignore[arg-type]
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight, dtype=np.float64)
        rows, cols = np.indices(w.shape)
        return _csc(w.ravel(), rows.ravel(), cols.ravel(), w.shape)
    idx = np.arange(n_in)
    if isinstance(node, nir.Scale):
        s = np.asarray(node.scale, dtype=np.float64).ravel()
        return _csc(np.broadcast_to(s, (n_in,)).copy(), idx, idx, (n_in, n_in))
    return _csc(np.ones(n_in), idx, idx, (n_in, n_in))  # Flatten


def _wired(w: sp.csc_matrix) -> sp.csc_matrix:
    """A real matrix (explicit zeros = wired synapses) as complex ``w + 1j`` on its pattern."""
    m = sp.csc_matrix(w, dtype=np.complex128, copy=True)
    m.data += 1j
    return m


def _aligned(w: sp.csc_matrix, s: sp.csc_matrix) -> np.ndarray:
    """Weights of ``w`` laid on the (superset) pattern of ``s``; synapses absent from ``w`` weigh 0."""
    w, s = w.tocsc(), s.tocsc()
    w.sort_indices()
    s.sort_indices()
    if w.nnz == s.nnz and np.array_equal(w.indptr, s.indptr) and np.array_equal(w.indices, s.indices):
        return w.data.astype(np.float64, copy=True)
    n = s.shape[0]
    key_s = np.repeat(np.arange(s.shape[1], dtype=np.int64), np.diff(s.indptr)) * n + s.indices
    key_w = np.repeat(np.arange(w.shape[1], dtype=np.int64), np.diff(w.indptr)) * n + w.indices
    pos = np.searchsorted(key_s, key_w)
    data = np.zeros(s.nnz)
    data[pos] = w.data
    return data


def compose(a: sp.csc_matrix, m: sp.csc_matrix | None) -> sp.csc_matrix:
    """Linear node ``a`` (real, explicit zeros wired) after the path so far ``m`` (complex, None: identity).

    When every weight of ``m`` is positive (pooling, flatten: the usual case) one complex product
    gives the composed weights (real) and a positive imaginary part exactly on the reachable pairs;
    otherwise weights and structure are multiplied separately.
    """
    if m is None:
        return _wired(a)
    t_w = sp.csc_matrix((m.data.real, m.indices, m.indptr), shape=m.shape)
    if t_w.nnz and t_w.data.min() > 0:
        out = (_wired(a) @ t_w).tocsc()
        out.data = out.data.real + 1j
        return out
    a_s = sp.csc_matrix(a, copy=True)
    a_s.data[:] = 1.0
    t_s = sp.csc_matrix((np.ones(m.nnz), m.indices, m.indptr), shape=m.shape)
    s = (a_s @ t_s).tocsc()  # positive entries: no cancellation, so the pattern is the reachable set
    s.sort_indices()
    return sp.csc_matrix((_aligned((a @ t_w).tocsc(), s) + 1j, s.indices, s.indptr), shape=s.shape)


def path_matrix(nodes: dict[str, nir.NIRNode], in_shapes: dict[str, tuple[int, ...]], path: tuple[str, ...],
                n_src: int) -> sp.csc_matrix:
    """The complex ``[n_tgt, n_src]`` matrix of a path of linear nodes (empty path: the identity)."""
    m = None
    for name in path:
        m = compose(linear_matrix(nodes[name], in_shapes[name]), m)
    return m if m is not None else _wired(sp.identity(n_src, format="csc"))


def row_patterns(wt: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``wt`` ``[n_src, n_tgt]`` stored once per distinct shape: ``(pattern, base, ptr, offset, weight)``
    (source ``i`` reaches ``base[i] + offset[ptr[p]:ptr[p + 1]]``, ``p = pattern[i]``; weights real, ``+ 0.0``)."""
    wt = wt.tocsr()
    wt.sort_indices()
    indptr = wt.indptr.astype(np.int64)
    lens = np.diff(indptr)
    first = np.zeros(wt.shape[0], dtype=np.int64)
    first[lens > 0] = wt.indices[indptr[:-1][lens > 0]]
    rel = wt.indices.astype(np.int64) - np.repeat(first, lens)
    w = np.ascontiguousarray(wt.data.real, dtype=np.float64) + 0.0
    rel_b, w_b = rel.tobytes(), w.tobytes()
    seen: dict[bytes, int] = {}
    pattern = np.empty(wt.shape[0], dtype=np.int64)
    keep: list[int] = []
    for i in range(wt.shape[0]):
        lo, hi = int(indptr[i]) * 8, int(indptr[i + 1]) * 8
        key = rel_b[lo:hi] + w_b[lo:hi]
        p = seen.get(key)
        if p is None:
            p = seen[key] = len(keep)
            keep.append(i)
        pattern[i] = p
    rows = np.asarray(keep, dtype=np.int64)
    ptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lens[rows], out=ptr[1:])
    take = np.concatenate([np.arange(indptr[i], indptr[i + 1]) for i in keep]) if keep else np.zeros(0, np.int64)
    return pattern, first, ptr, rel[take], w[take]


def run_table(ptr: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split each row pattern into runs of consecutive targets: ``(rptr, run_at, run_len, run_k)``."""
    n = offset.size
    start = np.ones(n, dtype=np.bool_)
    start[1:] = offset[1:] != offset[:-1] + 1
    start[ptr[:-1][ptr[:-1] < n]] = True  # a run never crosses the end of a pattern
    run_k = np.flatnonzero(start).astype(np.int64)
    run_len = np.diff(np.append(run_k, n)).astype(np.int64)
    rptr = np.searchsorted(run_k, ptr).astype(np.int64)
    return rptr, offset[run_k].astype(np.int64), run_len, run_k


def _permuted(wt: sp.csr_matrix, src_pos: np.ndarray, tgt_pos: np.ndarray) -> sp.csr_matrix:
    """Real ``wt`` with rows and columns moved to their internal positions (explicit zeros kept)."""
    rows = np.argsort(src_pos, kind="stable")  # internal row r holds original row rows[r]
    lens = np.diff(wt.indptr)[rows]
    indptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    take = np.repeat(wt.indptr[rows].astype(np.int64) - indptr[:-1], lens) + np.arange(int(indptr[-1]))
    m = sp.csr_matrix((np.ascontiguousarray(wt.data.real[take]), tgt_pos[wt.indices[take]], indptr), shape=wt.shape)
    m.sort_indices()
    return m


@dataclass
class SparseConnection:
    """A composed connection stored explicitly: ``wt`` CSR ``[n_src, n_tgt]``, entries ``w + 1j`` on every synapse."""

    name: str
    source: str
    target: str
    wt: sp.csr_matrix
    src_shape: tuple[int, ...]
    tgt_shape: tuple[int, ...]

    def tables(self, src_hwc: bool = False, tgt_hwc: bool = False, shared: bool = False) -> Tables:
        """The synapses as :class:`Tables` (sources and targets C-order or channels-last)."""
        wt = self.wt
        if src_hwc or tgt_hwc:
            n_s, n_t = wt.shape
            wt = _permuted(wt, channels_last(self.src_shape) if src_hwc else np.arange(n_s),
                           channels_last(self.tgt_shape) if tgt_hwc else np.arange(n_t))
        pattern, first, ptr, offset, w = row_patterns(wt)
        rptr, run_at, run_len, run_k = run_table(ptr, offset)
        return Tables(pattern, first, rptr, run_at, run_len, run_k, np.ones_like(run_len), w)

    @property
    def synapses(self) -> int:
        return int(self.wt.nnz)

    @property
    def fanout(self) -> np.ndarray:
        return np.diff(self.wt.indptr)

    @cached_property
    def integral(self) -> bool:
        w = self.wt.data.real
        return bool(np.isfinite(w).all() and (w == np.round(w)).all())

    @cached_property
    def abs_fanin(self) -> np.ndarray:
        return np.bincount(self.wt.indices, weights=np.abs(self.wt.data.real), minlength=self.wt.shape[1])

    def weights(self) -> sp.csc_matrix:
        """The real ``[n_tgt, n_src]`` weight matrix (zero-weight synapses kept as explicit zeros)."""
        n_src, n_tgt = self.wt.shape
        return sp.csc_matrix((self.wt.data.real.copy(), self.wt.indices, self.wt.indptr), shape=(n_tgt, n_src))

