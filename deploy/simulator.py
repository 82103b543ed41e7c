"""The reference event-driven simulator: any NIR graph GraphSNN runs, one spike at a time.

Every synaptic layer (Conv2d, Affine, Linear, Scale) becomes a sparse matrix from source
index to targets (``scipy.sparse`` CSC, built vectorized, borders exact). Pooling and
Flatten are linear and are composed into the synaptic layer that follows them, so a spike
before a pool drives the synapses of the composed connectivity directly. Each step, a
compiled loop (numba) walks only the rows of active sources (work ∝ spikes × fan-out; rows
that are translated copies share one weight table, see :func:`row_patterns`); each IF
population then updates its membrane in one fused pass under the contract of DESIGN.md
(``v += r·x``; spike iff ``v > θ``; reset to ``v_reset``). A batch is split over
``torch.get_num_threads()`` threads (rows are independent; results do not depend on it).
Spike input, or integer-valued analog input (a direct-encoded integer graph's first layer), to an
exactly-integer graph takes a faster path with the same bits and counts (:mod:`kdsnn.deploy.fast_path`:
integer state, channels-last populations, contiguous runs of weights, every step of every
population in one compiled call).

Counting (docs/synops.md): one SynOp per spike per *structural* synapse of the composed
connectivity (zero weights count: they are wired); analog input to the first layer counts
as MACs (effective: nonzero elements × exact fan-out; dense beside it); neuron updates are
neurons × T; an update is *active* when the neuron received at least one event in that step
or spiked. In integer mode, membranes beyond 24-bit signed are reported, never clipped.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp
import torch
from numba import njit

from kdsnn.errors import KdsnnError
from kdsnn.export.graph import get_meta, pair, predecessors, topological_order
from kdsnn.progress import progress as progress_bar

SUPPORTED = (nir.Input, nir.Output, nir.Conv2d, nir.Affine, nir.Linear, nir.Scale, nir.SumPool2d, nir.AvgPool2d,
             nir.Flatten, nir.IF)
SYNAPTIC = (nir.Conv2d, nir.Affine, nir.Linear, nir.Scale)
POPULATIONS = (nir.Input, nir.IF)
MEMBRANE_BITS = 24
V_MIN, V_MAX = -(2 ** (MEMBRANE_BITS - 1)), 2 ** (MEMBRANE_BITS - 1) - 1
_SPIKES, _ANALOG, _EXACT = 0, 1, 2  # delivery modes (see _deliver)
EXACT_BOUND = 2.0 ** 52  # |current| below this: integer float64 sums are exact in any order


# ----------------------------------------------------------------------------- results

@dataclass
class LayerStats:
    """One composed connection (named by its synaptic node) from a source population to a target."""

    source: str
    target: str
    synapses: int            # structural synapses of the composed connectivity
    synops: int = 0          # spike events × synapses reached (spiking source), whole batch
    macs_effective: int = 0  # nonzero analog inputs × exact fan-out (analog source), whole batch
    macs_dense: int = 0      # every analog input × its fan-out, every step, whole batch
    analog: bool = False


@dataclass
class NeuronStats:
    """One IF population over the whole batch and all steps."""

    size: int
    spikes: int = 0
    updates: int = 0          # neurons × T × B
    active_updates: int = 0   # updates where the neuron received an event or spiked
    firing_rate: float = 0.0  # spikes / updates
    overflow: int = 0         # integer mode: pre-reset membrane values outside 24-bit signed
    max_abs_membrane: float = 0.0


@dataclass
class SimResult:
    """What one simulation produced: logits, spikes ``[T, B, ...]`` (uint8) per IF node, counts."""

    logits: torch.Tensor
    spikes: dict[str, torch.Tensor]
    layers: dict[str, LayerStats]
    neurons: dict[str, NeuronStats]
    batch: int
    timesteps: int
    integer: bool
    readout: str
    output_seq: torch.Tensor = field(repr=False, default=None)  # type: ignore[assignment]

    def totals(self) -> dict[str, float]:
        """Whole-batch totals of every counter."""
        L, N = self.layers.values(), self.neurons.values()
        return {"synops": sum(l.synops for l in L), "macs_effective": sum(l.macs_effective for l in L),
                "macs_dense": sum(l.macs_dense for l in L), "neuron_updates": sum(n.updates for n in N),
                "active_neuron_updates": sum(n.active_updates for n in N), "spikes": sum(n.spikes for n in N),
                "overflow": sum(n.overflow for n in N)}

    def per_sample(self) -> dict[str, float]:
        """Per-inference averages (totals / batch): the figures energy reports use."""
        return {k: v / self.batch for k, v in self.totals().items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no tensors)."""
        return {"batch": self.batch, "timesteps": self.timesteps, "integer": self.integer, "readout": self.readout,
                "layers": {k: asdict(v) for k, v in self.layers.items()},
                "neurons": {k: asdict(v) for k, v in self.neurons.items()},
                "totals": self.totals(), "per_sample": self.per_sample()}


# ----------------------------------------------------------------------------- connectivity


def _conv_pads(node: nir.Conv2d, k: tuple[int, int], d: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(top, bottom), (left, right) zero padding of a Conv2d, strings resolved as PyTorch does."""
    if isinstance(node.padding, str):
        if node.padding == "valid":
            return (0, 0), (0, 0)
        if pair(node.stride) != (1, 1):
            raise KdsnnError("Conv2d padding 'same' needs stride 1 (as in PyTorch)")
        tot = [d[i] * (k[i] - 1) for i in range(2)]
        return (tot[0] // 2, tot[0] - tot[0] // 2), (tot[1] // 2, tot[1] - tot[1] // 2)
    p = pair(node.padding)
    return (p[0], p[0]), (p[1], p[1])


def _window_taps(size_in: int, size_out: int, k: int, s: int, pad: int, d: int):
    """For each kernel tap: (output indices, input indices) that are inside the input (borders exact)."""
    o = np.arange(size_out)
    for tap in range(k):
        i = o * s - pad + tap * d
        ok = (i >= 0) & (i < size_in)
        yield tap, o[ok], i[ok]


def conv_matrix(node: nir.Conv2d, in_shape: tuple[int, int, int]) -> tuple[sp.csc_matrix, tuple[int, int, int]]:
    """Exact connectivity of a Conv2d as a sparse ``[out, in]`` matrix (zero weights kept as structure)."""
    w = np.asarray(node.weight, dtype=np.float64)
    if w.ndim != 4:
        raise KdsnnError(f"Conv2d weight must be 4-d (C_out, C_in/groups, kh, kw), got shape {w.shape}")
    cout, cin_g, kh, kw = w.shape
    groups = int(node.groups)
    c, h, wd = in_shape
    if cin_g * groups != c or cout % groups:
        raise KdsnnError(f"Conv2d weight {w.shape} with groups={groups} does not fit an input of {c} channels")
    (sy, sx), (dy, dx) = pair(node.stride), pair(node.dilation)
    (pt, pb), (pl, pr) = _conv_pads(node, (kh, kw), (dy, dx))
    ho = (h + pt + pb - dy * (kh - 1) - 1) // sy + 1
    wo = (wd + pl + pr - dx * (kw - 1) - 1) // sx + 1
    if ho < 1 or wo < 1:
        raise KdsnnError(f"Conv2d kernel {kh}×{kw} does not fit its {h}×{wd} input")
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


def pool_matrix(node: nir.SumPool2d | nir.AvgPool2d, in_shape: tuple[int, int, int]) -> tuple[sp.csc_matrix, tuple[int, int, int]]:
    """Sum (or average, divisor k², padding counted) pooling as a sparse ``[out, in]`` matrix."""
    if len(in_shape) != 3:
        raise KdsnnError(f"pooling needs a (C, H, W) input, got shape {in_shape}")
    c, h, wd = in_shape
    (kh, kw), (sy, sx), (py, px) = pair(node.kernel_size), pair(node.stride), pair(node.padding)
    ho, wo = (h + 2 * py - kh) // sy + 1, (wd + 2 * px - kw) // sx + 1
    if ho < 1 or wo < 1:
        raise KdsnnError(f"pooling kernel {kh}×{kw} does not fit its {h}×{wd} input")
    value = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (kh * kw)
    ch = np.arange(c)[:, None]
    rows, cols = [], []
    for _, oy, iy in _window_taps(h, ho, kh, sy, py, 1):
        for _, ox, ix in _window_taps(wd, wo, kw, sx, px, 1):
            rows.append((ch * (ho * wo) + (oy[:, None] * wo + ox[None, :]).ravel()).ravel())
            cols.append((ch * (h * wd) + (iy[:, None] * wd + ix[None, :]).ravel()).ravel())
    r, q = np.concatenate(rows), np.concatenate(cols)
    return _csc(np.full(r.size, value), r, q, (c * ho * wo, c * h * wd)), (c, ho, wo)


def _csc(vals: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csc_matrix:
    """CSC matrix keeping explicit zeros (a zero weight is still a wired synapse)."""
    m = sp.csc_matrix((vals, (rows, cols)), shape=shape)
    m.sort_indices()
    return m


@dataclass
class _Term:
    """A linear map from one source population to the current node: weights and structure."""

    source: str
    key: str | None           # synaptic node(s) on the path; None before the first one
    last: str | None          # last linear node on the path
    m: sp.csc_matrix | None   # complex: real = weights, imaginary > 0 on every structural synapse; None: identity


@dataclass
class Connection:
    """A composed connection, stored transposed for event delivery.

    ``wt`` is CSR ``[n_src, n_tgt]`` over the structural pattern with complex entries
    ``w + 1j``: one sparse product with the step's events gives the summed weights (real part)
    and the number of events each target received (imaginary part, > 0 exactly where a
    structural synapse was reached, even when weights cancel or are zero).
    """

    name: str
    source: str
    target: str
    wt: sp.csr_matrix

    @property
    def n_src(self) -> int:
        return self.wt.shape[0]

    @property
    def n_tgt(self) -> int:
        return self.wt.shape[1]

    @property
    def fanout(self) -> np.ndarray:
        """Structural synapses of each source element."""
        return np.diff(self.wt.indptr)

    @property
    def synapses(self) -> int:
        return int(self.wt.nnz)

    @cached_property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The synapses as shared row patterns: what delivery reads (see :func:`row_patterns`)."""
        return row_patterns(self.wt)

    @cached_property
    def integral(self) -> bool:
        """Whether every weight is a finite integer (exact delivery may then apply)."""
        w = self.wt.data.real
        return bool(np.isfinite(w).all() and (w == np.round(w)).all())

    @cached_property
    def abs_fanin(self) -> np.ndarray:
        """Σ |weight| over each target's structural synapses: a bound on what one step can add."""
        return np.bincount(self.wt.indices, weights=np.abs(self.wt.data.real), minlength=self.n_tgt)

    def weights(self) -> sp.csc_matrix:
        """The real ``[n_tgt, n_src]`` weight matrix (zero-weight synapses kept as explicit zeros)."""
        return sp.csc_matrix((self.wt.data.real.copy(), self.wt.indices, self.wt.indptr), shape=(self.n_tgt, self.n_src))


def row_patterns(wt: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``wt`` ``[n_src, n_tgt]`` stored once per distinct shape: ``(pattern, base, ptr, offset, weight)``.

    Source ``i`` reaches targets ``base[i] + offset[ptr[p]:ptr[p + 1]]`` with weights
    ``weight[ptr[p]:ptr[p + 1]]`` where ``p = pattern[i]``, in the row's own (sorted) order.
    Rows that are translated copies with equal weights (a convolution's interior, every
    source of a pool window) share one pattern, so the table a spike reads stays in cache:
    the weight sharing of convolutional connectivity on neuromorphic chips. Weights are the
    real parts of ``wt`` (float64; ``-0.0`` stored as ``0.0``, which no sum from zero can tell apart).
    """
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
    offset_dtype = np.int32 if wt.shape[1] < 2 ** 31 else np.int64
    return pattern, first, ptr, rel[take].astype(offset_dtype), w[take]


def _wired(w: sp.csc_matrix) -> sp.csc_matrix:
    """A real matrix (explicit zeros = wired synapses) as complex ``w + 1j`` on its pattern."""
    m = sp.csc_matrix(w, dtype=np.complex128, copy=True)
    m.data += 1j
    return m


def _compose(a: sp.csc_matrix, t: _Term, node_name: str, synaptic: bool) -> _Term:
    """Apply linear node ``a`` (real, explicit zeros wired) after term ``t``.

    When every weight of ``t`` is positive (pooling, flatten: the usual case) one complex
    product ``(a + 1j·pattern(a)) @ t_w`` gives the composed weights (real) and a positive
    imaginary part exactly on the reachable pairs. Otherwise weights and structure are
    multiplied separately and the weights laid on the structural pattern.
    """
    key = t.key if not synaptic else (node_name if t.key is None else f"{t.key}+{node_name}")
    if t.m is None:
        return _Term(t.source, key, node_name, _wired(a))
    t_w = sp.csc_matrix((t.m.data.real, t.m.indices, t.m.indptr), shape=t.m.shape)
    if t_w.nnz and t_w.data.min() > 0:
        m = (_wired(a) @ t_w).tocsc()
        m.data = m.data.real + 1j
    else:
        a_s = sp.csc_matrix(a, copy=True)
        a_s.data[:] = 1.0
        t_s = sp.csc_matrix((np.ones(t.m.nnz), t.m.indices, t.m.indptr), shape=t.m.shape)
        s = (a_s @ t_s).tocsc()  # positive entries: no cancellation, so the pattern is the reachable set
        s.sort_indices()
        m = sp.csc_matrix((_aligned((a @ t_w).tocsc(), s) + 1j, s.indices, s.indptr), shape=s.shape)
    return _Term(t.source, key, node_name, m)


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
    if pos.size and (pos.max() >= key_s.size or not np.array_equal(key_s[pos], key_w)):  # pragma: no cover
        raise KdsnnError("internal error: composed weights outside the structural pattern")
    data = np.zeros(s.nnz)
    data[pos] = w.data
    return data


class Plan:
    """The graph reduced to populations (Input, IF), an Output, and composed connections.

    Building it is the expensive part of a simulation; build once with ``Plan(graph)`` and
    pass it to :func:`simulate` in place of the graph to simulate many batches.
    """

    def __init__(self, graph: nir.NIRGraph) -> None:
        for name, node in graph.nodes.items():
            if not isinstance(node, SUPPORTED):
                raise KdsnnError(f"NIR node {name!r} of type {type(node).__name__} is not supported by the simulator "
                                 f"(supported: {', '.join(t.__name__ for t in SUPPORTED)})")
        self.graph = graph
        self.order = topological_order(graph)
        preds = predecessors(graph)
        inputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Input)]
        outputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise KdsnnError(f"NIR graph must have exactly one Input and one Output node (has {len(inputs)} and {len(outputs)})")
        self.input, self.output = inputs[0], outputs[0]
        self.input_shape = tuple(int(v) for v in np.asarray(graph.nodes[self.input].input_type["input"]).ravel())
        self.shape: dict[str, tuple[int, ...]] = {}
        terms: dict[str, list[_Term]] = {}
        bias: dict[str, np.ndarray | None] = {}
        self.connections: list[Connection] = []
        self.target_bias: dict[str, np.ndarray] = {}
        self.passthrough: list[str] = []  # populations feeding the Output directly
        self.populations: list[str] = []   # IF nodes and the Output, in update order
        for name in self.order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                self.shape[name] = self.input_shape
                continue
            srcs = preds[name]
            if not srcs:
                raise KdsnnError(f"NIR node {name!r} has no incoming edge")
            sizes = {int(np.prod(self.shape[p])) for p in srcs}
            if len(sizes) != 1:
                raise KdsnnError(f"NIR node {name!r} sums inputs of different sizes {sorted(sizes)}")
            in_shape = self.shape[srcs[0]]
            incoming: list[_Term] = []
            in_bias: np.ndarray | None = None
            for p in srcs:
                if isinstance(graph.nodes[p], POPULATIONS):
                    incoming.append(_Term(p, None, None, None))
                else:
                    incoming += terms[p]
                    if bias[p] is not None:
                        in_bias = bias[p] if in_bias is None else in_bias + bias[p]
            if isinstance(node, (nir.IF, nir.Output)):
                self._target(name, node, in_shape, incoming, in_bias, graph)
                continue
            a_w, out_shape, own_bias = self._linear(name, node, in_shape)
            terms[name] = [_compose(a_w, t, name, isinstance(node, SYNAPTIC)) for t in incoming]
            b = None if in_bias is None else a_w @ in_bias
            if own_bias is not None:
                b = own_bias if b is None else b + own_bias
            bias[name] = b
            self.shape[name] = out_shape
        for c in self.connections:  # built here, so that a plan built once carries its whole cost
            c.arrays  # noqa: B018
        from .fast_path import FastNet  # here, not at the top: fast_path builds on this module
        self.fast: FastNet | None = FastNet.build(self)

    def _linear(self, name: str, node: nir.NIRNode, in_shape: tuple[int, ...]) -> tuple[sp.csc_matrix, tuple[int, ...], np.ndarray | None]:
        """The node as a sparse ``[out, in]`` matrix, its output shape and its bias (per output element)."""
        n_in = int(np.prod(in_shape))
        if isinstance(node, nir.Conv2d):
            if len(in_shape) != 3:
                raise KdsnnError(f"Conv2d {name!r} needs a (C, H, W) input, got shape {in_shape}")
            if node.input_shape is not None and tuple(pair(node.input_shape)) != tuple(in_shape[1:]):
                raise KdsnnError(f"Conv2d {name!r} declares input {tuple(pair(node.input_shape))} but receives {in_shape[1:]}")
            m, out = conv_matrix(node, in_shape)  # type: ignore[arg-type]
            b = np.asarray(node.bias, dtype=np.float64).ravel()
            if b.size not in (1, out[0]):
                _bad(name, "bias", b.size, out[0])
            return m, out, np.repeat(np.broadcast_to(b, (out[0],)), out[1] * out[2])
        if isinstance(node, (nir.Affine, nir.Linear)):
            w = np.asarray(node.weight, dtype=np.float64)
            if w.ndim != 2 or w.shape[1] != n_in:
                raise KdsnnError(f"{type(node).__name__} {name!r} has weight {w.shape} but receives {n_in} inputs "
                                 f"(shape {in_shape})")
            rows, cols = np.indices(w.shape)
            m = _csc(w.ravel(), rows.ravel(), cols.ravel(), w.shape)
            b = None
            if isinstance(node, nir.Affine):
                b = np.asarray(node.bias, dtype=np.float64).ravel()
                if b.size not in (1, w.shape[0]):
                    _bad(name, "bias", b.size, w.shape[0])
                b = np.broadcast_to(b, (w.shape[0],)).copy()
            return m, (w.shape[0],), b
        if isinstance(node, nir.Scale):
            s = np.asarray(node.scale, dtype=np.float64).ravel()
            if s.size not in (1, n_in):
                _bad(name, "scale", s.size, n_in)
            idx = np.arange(n_in)
            return _csc(np.broadcast_to(s, (n_in,)).copy(), idx, idx, (n_in, n_in)), in_shape, None
        if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            m, out = pool_matrix(node, in_shape)  # type: ignore[arg-type]
            return m, out, None
        if isinstance(node, nir.Flatten):
            idx = np.arange(n_in)
            out_type = (node.output_type or {}).get("output")
            if out_type is not None and np.asarray(out_type).size and int(np.prod(out_type)) == n_in:
                out = tuple(int(v) for v in np.asarray(out_type).ravel())
            else:
                nd = len(in_shape)
                start = int(node.start_dim) % nd if nd else 0
                end = int(node.end_dim) % nd if nd else 0
                out = (*in_shape[:start], int(np.prod(in_shape[start:end + 1])), *in_shape[end + 1:])
            return _csc(np.ones(n_in), idx, idx, (n_in, n_in)), out, None
        raise KdsnnError(f"NIR node {name!r}: unsupported type {type(node).__name__}")  # pragma: no cover

    def _target(self, name: str, node: nir.NIRNode, in_shape: tuple[int, ...], incoming: list[_Term],
                in_bias: np.ndarray | None, graph: nir.NIRGraph) -> None:
        n = int(np.prod(in_shape))
        self.shape[name] = in_shape
        groups: dict[tuple[str, str], list[_Term]] = {}
        for t in incoming:
            if t.m is None and isinstance(node, nir.Output):
                self.passthrough.append(t.source)
                continue
            key = t.key or t.last or f"{t.source}->{name}"
            groups.setdefault((t.source, key), []).append(t)
        for (src, key), ts in groups.items():
            n_src = int(np.prod(self.shape[src]))
            ident = _wired(sp.identity(n_src, format="csc"))
            m = sp.csc_matrix(sum(((t.m if t.m is not None else ident) for t in ts[1:]),
                                  ts[0].m if ts[0].m is not None else ident))  # imaginary parts > 0: no entry lost
            m.sort_indices()
            if m.shape != (n, n_src):  # pragma: no cover - guaranteed by the size checks above
                raise KdsnnError(f"connection {key!r} into {name!r} has shape {m.shape}, expected {(n, n_src)}")
            cname = key if all(c.name != key for c in self.connections) else f"{key}@{name}"
            wt = sp.csr_matrix((m.data.real + 1j, m.indices, m.indptr), shape=(n_src, n))
            self.connections.append(Connection(cname, src, name, wt))
        self.target_bias[name] = np.zeros(n) if in_bias is None else np.asarray(in_bias, dtype=np.float64)
        self.populations.append(name)
        if isinstance(node, nir.IF):
            for attr in ("r", "v_threshold"):
                size = np.asarray(getattr(node, attr)).size
                if size not in (1, n):
                    raise KdsnnError(f"IF node {name!r}: {attr} has {size} values but the population receives {n} inputs "
                                     f"(shape {in_shape})")


def _bad(name: str, what: str, got: int, want: int) -> None:
    raise KdsnnError(f"NIR node {name!r}: {what} has {got} values, expected {want}")


# ----------------------------------------------------------------------------- simulation kernels
#
# Compiled once (numba, cached beside the module). Each step costs one pass over the events
# of each connection (work ∝ events × fan-out) plus one fused pass over each IF population.
# Floating-point operations are the very ones of a scipy complex sparse product (per target:
# a zero-started sum of the weights, in event order, then added once to the current), so
# results are bit-identical to the straightforward sparse formulation.

@njit(cache=True, nogil=True)
def _deliver(ev_cnt: np.ndarray, ev_idx: np.ndarray, ev_val: np.ndarray, mode: int, pattern: np.ndarray,
             base: np.ndarray, ptr: np.ndarray, offset: np.ndarray, weights: np.ndarray, cur: np.ndarray,
             recv: np.ndarray, acc: np.ndarray, accv: np.ndarray, mark: np.ndarray,
             touched: np.ndarray) -> int:  # pragma: no cover - compiled
    """Add each row ``b``'s events (sources ``ev_idx[b, :ev_cnt[b]]``) through :func:`row_patterns` into ``cur``.

    ``mode`` ``_SPIKES``: per target, ``acc`` sums the weights from zero in event order and is
    then added once to ``cur``. ``_ANALOG``: the same with weight × value (a sum whose weights
    and values both cancel to zero is not added, as a sparse product drops it). ``_EXACT``
    (integer weights and currents, sums provably below 2**52: any order gives the same bits):
    weights go straight into ``cur``. ``recv`` marks every target a structural synapse reached.
    Returns the number of events (spikes × structural fan-out).
    """
    events = 0
    for b in range(cur.shape[0]):
        nt = 0
        cur_b, recv_b = cur[b], recv[b]
        for e in range(ev_cnt[b]):
            i = ev_idx[b, e]
            p, at = pattern[i], base[i]
            lo, hi = ptr[p], ptr[p + 1]
            events += hi - lo
            if mode == _EXACT:
                for k in range(lo, hi):
                    j = at + offset[k]
                    cur_b[j] += weights[k]
                    recv_b[j] = True
            else:  # a spike adds each weight once (1.0 · w is w, bit for bit); an analog value scales them
                analog = mode == _ANALOG
                v = ev_val[b, e] if analog else 1.0
                for k in range(lo, hi):
                    j = at + offset[k]
                    if not mark[j]:
                        mark[j] = True
                        touched[nt] = j
                        nt += 1
                    acc[j] += v * weights[k]
                    if analog:
                        accv[j] += v
        for q in range(nt):
            j = touched[q]
            if mode != _ANALOG or acc[j] != 0.0 or accv[j] != 0.0:
                cur_b[j] += acc[j]
            recv_b[j] = True
            acc[j] = 0.0
            accv[j] = 0.0
            mark[j] = False
    return events


@njit(cache=True, nogil=True)
def _update(v: np.ndarray, cur: np.ndarray, r: np.ndarray, scaled: bool, th: np.ndarray, vr: np.ndarray,
            recv: np.ndarray, spk: np.ndarray, ev_cnt: np.ndarray, ev_idx: np.ndarray, integer: bool,
            stats: np.ndarray) -> tuple[float, float]:  # pragma: no cover - compiled
    """One IF step of a population ``[B, n]`` in place: ``h = v + r·cur``; spike iff ``h > θ``; reset.

    Writes the spikes to ``spk`` and, per row, the spiking indices to ``ev_idx`` (count in
    ``ev_cnt``), adds ``[spikes, active updates, overflow]`` to ``stats``; returns ``(max h, min h)``
    (NaN if any ``h`` is NaN).
    """
    hmax, hmin = -np.inf, np.inf
    spikes = active = overflow = 0
    nan = False
    for b in range(cur.shape[0]):
        n_ev = 0
        for j in range(cur.shape[1]):
            h = v[b, j] + (r[j] * cur[b, j] if scaled else cur[b, j])
            if integer and (h < V_MIN or h > V_MAX):
                overflow += 1
            if h > hmax:
                hmax = h
            if h < hmin:
                hmin = h
            if h != h:
                nan = True
            if h > th[j]:
                v[b, j] = vr[j]
                spk[b, j] = 1
                ev_idx[b, n_ev] = j
                n_ev += 1
                active += 1
            else:
                v[b, j] = h
                spk[b, j] = 0
                if recv[b, j]:
                    active += 1
        ev_cnt[b] = n_ev
        spikes += n_ev
    stats[0] += spikes
    stats[1] += active
    stats[2] += overflow
    if nan:  # as numpy's max/min: NaN, which then leaves the running maximum as it was
        return np.nan, np.nan
    return hmax, hmin


# ----------------------------------------------------------------------------- simulation

def _prepare(plan: Plan, meta: dict, x: torch.Tensor | np.ndarray, timesteps: int | None,
             seed: int | None) -> tuple[np.ndarray, bool, int]:
    """``[T, B, n_in]`` float64 input as the graph's Input receives it, whether it is analog, and T."""
    x = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x)
    shape, integer = plan.input_shape, bool(meta.get("integer", False))
    encoding = meta.get("encoding", "direct")
    if encoding not in ("direct", "bernoulli"):
        raise KdsnnError(f"unknown input encoding {encoding!r} in the graph's metadata")
    if not torch.is_floating_point(x) and x.dtype not in (torch.uint8, torch.bool, torch.int32, torch.int64):
        raise KdsnnError(f"input dtype {x.dtype} is not numeric")
    t_meta = meta.get("timesteps")
    if x.dim() == len(shape) + 1:
        if tuple(x.shape[1:]) != shape:
            raise KdsnnError(f"input shape {tuple(x.shape[1:])} does not match the graph's input {shape}")
        t = timesteps or t_meta
        if not t:
            raise KdsnnError("the graph has no kdsnn metadata: give the number of time steps (timesteps=T / --timesteps)")
        x = x.to(torch.float64)
        if encoding == "bernoulli":
            gen = torch.Generator().manual_seed(seed) if seed is not None else None
            x = torch.bernoulli(x.clamp(0, 1).unsqueeze(0).expand(int(t), *x.shape).contiguous(), generator=gen)
        else:
            x = x.unsqueeze(0).expand(int(t), *x.shape)
        analog = encoding == "direct"
    elif x.dim() == len(shape) + 2 and tuple(x.shape[2:]) == shape:
        if timesteps and int(timesteps) != x.shape[0]:
            raise KdsnnError(f"input has {x.shape[0]} steps but timesteps={timesteps} was asked for")
        x = _float64(x)
        xn = x.numpy()
        analog = not bool(((xn == 0) | (xn == 1)).all())
    else:
        raise KdsnnError(f"input shape {tuple(x.shape)} does not match the graph's input {shape} ([B, ...] or [T, B, ...])")
    if not np.isfinite(x.numpy()).all():  # numpy: torch's threads only add overhead on these small checks
        raise KdsnnError("input contains NaN or infinite values")
    scale = meta.get("input_scale")
    if integer and scale and encoding == "direct":
        x = torch.round(x / scale)  # as GraphSNN: the same float64 division and rounding
    arr = x.reshape(x.shape[0], x.shape[1], -1).numpy().astype(np.float64, copy=True)
    return arr, analog, int(x.shape[0])


def _float64(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float64, converted by numpy on the CPU: the same values as ``x.to(torch.float64)``
    without waking torch's thread pool for a copy (costly when the cores are busy)."""
    if x.device.type != "cpu" or x.requires_grad:
        return x.to(torch.float64)
    return torch.from_numpy(x.numpy().astype(np.float64))


def _param(node: nir.IF, attr: str, n: int, default: float) -> np.ndarray:
    v = getattr(node, attr, None)
    v = np.full(1, default) if v is None else np.asarray(v, dtype=np.float64).ravel()
    return np.broadcast_to(v, (n,))


def simulate(graph: nir.NIRGraph | Plan, x: torch.Tensor | np.ndarray, timesteps: int | None = None,
             progress: bool = False, seed: int | None = None, batch_size: int | None = None,
             fast: bool = True) -> SimResult:
    """Simulate ``graph`` event-driven on ``x`` (``[B, ...]`` analog/encoded here, or ``[T, B, ...]``).

    Graphs without kdsnn metadata (another tool's) need ``timesteps`` for ``[B, ...]`` input and
    use direct encoding. ``seed`` fixes Bernoulli encoding; ``batch_size`` splits a large batch.
    Spike or integer-valued input to an exactly-integer graph takes the integer fast path (see
    :mod:`kdsnn.deploy.fast_path`) unless ``fast=False``; both paths give the same bits and counts.
    """
    plan = graph if isinstance(graph, Plan) else Plan(graph)
    meta = get_meta(plan.graph)
    seq, analog, t = _prepare(plan, meta, x, timesteps, seed)
    b = seq.shape[1]
    if b < 1:
        raise KdsnnError("the input batch is empty")
    chunk = int(batch_size or b)
    if chunk < 1:
        raise KdsnnError(f"batch_size must be at least 1, got {batch_size}")
    integer = bool(meta.get("integer", False))
    layers = {c.name: LayerStats(c.source, c.target, c.synapses, analog=analog and c.source == plan.input)
              for c in plan.connections}
    neurons = {n: NeuronStats(size=int(np.prod(plan.shape[n]))) for n in plan.populations
               if isinstance(plan.graph.nodes[n], nir.IF)}
    n_out = int(np.prod(plan.shape[plan.output]))
    out_seq = np.zeros((t, b, n_out))
    # the fast path takes spikes, and analog input when it is integer-valued (a direct-encoded integer
    # graph's input, rounded to its input step): integer products and sums, exact in any order
    net = plan.fast if fast and (not analog or np.array_equal(seq, np.round(seq))) else None
    input_max = float(np.abs(seq).max(initial=0.0)) if net is not None and analog else 1.0
    dtype = net.dtype(t, input_max) if net is not None else None
    bar = progress_bar(total=t * ((b + chunk - 1) // chunk), desc="simulate", unit="step", enabled=progress)
    workers = max(1, min(torch.get_num_threads(), chunk))
    with ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        if net is not None and dtype is not None:
            from .fast_path import simulate_fast
            spikes = simulate_fast(plan, net, dtype, seq, analog, input_max, chunk, pool, workers, integer, layers,
                                    neurons, out_seq, bar)
        else:
            spikes = _simulate_general(plan, seq, analog, integer, chunk, pool, workers, layers, neurons, out_seq, bar)
    bar.close()
    for st in neurons.values():
        st.firing_rate = st.spikes / st.updates if st.updates else 0.0
    out = torch.from_numpy(out_seq.reshape(t, b, *plan.shape[plan.output]))
    spiking = all(isinstance(plan.graph.nodes[p], nir.IF) for p in predecessors(plan.graph)[plan.output])
    logits = (out.sum(0) if spiking else out.mean(0)) * float(meta.get("output_scale", 1.0))
    return SimResult(logits=logits, spikes=spikes, layers=layers, neurons=neurons, batch=b, timesteps=t,
                     integer=integer, readout="spike" if spiking else "membrane", output_seq=out)


def _parts(lo: int, hi: int, workers: int) -> list[tuple[int, int]]:
    """Rows ``lo:hi`` of a chunk split into at most ``workers`` contiguous ranges, one per thread."""
    return [(int(r[0]), int(r[-1]) + 1) for r in np.array_split(np.arange(lo, hi), min(workers, hi - lo))]


def _simulate_general(plan: Plan, seq: np.ndarray, analog: bool, integer: bool, chunk: int, pool, workers: int,
                      layers: dict[str, LayerStats], neurons: dict[str, NeuronStats], out_seq: np.ndarray,
                      bar) -> dict[str, torch.Tensor]:
    """Any graph, step by step in Python over compiled kernels: fills the counters and ``out_seq``; returns spikes."""
    t, b = seq.shape[0], seq.shape[1]
    spikes = {n: np.zeros((t, b, s.size), dtype=np.uint8) for n, s in neurons.items()}
    for lo in range(0, b, chunk):
        jobs = [(plan, seq[:, r0:r1], analog, integer, *_fresh(layers, neurons),
                 {n: s[:, r0:r1] for n, s in spikes.items()}, out_seq[:, r0:r1], bar if k == 0 else None)
                for k, (r0, r1) in enumerate(_parts(lo, min(lo + chunk, b), workers))]
        done = [_run_chunk(*jobs[0])] if len(jobs) == 1 else list(pool.map(lambda j: _run_chunk(*j), jobs))
        for part_layers, part_neurons in done:
            _merge(layers, neurons, part_layers, part_neurons)
    return {n: torch.from_numpy(s.reshape(t, b, *plan.shape[n])) for n, s in spikes.items()}


def _fresh(layers: dict[str, LayerStats], neurons: dict[str, NeuronStats]
           ) -> tuple[dict[str, LayerStats], dict[str, NeuronStats]]:
    """Zeroed counters shaped like ``layers`` and ``neurons`` (one set per thread, merged after)."""
    return ({k: LayerStats(l.source, l.target, l.synapses, analog=l.analog) for k, l in layers.items()},
            {k: NeuronStats(size=n.size) for k, n in neurons.items()})


def _merge(layers: dict[str, LayerStats], neurons: dict[str, NeuronStats], part_layers: dict[str, LayerStats],
           part_neurons: dict[str, NeuronStats]) -> None:
    """Add one part's counters into the totals."""
    for k, l in part_layers.items():
        layers[k].synops += l.synops
        layers[k].macs_effective += l.macs_effective
        layers[k].macs_dense += l.macs_dense
    for k, n in part_neurons.items():
        tot = neurons[k]
        tot.spikes += n.spikes
        tot.updates += n.updates
        tot.active_updates += n.active_updates
        tot.overflow += n.overflow
        tot.max_abs_membrane = max(tot.max_abs_membrane, n.max_abs_membrane)


def _exact(bias: np.ndarray, conns: list[Connection], mode: dict[str, int]) -> bool:
    """Whether a target's currents are integer sums below :data:`EXACT_BOUND` (bias included)."""
    if not conns or any(mode[c.name] != _SPIKES or not c.integral for c in conns):
        return False
    if not (np.isfinite(bias).all() and (bias == np.round(bias)).all()):
        return False
    bound = np.abs(bias) + sum(c.abs_fanin for c in conns)
    return bool(bound.size == 0 or bound.max() < EXACT_BOUND)


def _run_chunk(plan: Plan, seq: np.ndarray, analog: bool, integer: bool, layers: dict[str, LayerStats],
               neurons: dict[str, NeuronStats], spikes: dict[str, np.ndarray], out_seq: np.ndarray,
               bar) -> tuple[dict[str, LayerStats], dict[str, NeuronStats]]:
    """Simulate rows of the batch step by step, populations in order; returns the counters it added to.

    Rows are independent, so threads may run disjoint rows (the compiled kernels release the GIL).
    """
    t, b = seq.shape[0], seq.shape[1]
    nodes = plan.graph.nodes
    incoming: dict[str, list[Connection]] = {n: [] for n in plan.populations}
    for c in plan.connections:
        incoming[c.target].append(c)
    n_max = max([c.n_tgt for c in plan.connections], default=0)
    acc, accv = np.zeros(n_max), np.zeros(n_max)  # per-target scratch of _deliver, left zeroed by it
    mark, touched = np.zeros(n_max, dtype=np.bool_), np.zeros(n_max, dtype=np.int64)
    n_in = seq.shape[2]
    events: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {  # per source: counts, indices, values
        n: (np.zeros(b, dtype=np.int64), np.zeros((b, st.size), dtype=np.int64), np.zeros((b, 0)))
        for n, st in neurons.items()}
    v = {n: np.zeros((b, st.size)) for n, st in neurons.items()}
    params = {n: (np.ascontiguousarray(_param(nodes[n], "r", st.size, 1.0)),
                  np.ascontiguousarray(_param(nodes[n], "v_threshold", st.size, 1.0)),
                  np.ascontiguousarray(_param(nodes[n], "v_reset", st.size, 0.0))) for n, st in neurons.items()}
    scaled = {n: bool(np.any(p[0] != 1)) for n, p in params.items()}
    counts = {n: np.zeros(3, dtype=np.int64) for n in neurons}  # spikes, active updates, overflow
    mode = {c.name: _ANALOG if analog and c.source == plan.input else _SPIKES for c in plan.connections}
    for name, conns in incoming.items():
        if _exact(plan.target_bias[name], conns, mode):
            mode.update((c.name, _EXACT) for c in conns)
    for step in range(t):
        x = seq[step]
        state: dict[str, np.ndarray] = {plan.input: x}
        b_idx, i_idx = np.nonzero(x)
        ev_cnt = np.bincount(b_idx, minlength=b).astype(np.int64)
        ev_idx = np.zeros((b, n_in), dtype=np.int64)
        ev_val = np.zeros((b, n_in))
        col = np.arange(b_idx.size) - np.repeat(np.cumsum(ev_cnt) - ev_cnt, ev_cnt)
        ev_idx[b_idx, col] = i_idx
        ev_val[b_idx, col] = x[b_idx, i_idx]
        events[plan.input] = (ev_cnt, ev_idx, ev_val)
        for name in plan.populations:
            size = plan.target_bias[name].size
            cur = np.empty((b, size))
            cur[:] = plan.target_bias[name]
            recv = np.zeros((b, size), dtype=np.bool_)
            for c in incoming[name]:
                cnt, idx, val = events[c.source]
                n_ev = _deliver(cnt, idx, val, mode[c.name], *c.arrays, cur, recv, acc, accv, mark, touched)
                st = layers[c.name]
                if mode[c.name] == _ANALOG:
                    st.macs_effective += n_ev
                    st.macs_dense += c.synapses * b
                else:
                    st.synops += n_ev
            if name == plan.output:
                for p in plan.passthrough:
                    cur += state[p]
                out_seq[step] = cur
                continue
            r, th, vr = params[name]
            cnt, idx, _ = events[name]
            spk = spikes[name][step]
            hmax, hmin = _update(v[name], cur, r, scaled[name], th, vr, recv, spk, cnt, idx, integer, counts[name])
            st = neurons[name]
            if size:
                st.max_abs_membrane = max(st.max_abs_membrane, float(hmax), -float(hmin))
            st.updates += spk.size
            state[name] = spk
        if bar is not None:
            bar.update(1)
    for n, st in neurons.items():
        spk_n, active, overflow = (int(v_) for v_ in counts[n])
        st.spikes += spk_n
        st.active_updates += active
        if integer:
            st.overflow += overflow
    return layers, neurons
