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
exactly-integer graph takes a faster path with the same bits and counts (:class:`FastNet`:
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
from numba.cpython.unsafe.numbers import trailing_zeros

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


# ----------------------------------------------------------------------------- integer fast path
#
# When every connection is exact (integer weights and biases, sums provably exact: any order of
# addition gives the same bits) and every IF neuron has r = 1 and an integer reset, a whole
# simulation is integer arithmetic. The fast path then stores (C, H, W) populations channels-last
# (position-major: index (y·W + x)·C + c), so that a spike through a convolution adds, per kernel
# row, one contiguous run of kw·C_out weights: delivery becomes vectorizable runs of integer adds
# instead of scattered float read-add-writes. Spikes and every counter are bit-identical with the
# general path (tests compare the two); only the internal order of neurons differs, and the spike
# tensors handed back are permuted views in the public (C, H, W) order.

INT_DTYPES = ((np.int32, 2.0 ** 31 - 1), (np.int64, 2.0 ** 52))  # state dtypes, and the |value| each holds exactly


def channels_last(shape: tuple[int, ...]) -> np.ndarray:
    """Internal position of each element (original C-order index) of a population of ``shape``.

    ``(C, H, W)`` populations go channels-last (the targets of one kernel tap are contiguous);
    any other shape keeps its order.
    """
    n = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(n, dtype=np.int64)
    c, h, w = shape
    return np.arange(n, dtype=np.int64).reshape(h, w, c).transpose(2, 0, 1).ravel()  # [c, y, x] → (y·W + x)·C + c


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


def run_table(ptr: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split each row pattern of :func:`row_patterns` into runs of consecutive targets.

    Returns ``(rptr, run_at, run_len, run_k)``: pattern ``p`` has runs ``rptr[p]:rptr[p + 1]``;
    run ``r`` covers targets ``base + run_at[r] + [0, run_len[r])`` with weights
    ``weight[run_k[r]:run_k[r] + run_len[r]]``. A run is what one vectorized loop adds.
    """
    n = offset.size
    start = np.ones(n, dtype=np.bool_)
    start[1:] = offset[1:] != offset[:-1] + 1
    start[ptr[:-1][ptr[:-1] < n]] = True  # a run never crosses the end of a pattern
    run_k = np.flatnonzero(start).astype(np.int64)
    run_len = np.diff(np.append(run_k, n)).astype(np.int64)
    rptr = np.searchsorted(run_k, ptr).astype(np.int64)
    return rptr, offset[run_k].astype(np.int64), run_len, run_k


def _integer_if(node: nir.IF, n: int) -> bool:
    """Whether an IF population keeps integer membranes: r = 1, finite θ, integer finite reset."""
    r, th, vr = (_param(node, a, n, d) for a, d in (("r", 1.0), ("v_threshold", 1.0), ("v_reset", 0.0)))
    return bool((r == 1).all() and np.isfinite(th).all() and np.isfinite(vr).all() and (vr == np.round(vr)).all())


def _uniform(node: nir.NIRNode, n: int) -> bool:
    """Whether an IF population has one θ and one reset for all its neurons (the update then reads scalars)."""
    if not isinstance(node, nir.IF) or n == 0:
        return False
    th, vr = _param(node, "v_threshold", n, 1.0), _param(node, "v_reset", n, 0.0)
    return bool((th == th[0]).all() and (vr == vr[0]).all())


@dataclass
class _Tables:
    """One connection's run tables in target-local indices, before :meth:`FastNet.build` places them."""

    pattern: np.ndarray
    first: np.ndarray     # per source row: its first target (local)
    rptr: np.ndarray
    run_at: np.ndarray
    run_len: np.ndarray
    run_k: np.ndarray
    fan: np.ndarray
    weight: np.ndarray

    @staticmethod
    def of(m: sp.csr_matrix) -> _Tables:
        """Tables of a (permuted) real ``[n_src, n_tgt]`` connection."""
        pattern, first, ptr, offset, w = row_patterns(m)
        rptr, run_at, run_len, run_k = run_table(ptr, offset.astype(np.int64))
        return _Tables(pattern, first, rptr, run_at, run_len, run_k, np.diff(ptr), w.astype(np.int64))

    def grain(self) -> int:
        """The largest block size dividing every run's start and length (0 when there are no runs).

        Every run then covers whole blocks, so "this neuron received an event" can be recorded
        once per block and run instead of once per synapse (all neurons of a block receive together).
        """
        return int(np.gcd.reduce(np.concatenate([self.first, self.run_at, self.run_len, [0]])))


def _concat(tables: list[_Tables], offsets: list[int], grains: list[int]) -> tuple[np.ndarray, ...]:
    """All connections' tables as records with global indices (connection ``i`` targets ``offsets[i]``).

    Returns ``(rows, runs, weight)``, laid out so that a spike reads few cache lines, none of
    them through another: ``rows[i] = (first target, first receive block, weight index, length
    and blocks of the pattern's first run, its other runs' range in runs, SynOps)`` per source
    row (a target's blocks are numbered from its offset; the first run starts at the first
    target), so a one-run row (a dense layer's) needs nothing else; ``runs[r] = (target offset
    from the row's first, weight index, length, block offset, blocks, 0, 0, 0)``; ``weight`` int64.
    """
    run_off = np.cumsum([0] + [t.run_k.size for t in tables])
    w_off = np.cumsum([0] + [t.weight.size for t in tables])
    rows, runs = [], []
    for t, o, g, ro, wo in zip(tables, offsets, grains, run_off, w_off):
        lo, hi = t.rptr[:-1][t.pattern], t.rptr[1:][t.pattern]  # per row: its pattern's runs
        has = hi > lo
        first_run = _first_runs(t, np.where(has, lo, 0), has, g)
        first_run[0] = np.where(has, first_run[0] + wo, 0)
        rows.append(np.stack([t.first + o, t.first // g + o, *first_run, np.where(has, lo + 1, lo) + ro, hi + ro,
                              t.fan[t.pattern]], axis=1))
        runs.append(np.stack([t.run_at, t.run_k + wo, t.run_len, t.run_at // g, t.run_len // g] + [0 * t.run_k] * 3,
                             axis=1))
    cat = lambda parts: np.concatenate([np.zeros((0, 8), np.int64)] + parts).astype(np.int64)  # noqa: E731
    weight = np.concatenate([np.zeros(0, np.int64)] + [t.weight for t in tables]).astype(np.int64)
    return cat(rows), cat(runs), weight


def _first_runs(t: _Tables, first: np.ndarray, has: np.ndarray, grain: int) -> list[np.ndarray]:
    """Per row: weight index, length and receive blocks of its first run (zeros for rows without runs)."""
    if not t.run_k.size:
        return [np.zeros(first.size, np.int64) for _ in range(3)]
    return [np.where(has, t.run_k[first], 0), np.where(has, t.run_len[first], 0), np.where(has, t.run_len[first] // grain, 0)]


def _narrowest(values: np.ndarray, widest: type) -> type:
    """The narrowest signed integer dtype (up to ``widest``) that holds ``values``: smaller tables, fewer bytes read."""
    top = int(np.abs(values).max(initial=0))
    return next(dt for dt in (np.int8, np.int16, np.int32, np.int64, widest)
                if np.iinfo(dt).max >= top or dt == widest)


@dataclass
class FastNet:
    """A :class:`Plan` flattened for :func:`_run_fast`: integer tables, channels-last populations.

    Populations (IF and the Output, in update order) lie side by side in one state vector, each
    at an offset that is a multiple of 8 (spikes are scanned 8 bytes at a time); the Input's
    events follow at offset ``n``. ``pops`` rows: ``(offset, size, is Output, first connection,
    end connection, receive block size, uniform θ and reset, has a bias)``; ``conns`` rows:
    ``(source population (len(pops) for the Input), offset of its events, offset of its rows in
    the tables)``.
    """

    names: list[str]
    pos: dict[str, np.ndarray]       # per population: internal position of each original index
    pops: np.ndarray
    conns: np.ndarray
    conn_names: list[str]
    n: int                           # state vector length (padded)
    tables: tuple[np.ndarray, ...]   # see _concat
    bias: np.ndarray                 # int64, per internal neuron
    th: np.ndarray                   # int64 floor(θ): h > θ ⇔ h > floor(θ) for integer h
    vr: np.ndarray                   # int64
    gather: np.ndarray               # [passthrough, n_out]: internal index of each Output element's spike
    cur_bound: np.ndarray            # per population: max over targets of |bias| + Σ|w| (one step's reach)
    v_lo: np.ndarray                 # per population: min(0, floor θ, v_reset)
    v_hi: np.ndarray                 # per population: max(0, floor θ, v_reset)
    in_reach: np.ndarray             # per population: max over targets of Σ|w| from the Input (unit inputs)
    _cache: dict = field(default_factory=dict, repr=False)

    @staticmethod
    def build(plan: Plan) -> FastNet | None:
        """The flattened plan, or None when some connection or neuron is not exactly integer."""
        nodes, names = plan.graph.nodes, plan.populations
        incoming = {n: [c for c in plan.connections if c.target == n] for n in names}
        spike_mode = {c.name: _SPIKES for c in plan.connections}
        for n in names:
            bias = plan.target_bias[n]
            if not (np.isfinite(bias).all() and (bias == np.round(bias)).all()):
                return None
            if incoming[n] and not _exact(bias, incoming[n], spike_mode):
                return None
            if isinstance(nodes[n], nir.IF) and not _integer_if(nodes[n], bias.size):
                return None
        pos = {n: channels_last(plan.shape[n]) if isinstance(nodes[n], nir.IF) else
               np.arange(plan.target_bias[n].size, dtype=np.int64) for n in names}
        pos[plan.input] = np.arange(int(np.prod(plan.input_shape)), dtype=np.int64)
        sizes = [plan.target_bias[n].size for n in names]
        offs = np.concatenate([[0], np.cumsum([-(-s // 8) * 8 for s in sizes])]).astype(np.int64)
        index = {n: i for i, n in enumerate(names)}
        index[plan.input] = len(names)
        pops, conns, conn_names, tables, t_offs, t_grains = [], [], [], [], [], []
        for i, n in enumerate(names):
            c_lo = len(conns)
            mine = [_Tables.of(_permuted(c.wt, pos[c.source], pos[n])) for c in incoming[n]]
            grain = int(np.gcd.reduce([sizes[i]] + [t.grain() for t in mine])) or 1
            for c, t in zip(incoming[n], mine):
                conns.append((index[c.source], int(offs[index[c.source]]), sum(t_.pattern.size for t_ in tables)))
                conn_names.append(c.name)
                tables.append(t)
                t_offs.append(int(offs[i]))
                t_grains.append(grain)
            pops.append((int(offs[i]), sizes[i], int(isinstance(nodes[n], nir.Output)), c_lo, len(conns), grain,
                         int(_uniform(nodes[n], sizes[i])), int(np.any(plan.target_bias[n] != 0))))
        return FastNet._assemble(plan, pos, offs, pops, conns, conn_names, _concat(tables, t_offs, t_grains), incoming)

    @staticmethod
    def _assemble(plan: Plan, pos: dict[str, np.ndarray], offs: np.ndarray, pops: list, conns: list,
                  conn_names: list[str], tables: tuple[np.ndarray, ...],
                  incoming: dict[str, list[Connection]]) -> FastNet | None:
        """Per-neuron parameters in internal order, the Output's passthrough gather, and the bounds."""
        names, nodes, n = plan.populations, plan.graph.nodes, int(offs[-1])
        bias, th, vr = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
        cur_bound, v_lo, v_hi = np.zeros(len(names)), np.zeros(len(names)), np.zeros(len(names))
        in_reach = np.zeros(len(names))
        for i, name in enumerate(names):
            at = offs[i] + pos[name]
            b = plan.target_bias[name]
            reach = np.abs(b) + sum((c.abs_fanin for c in incoming[name]), np.zeros(b.size))
            cur_bound[i] = reach.max(initial=0.0)
            in_reach[i] = sum((c.abs_fanin for c in incoming[name] if c.source == plan.input),
                              np.zeros(b.size)).max(initial=0.0)
            bias[at] = b
            if isinstance(nodes[name], nir.IF):
                t_ = np.floor(_param(nodes[name], "v_threshold", b.size, 1.0))
                r_ = _param(nodes[name], "v_reset", b.size, 0.0)
                if max(np.abs(t_).max(initial=0.0), np.abs(r_).max(initial=0.0)) >= INT_DTYPES[-1][1]:
                    return None
                th[at], vr[at] = t_, r_
                v_lo[i] = min(0.0, r_.min(initial=0.0), t_.min(initial=0.0))  # θ itself must fit too
                v_hi[i] = max(0.0, t_.max(initial=0.0), r_.max(initial=0.0))
        out = names.index(plan.output)
        gather = np.array([offs[names.index(p)] + pos[p] for p in plan.passthrough], dtype=np.int64)
        gather = gather.reshape(len(plan.passthrough), plan.target_bias[plan.output].size)
        v_hi[out] = len(plan.passthrough)  # the Output adds each passthrough spike (0 or 1) to its current
        return FastNet(list(names), pos, np.array(pops, dtype=np.int64).reshape(-1, 8),
                       np.array(conns, dtype=np.int64).reshape(-1, 3), conn_names, n, tables, bias, th, vr, gather,
                       cur_bound, v_lo, v_hi, in_reach)

    def reach(self, input_max: float = 1.0) -> np.ndarray:
        """Per population: a bound on one step's current when inputs are at most ``input_max`` in
        magnitude (spikes: 1; an integer analog first layer: its largest |value|)."""
        return self.cur_bound + max(float(input_max) - 1.0, 0.0) * self.in_reach

    def dtype(self, timesteps: int, input_max: float = 1.0) -> type | None:
        """The narrowest integer dtype that holds every membrane and current over ``timesteps`` exactly.

        A membrane stays within ``[v_lo − T·reach, v_hi]`` before a step and moves by at most
        ``reach`` in one; None when even int64 (kept below 2**52, where float64 is exact, as the
        general path's sums are, analog first layer included) is not provably enough.
        """
        reach = self.reach(input_max)
        worst = float(np.max(np.maximum(np.abs(self.v_lo) + (timesteps + 1) * reach,
                                        np.abs(self.v_hi) + reach), initial=0.0))
        return next((dt for dt, limit in INT_DTYPES if worst < limit), None)

    def arrays(self, dtype: type) -> tuple[np.ndarray, ...]:
        """The kernel's arguments after the input flags, state-valued arrays in ``dtype`` (cached).

        Tables are int32 records (int64 when the indices need it); weights take the narrowest
        integer type that holds them.
        """
        if dtype not in self._cache:
            rows, runs, weight = self.tables
            index = np.int32 if max(self.n, weight.size, runs.shape[0], int(rows[:, 7].max(initial=0))) < 2 ** 31 else np.int64
            lim = np.array([V_MIN, V_MAX, np.iinfo(dtype).min, np.iinfo(dtype).max], dtype=dtype)
            bounds = np.stack([self.v_lo, self.v_hi, self.cur_bound], axis=1).astype(np.int64)
            self._cache[dtype] = (self.pops, self.conns, rows.astype(index), runs.astype(index),
                                  weight.astype(_narrowest(weight, dtype)), self.bias.astype(dtype),
                                  self.th.astype(dtype), self.vr.astype(dtype), lim, bounds, self.gather)
        return self._cache[dtype]


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
            elif mode == _ANALOG:
                v = ev_val[b, e]
                for k in range(lo, hi):
                    j = at + offset[k]
                    if not mark[j]:
                        mark[j] = True
                        touched[nt] = j
                        nt += 1
                    acc[j] += v * weights[k]
                    accv[j] += v
            else:
                for k in range(lo, hi):
                    j = at + offset[k]
                    if not mark[j]:
                        mark[j] = True
                        touched[nt] = j
                        nt += 1
                    acc[j] += weights[k]
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


@njit(cache=True, nogil=True)
def _compact(flags: np.ndarray, lo: int, hi: int, ev: np.ndarray, at: int) -> int:  # pragma: no cover - compiled
    """Write the indices ``j - lo`` of the nonzero bytes of ``flags[lo:hi]`` (each 0 or 1) to ``ev[at:]``.

    ``lo`` and ``hi`` are multiples of 8 and ``flags`` is 8-byte aligned: the scan reads one
    8-byte word per 8 neurons and jumps from set byte to set byte (trailing zeros). Returns the count.
    """
    words = flags.view(np.uint64)
    n = 0
    for q in range(lo // 8, hi // 8):
        word = words[q]
        while word:
            ev[at + n] = q * 8 + (np.int64(trailing_zeros(word)) >> 3) - lo
            n += 1
            word &= word - np.uint64(1)
    return n


@njit(cache=True, nogil=True)
def _add_runs(ev: np.ndarray, e_lo: int, n_ev: int, row_lo: int, rows: np.ndarray, runs: np.ndarray, weight: np.ndarray,
              cur: np.ndarray, recv: np.ndarray) -> int:  # pragma: no cover - compiled
    """Add the weights of sources ``ev[e_lo:e_lo + n_ev]`` into ``cur`` run by run; mark their blocks in ``recv``.

    Tables as :func:`_concat` lays them out. A run is a contiguous slice of targets and of
    weights, so its loop vectorizes (integer adds: any order gives the same sums). Unsigned
    indices spare numba's negative-index wraparound. Returns the SynOps (structural synapses reached).
    """
    synops = 0
    for e in range(e_lo, e_lo + n_ev):
        i = row_lo + ev[e]
        at, blk = np.uint64(rows[i, 0]), np.uint64(rows[i, 1])
        synops += rows[i, 7]
        _add_run(cur, at, weight, np.uint64(rows[i, 2]), np.uint64(rows[i, 3]), recv, blk, np.uint64(rows[i, 4]))
        for r in range(rows[i, 5], rows[i, 6]):
            _add_run(cur, at + np.uint64(runs[r, 0]), weight, np.uint64(runs[r, 1]), np.uint64(runs[r, 2]), recv,
                     blk + np.uint64(runs[r, 3]), np.uint64(runs[r, 4]))
    return synops


@njit(cache=True, nogil=True)
def _add_runs_scaled(ev: np.ndarray, e_lo: int, n_ev: int, row_lo: int, rows: np.ndarray, runs: np.ndarray,
                     weight: np.ndarray, cur: np.ndarray, recv: np.ndarray, values: np.ndarray) -> int:  # pragma: no cover
    """:func:`_add_runs` for an analog (integer-valued) source: each event adds ``value · weight``.

    The first layer of a direct-encoded integer graph: the nonzero inputs are the events, and the
    count returned is its effective MACs (nonzero inputs × structural fan-out)."""
    macs = 0
    for e in range(e_lo, e_lo + n_ev):
        src = ev[e]
        i = row_lo + src
        value = values[src]
        at, blk = np.uint64(rows[i, 0]), np.uint64(rows[i, 1])
        macs += rows[i, 7]
        _add_run_scaled(cur, at, weight, np.uint64(rows[i, 2]), np.uint64(rows[i, 3]), recv, blk,
                        np.uint64(rows[i, 4]), value)
        for r in range(rows[i, 5], rows[i, 6]):
            _add_run_scaled(cur, at + np.uint64(runs[r, 0]), weight, np.uint64(runs[r, 1]), np.uint64(runs[r, 2]), recv,
                            blk + np.uint64(runs[r, 3]), np.uint64(runs[r, 4]), value)
    return macs


@njit(cache=True, nogil=True, inline="always")
def _add_run_scaled(cur: np.ndarray, at: np.uint64, weight: np.ndarray, k: np.uint64, n: np.uint64, recv: np.ndarray,
                    blk: np.uint64, blocks: np.uint64, value) -> None:  # pragma: no cover - compiled
    """``cur[at:at + n] += value · weight[k:k + n]``; ``recv[blk:blk + blocks] = 1``."""
    for q in range(n):
        cur[at + q] += value * weight[k + q]
    for q in range(blocks):
        recv[blk + q] = 1


@njit(cache=True, nogil=True, inline="always")
def _add_run(cur: np.ndarray, at: np.uint64, weight: np.ndarray, k: np.uint64, n: np.uint64, recv: np.ndarray,
             blk: np.uint64, blocks: np.uint64) -> None:  # pragma: no cover - compiled
    """``cur[at:at + n] += weight[k:k + n]``; ``recv[blk:blk + blocks] = 1`` (one vectorized loop each)."""
    for q in range(n):
        cur[at + q] += weight[k + q]
    for q in range(blocks):
        recv[blk + q] = 1


@njit(cache=True, nogil=True)
def _integrate(v: np.ndarray, cur: np.ndarray, th: np.ndarray, vr: np.ndarray, spk: np.ndarray, lim: np.ndarray,
               stats: np.ndarray, uniform: bool, count: bool) -> int:  # pragma: no cover - compiled
    """One integer IF step of one population, in place: ``h = v + cur``; spike iff ``h > θ``; reset; ``cur = 0``.

    One branch-free pass in the state dtype, so it vectorizes; the two flags are loop-invariant
    (the compiler makes one loop per case): ``uniform`` reads θ and the reset once, not per
    neuron; ``count`` counts ``h`` beyond 24-bit signed, which costs as much again and is asked
    for only when the bounds cannot rule it out. Adds to ``stats[2]`` (overflow) and folds
    max/min ``h`` into ``stats[3:5]``; returns this step's min ``h``.
    """
    vmin, vmax, hmax, hmin = lim[0], lim[1], lim[2], lim[3]
    th0, vr0 = th[0], vr[0]
    overflow = 0
    for j in range(v.size):
        v[j] += cur[j]
        h = v[j]
        cur[j] = 0
        hmax = max(hmax, h)
        hmin = min(hmin, h)
        if count:
            overflow += (h < vmin) | (h > vmax)
        s = h > (th0 if uniform else th[j])
        v[j] = (vr0 if uniform else vr[j]) if s else h
        spk[j] = s
    stats[2] += overflow
    stats[3] = max(stats[3], hmax)
    stats[4] = min(stats[4], hmin)
    return hmin


@njit(cache=True, nogil=True)
def _active(recv: np.ndarray, blocks: int, grain: int, ev: np.ndarray, n_ev: int) -> int:  # pragma: no cover
    """Active updates of one population and step: neurons of received blocks, plus spikers outside them.

    ``recv[:blocks]`` marks received blocks of ``grain`` neurons; ``ev[:n_ev]`` are the spikers in
    increasing order, so one walk pairs them with their blocks (no division).
    """
    received = 0
    for g in range(blocks):
        received += recv[g]
    active = received * grain
    if received < blocks:
        g, end = 0, grain
        for e in range(n_ev):
            j = ev[e]
            while j >= end:
                g += 1
                end += grain
            active += recv[g] == 0
    return active


@njit(cache=True, nogil=True)
def _readout(cur: np.ndarray, row: np.ndarray, gather: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """The Output's value: its current (float64), plus each passthrough population's spikes in turn."""
    for j in range(cur.size):
        x = float(cur[j])
        for g in range(gather.shape[0]):
            x += row[gather[g, j]]
        out[j] = x


@njit(cache=True, nogil=True)
def _copy(dst: np.ndarray, src: np.ndarray, lo: int, hi: int) -> None:  # pragma: no cover - compiled
    """``dst[lo:hi] = src[lo:hi]`` as a plain loop (numba's slice assignment is several times slower)."""
    for j in range(np.uint64(lo), np.uint64(hi)):
        dst[j] = src[j]


@njit(cache=True, nogil=True)
def _fill(dst: np.ndarray, lo: int, hi: int) -> None:  # pragma: no cover - compiled
    """``dst[lo:hi] = 0`` as a plain loop."""
    for j in range(np.uint64(lo), np.uint64(hi)):
        dst[j] = 0


@njit(cache=True, nogil=True)
def _run_fast(flags: np.ndarray, values: np.ndarray, analog: bool, pops: np.ndarray, conns: np.ndarray, rows: np.ndarray, runs: np.ndarray,
              weight: np.ndarray, bias: np.ndarray,
              th: np.ndarray, vr: np.ndarray, lim: np.ndarray, bounds: np.ndarray, gather: np.ndarray, spk: np.ndarray,
              out: np.ndarray, stats: np.ndarray, synops: np.ndarray) -> None:  # pragma: no cover - compiled
    """Simulate rows of a batch, every step and population, on a :class:`FastNet` (one call, no Python per step).

    ``flags`` ``[B, T, n_in (padded)]`` uint8: nonzero inputs (the input events); ``values``
    ``[B, T, n_in]``: their integer values when ``analog`` (else unread); ``spk`` ``[B, T, n]`` uint8 receives
    every population's spikes (internal order), ``out`` ``[T, B, n_out]`` the Output's values;
    ``stats`` ``[populations, 5]`` (spikes, active updates, overflow, max h, min h) and ``synops``
    ``[connections]`` are added to. A row runs all its steps before the next row (rows are
    independent), so its state stays in cache.
    """
    n_pop, n, n_in = pops.shape[0], spk.shape[2], flags.shape[2]
    v = np.zeros(n, dtype=bias.dtype)
    cur = np.zeros(n, dtype=bias.dtype)  # zero between steps: a step adds into it, the update clears it
    recv = np.zeros(n, dtype=np.uint8)  # per population: one byte per receive block, from its offset
    ev = np.zeros(n + n_in, dtype=np.int64)
    cnt = np.zeros(n_pop + 1, dtype=np.int64)
    floor = np.zeros(n_pop, dtype=np.int64)  # per population: a lower bound of the membranes so far
    for b in range(flags.shape[0]):
        _fill(v, 0, n)
        floor[:] = bounds[:, 0]
        for step in range(flags.shape[1]):
            cnt[n_pop] = _compact(flags[b, step], 0, n_in, ev, n)
            row = spk[b, step]
            for q in range(n_pop):
                lo, size, grain = pops[q, 0], pops[q, 1], pops[q, 5]
                hi = lo + size
                if pops[q, 7]:
                    _copy(cur, bias, lo, hi)
                _fill(recv, lo, lo + size // grain)
                for c in range(pops[q, 3], pops[q, 4]):
                    if analog and conns[c, 0] == n_pop:  # from the Input, analog: value × weight
                        synops[c] += _add_runs_scaled(ev, conns[c, 1], cnt[n_pop], conns[c, 2], rows, runs, weight,
                                                      cur, recv, values[b, step])
                    else:
                        synops[c] += _add_runs(ev, conns[c, 1], cnt[conns[c, 0]], conns[c, 2], rows, runs, weight, cur,
                                               recv)
                if pops[q, 2]:
                    _readout(cur[lo:hi], row, gather, out[step, b])
                    _fill(cur, lo, hi)
                    continue
                count = floor[q] - bounds[q, 2] < lim[0] or bounds[q, 1] + bounds[q, 2] > lim[1]
                h_min = _integrate(v[lo:hi], cur[lo:hi], th[lo:hi], vr[lo:hi], row[lo:hi], lim, stats[q],
                                   pops[q, 6] != 0, count)
                floor[q] = min(floor[q], h_min)
                cnt[q] = _compact(row, lo, lo + (size + 7) // 8 * 8, ev, lo)
                stats[q, 0] += cnt[q]
                stats[q, 1] += _active(recv[lo:], size // grain, grain, ev[lo:], cnt[q])


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
    :class:`FastNet`) unless ``fast=False``; both paths give the same bits and counts.
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
    input_max = float(np.abs(seq).max(initial=0.0))
    net = plan.fast if fast and (not analog or np.array_equal(seq, np.round(seq))) else None
    dtype = net.dtype(t, input_max) if net is not None else None
    bar = progress_bar(total=t * ((b + chunk - 1) // chunk), desc="simulate", unit="step", enabled=progress)
    workers = max(1, min(torch.get_num_threads(), chunk))
    with ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        if net is not None and dtype is not None:
            spikes = _simulate_fast(plan, net, dtype, seq, analog, input_max, chunk, pool, workers, integer, layers,
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


def _simulate_fast(plan: Plan, net: FastNet, dtype: type, seq: np.ndarray, analog: bool, input_max: float, chunk: int,
                   pool, workers: int, integer: bool, layers: dict[str, LayerStats], neurons: dict[str, NeuronStats],
                   out_seq: np.ndarray, bar) -> dict[str, torch.Tensor]:
    """Spike or integer analog input on a :class:`FastNet`: one compiled call per thread and chunk;
    returns spikes (NCHW views)."""
    t, b, n_in = seq.shape
    flags = np.zeros((b, t, -(-n_in // 8) * 8), dtype=np.uint8)  # padded: scanned 8 bytes at a time
    flags[:, :, :n_in] = (seq != 0).transpose(1, 0, 2)  # the events are the nonzero entries
    values = (np.ascontiguousarray(seq.transpose(1, 0, 2)).astype(dtype) if analog
              else np.zeros((b, t, 0), dtype=dtype))
    spk = np.zeros((b, t, net.n), dtype=np.uint8)
    args = list(net.arrays(dtype))
    args[9] = np.stack([net.v_lo, net.v_hi, net.reach(input_max)], axis=1).astype(np.int64)  # bounds at these inputs

    def job(rows: tuple[int, int]) -> tuple[int, np.ndarray, np.ndarray]:
        r0, r1 = rows
        stats = np.zeros((len(net.names), 5), dtype=np.int64)
        stats[:, 3], stats[:, 4] = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        synops = np.zeros(len(net.conn_names), dtype=np.int64)
        _run_fast(flags[r0:r1], values[r0:r1], analog, *args, spk[r0:r1], out_seq[:, r0:r1], stats, synops)
        return r1 - r0, stats, synops

    for lo in range(0, b, chunk):
        parts = _parts(lo, min(lo + chunk, b), workers)
        for rows, stats, synops in ([job(parts[0])] if len(parts) == 1 else list(pool.map(job, parts))):
            _merge_fast(net, rows * t, integer, stats, synops, layers, neurons)
            if analog:  # the first layer's events are MACs of analog input: effective, and dense beside them
                for lay in layers.values():
                    if lay.analog:
                        lay.macs_effective, lay.synops = lay.macs_effective + lay.synops, 0
                        lay.macs_dense += lay.synapses * rows * t
        bar.update(t)
    return {n: _public_spikes(spk, net, n, plan.shape[n]) for n in neurons}


def _merge_fast(net: FastNet, updates_per_neuron: int, integer: bool, stats: np.ndarray, synops: np.ndarray,
                layers: dict[str, LayerStats], neurons: dict[str, NeuronStats]) -> None:
    """Add one fast-path part's raw counters into the totals (as :func:`_merge` does for the general path)."""
    for name, ops in zip(net.conn_names, synops):
        layers[name].synops += int(ops)
    for q, name in enumerate(net.names):
        st = neurons.get(name)
        if st is None:
            continue
        spikes, active, overflow, hmax, hmin = (int(v) for v in stats[q])
        st.spikes += spikes
        st.active_updates += active
        st.updates += st.size * updates_per_neuron
        if integer:
            st.overflow += overflow
        if st.size and hmax >= hmin:
            st.max_abs_membrane = max(st.max_abs_membrane, float(hmax), -float(hmin))


def _public_spikes(spk: np.ndarray, net: FastNet, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """One population's spikes ``[T, B, *shape]`` as a view of the fast path's ``[B, T, n]`` internal buffer."""
    q = net.names.index(name)
    off, size = int(net.pops[q, 0]), int(net.pops[q, 1])
    part = spk[:, :, off:off + size]
    if len(shape) == 3:  # stored channels-last: (H, W, C) → (C, H, W)
        return torch.from_numpy(part.reshape(*spk.shape[:2], shape[1], shape[2], shape[0])).permute(1, 0, 4, 2, 3)
    return torch.from_numpy(part.reshape(*spk.shape[:2], *shape)).transpose(0, 1)


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
