"""The reference simulator's integer fast path: exact integer graphs, vectorized event delivery.

When every connection is exact (integer weights and biases, sums provably exact: any order of
addition gives the same bits) and every IF neuron has r = 1 and an integer reset, a whole
simulation is integer arithmetic, with spike input or an integer-valued analog first layer (a
direct-encoded integer graph's input). :class:`FastNet` then stores (C, H, W) populations
channels-last (position-major: index (y·W + x)·C + c), so that a spike through a convolution
adds, per kernel row, one contiguous run of kw·C_out weights: delivery becomes vectorizable runs
of integer adds instead of scattered float read-add-writes, and every step of every population
runs in one compiled call per thread (:func:`_run_fast`). Spikes and every counter are
bit-identical with the general path of :mod:`kdsnn.deploy.simulator` (tests compare the two);
only the internal order of neurons differs, and the spike tensors handed back are permuted views
in the public (C, H, W) order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np
import scipy.sparse as sp
import torch
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from .simulator import (_SPIKES, V_MAX, V_MIN, Connection, LayerStats, NeuronStats, Plan, _exact, _param, _parts,
                        row_patterns)

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


# ----------------------------------------------------------------------------- kernels

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
              cur: np.ndarray, recv: np.ndarray, values: np.ndarray, scaled: bool) -> int:  # pragma: no cover - compiled
    """Add the weights of sources ``ev[e_lo:e_lo + n_ev]`` into ``cur`` run by run; mark their blocks in ``recv``.

    Tables as :func:`_concat` lays them out. A run is a contiguous slice of targets and of
    weights, so its loop vectorizes (integer adds: any order gives the same sums). Unsigned
    indices spare numba's negative-index wraparound. ``scaled``: the source is analog (an
    integer-valued first layer) and each event adds ``values[source] · weight``; the count
    returned is then its effective MACs. Returns the SynOps (structural synapses reached).
    """
    synops = 0
    for e in range(e_lo, e_lo + n_ev):
        src = ev[e]
        i = row_lo + src
        at, blk = np.uint64(rows[i, 0]), np.uint64(rows[i, 1])
        synops += rows[i, 7]
        if scaled:
            value = values[src]
            _add_run_scaled(cur, at, weight, np.uint64(rows[i, 2]), np.uint64(rows[i, 3]), recv, blk,
                            np.uint64(rows[i, 4]), value)
            for r in range(rows[i, 5], rows[i, 6]):
                _add_run_scaled(cur, at + np.uint64(runs[r, 0]), weight, np.uint64(runs[r, 1]), np.uint64(runs[r, 2]),
                                recv, blk + np.uint64(runs[r, 3]), np.uint64(runs[r, 4]), value)
        else:
            _add_run(cur, at, weight, np.uint64(rows[i, 2]), np.uint64(rows[i, 3]), recv, blk, np.uint64(rows[i, 4]))
            for r in range(rows[i, 5], rows[i, 6]):
                _add_run(cur, at + np.uint64(runs[r, 0]), weight, np.uint64(runs[r, 1]), np.uint64(runs[r, 2]), recv,
                         blk + np.uint64(runs[r, 3]), np.uint64(runs[r, 4]))
    return synops


@njit(cache=True, nogil=True, inline="always")
def _add_run(cur: np.ndarray, at: np.uint64, weight: np.ndarray, k: np.uint64, n: np.uint64, recv: np.ndarray,
             blk: np.uint64, blocks: np.uint64) -> None:  # pragma: no cover - compiled
    """``cur[at:at + n] += weight[k:k + n]``; ``recv[blk:blk + blocks] = 1`` (one vectorized loop each)."""
    for q in range(n):
        cur[at + q] += weight[k + q]
    for q in range(blocks):
        recv[blk + q] = 1


@njit(cache=True, nogil=True, inline="always")
def _add_run_scaled(cur: np.ndarray, at: np.uint64, weight: np.ndarray, k: np.uint64, n: np.uint64, recv: np.ndarray,
                    blk: np.uint64, blocks: np.uint64, value) -> None:  # pragma: no cover - compiled
    """``cur[at:at + n] += value · weight[k:k + n]``; ``recv[blk:blk + blocks] = 1``. Kept apart from
    :func:`_add_run`: one leaf taking a ``scaled`` flag measured 3–4× slower on spikes (its loops
    stopped vectorizing)."""
    for q in range(n):
        cur[at + q] += value * weight[k + q]
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
                    synops[c] += _add_runs(ev, conns[c, 1], cnt[conns[c, 0]], conns[c, 2], rows, runs, weight, cur,
                                           recv, values[b, step], analog and conns[c, 0] == n_pop)
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


# ----------------------------------------------------------------------------- driver

def simulate_fast(plan: Plan, net: FastNet, dtype: type, seq: np.ndarray, analog: bool, input_max: float, chunk: int,
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
        bar.update(t)
    return {n: _public_spikes(spk, net, n, plan.shape[n]) for n in neurons}


def _merge_fast(net: FastNet, updates_per_neuron: int, integer: bool, stats: np.ndarray, synops: np.ndarray,
                layers: dict[str, LayerStats], neurons: dict[str, NeuronStats]) -> None:
    """Add one fast-path part's raw counters into the totals (as :func:`_merge` does for the general path).

    An analog first layer's events are MACs: effective ones, with the dense count beside them."""
    for name, ops in zip(net.conn_names, synops):
        lay = layers[name]
        if lay.analog:
            lay.macs_effective += int(ops)
            lay.macs_dense += lay.synapses * updates_per_neuron
        else:
            lay.synops += int(ops)
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
