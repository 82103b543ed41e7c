"""The reference simulator's integer fast path: exact integer graphs, vectorized event delivery.

When every connection is exact (integer weights and biases, sums provably exact: any order of
addition gives the same bits) and every IF neuron is integer-exact (r·dt = 1, integer reset), a
whole simulation is integer arithmetic, with spike input or an integer-valued analog first layer
(a direct-encoded integer graph's input). :class:`FastNet` then stores (C, H, W) populations
channels-last (position-major: index (y·W + x)·C + c), so that a spike through a convolution
adds, per kernel row, one contiguous run of kw·C_out weights read from the kernel itself:
delivery becomes vectorizable runs of integer adds instead of scattered float read-add-writes,
and every step of every population runs in one compiled call per thread
(:func:`kdsnn.deploy.simulator.fast_kernels._run_fast`). Spikes and every counter are bit-identical with
the general path (:mod:`kdsnn.deploy.simulator.general`; tests compare the two); only the internal
order of neurons differs, and the spike tensors handed back are permuted views in the public
(C, H, W) order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from .fast_kernels import P_CONN_HI, P_CONN_LO, P_OFF, P_SIZE, R_SYNOPS, S_HMAX, S_HMIN, _run_fast
from .kernels import V_MAX, V_MIN
from .results import LayerStats, NeuronStats, SimState, parts
from .tables import Tables, channels_last, exact

if TYPE_CHECKING:  # the plan builds a FastNet; this module only reads it
    from .plan import Plan

INT_DTYPES = ((np.int32, 2.0 ** 31 - 1), (np.int64, 2.0 ** 52))  # state dtypes, and the |value| each holds exactly
WINDOW_BYTES = 64 * 2 ** 20  # per worker: the events of the steps a population runs in a row (see FastNet.window)
SUB_BATCH = 8  # at most this many rows run side by side, so they share each connection's tables in cache
EVENT_BYTES = 4  # one entry of _run_fast's event lists (int32)


def _uniform(model, n: int) -> bool:
    """Whether an IF population has one θ and one reset for all its neurons (the update then reads scalars)."""
    if model is None or n == 0:
        return False
    th, vr = np.broadcast_to(model.threshold, (n,)), np.broadcast_to(model.v_reset, (n,))
    return bool((th == th[0]).all() and (vr == vr[0]).all())


def _concat(tables: list[Tables], offsets: list[int], grains: list[int]) -> tuple[np.ndarray, ...]:
    """All connections' tables as records with global indices (connection ``i`` targets ``offsets[i]``).

    Returns ``(rows, runs, weight, shape)``, laid out so that a spike reads few cache lines, none of
    them through another: ``rows[i] = (first target, first receive block, weight index, length
    and blocks of the pattern's first run, its other runs' range in runs, SynOps)`` per source
    row (a target's blocks are numbered from its offset; the first run starts at the first
    target), so a one-run row (a dense layer's) needs nothing else; ``runs[r] = (target offset
    from the row's first, weight index, length, block offset, blocks, 0, 0, 0)``; ``weight`` integers;
    ``shape[i]``: equal for two rows of one connection iff they reach the same targets (the same first
    target and run geometry; only their weights differ), so their events can be added together.
    """
    run_off = np.cumsum([0] + [t.run_k.size for t in tables])
    w_off = np.cumsum([0] + [t.weight.size for t in tables])
    rows, runs, shape = [], [], []
    for t, o, g, ro, wo in zip(tables, offsets, grains, run_off[:-1], w_off[:-1], strict=True):
        lo, hi = t.rptr[:-1][t.pattern], t.rptr[1:][t.pattern]  # per row: its pattern's runs
        has = hi > lo
        first_run = _first_runs(t, np.where(has, lo, 0), has, g)
        first_run[0] = np.where(has, first_run[0] + wo, 0)
        rows.append(np.stack([t.first + o, t.first // g + o, *first_run, np.where(has, lo + 1, lo) + ro, hi + ro,
                              t.fan[t.pattern]], axis=1))
        runs.append(np.stack([t.run_at, t.run_k + wo, t.run_len, t.run_at // g, t.run_len // g] + [0 * t.run_k] * 3,
                             axis=1))
        shape.append(_target_shapes(t))

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.zeros((0, 8), np.int64)] + parts).astype(np.int64)

    weight = np.concatenate([np.zeros(0, np.int8)] + [t.weight for t in tables])  # integers, narrowest common type
    shape = np.concatenate([np.zeros(0, np.int64)] + shape)
    return cat(rows), cat(runs), weight, shape


def _target_shapes(t: Tables) -> np.ndarray:
    """Per source row: an id of the targets it reaches (first target and its pattern's run starts and
    lengths), equal for two rows iff they reach the same targets: in a convolution from a channels-last
    map, the input channels at one position (consecutive sources) share it."""
    ids: dict[tuple[bytes, bytes], int] = {}
    per_pattern = np.empty(t.rptr.size - 1, np.int64)
    for p in range(per_pattern.size):
        lo, hi = t.rptr[p], t.rptr[p + 1]
        per_pattern[p] = ids.setdefault((t.run_at[lo:hi].tobytes(), t.run_len[lo:hi].tobytes()), len(ids))
    if not t.pattern.size:
        return np.zeros(0, np.int64)
    return np.unique(t.first.astype(np.int64) * max(len(ids), 1) + per_pattern[t.pattern], return_inverse=True)[1]


def _first_runs(t: Tables, first: np.ndarray, has: np.ndarray, grain: int) -> list[np.ndarray]:
    """Per row: weight index, length and receive blocks of its first run (zeros for rows without runs)."""
    if not t.run_k.size:
        return [np.zeros(first.size, np.int64) for _ in range(3)]
    return [np.where(has, t.run_k[first], 0), np.where(has, t.run_len[first], 0),
            np.where(has, t.run_len[first] // grain, 0)]


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
    output: str
    passthrough: list[str]           # populations whose spikes the Output adds (see Plan)
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
        view, names = plan.view, plan.populations
        incoming = {n: plan.incoming(n) for n in names}
        for n in names:
            bias = plan.target_bias[n]
            if not (np.isfinite(bias).all() and (bias == np.round(bias)).all()):
                return None
            if incoming[n] and not exact(bias, incoming[n]):
                return None
            if n in view.models and (not view.models[n].integer_exact() or view.models[n].reset != "hard"):
                return None  # the compiled integer update resets to v_reset; a soft reset runs the general path
        hwc = {n: n in view.models and len(plan.shape[n]) == 3 for n in names}
        hwc[plan.input] = False
        pos = {n: channels_last(plan.shape[n]) if hwc[n] else np.arange(view.size(n), dtype=np.int64) for n in names}
        sizes = [view.size(n) for n in names]
        offs = np.concatenate([[0], np.cumsum([-(-s // 8) * 8 for s in sizes])]).astype(np.int64)
        index = {n: i for i, n in enumerate(names)}
        index[plan.input] = len(names)
        pops, conns, conn_names, tables, t_offs, t_grains = [], [], [], [], [], []
        for i, n in enumerate(names):
            c_lo = len(conns)
            mine = [_integer(c.tables(hwc[c.source], hwc[n]).unit_step()) for c in incoming[n]]
            grain = int(np.gcd.reduce([sizes[i]] + [t.grain() for t in mine])) or 1
            for c, t in zip(incoming[n], mine, strict=True):
                conns.append((index[c.source], int(offs[index[c.source]]), sum(t_.pattern.size for t_ in tables)))
                conn_names.append(c.name)
                tables.append(t)
                t_offs.append(int(offs[i]))
                t_grains.append(grain)
            uniform = _uniform(view.models.get(n), sizes[i])
            pops.append((int(offs[i]), sizes[i], int(n == plan.output), c_lo, len(conns), grain, int(uniform),
                         int(np.any(plan.target_bias[n] != 0))))
        return FastNet._assemble(plan, pos, offs, pops, conns, conn_names, _concat(tables, t_offs, t_grains), incoming)

    @staticmethod
    def _assemble(plan: Plan, pos: dict[str, np.ndarray], offs: np.ndarray, pops: list, conns: list,
                  conn_names: list[str], tables: tuple[np.ndarray, ...], incoming: dict[str, list]) -> FastNet | None:
        """Per-neuron parameters in internal order, the Output's passthrough gather, and the bounds."""
        names, view, n = plan.populations, plan.view, int(offs[-1])
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
            model = view.models.get(name)
            if model is not None:
                t_ = np.floor(np.broadcast_to(model.threshold, (b.size,)))
                r_ = np.broadcast_to(model.v_reset, (b.size,))
                if max(np.abs(t_).max(initial=0.0), np.abs(r_).max(initial=0.0)) >= INT_DTYPES[-1][1]:
                    return None
                th[at], vr[at] = t_, r_
                v_lo[i] = min(0.0, r_.min(initial=0.0), t_.min(initial=0.0))  # θ itself must fit too
                v_hi[i] = max(0.0, t_.max(initial=0.0), r_.max(initial=0.0))
        out = names.index(plan.output)
        gather = np.array([offs[names.index(p)] + pos[p] for p in plan.passthrough], dtype=np.int64)
        gather = gather.reshape(len(plan.passthrough), plan.target_bias[plan.output].size)
        v_hi[out] = len(plan.passthrough)  # the Output adds each passthrough spike (0 or 1) to its current
        return FastNet(list(names), plan.output, list(plan.passthrough), pos,
                       np.array(pops, dtype=np.int64).reshape(-1, 8),
                       np.array(conns, dtype=np.int64).reshape(-1, 3), conn_names, n, tables, bias, th, vr, gather,
                       cur_bound, v_lo, v_hi, in_reach)

    def window(self, timesteps: int, n_in: int) -> int:
        """Steps each population runs before the next one starts (:func:`_run_fast`): all ``timesteps`` when
        every population is fed only by earlier ones and the Input (and the events of that many steps fit
        in :data:`WINDOW_BYTES`), else 1 (step by step: a recurrent graph)."""
        feeds_back = any(int(c[0]) >= q and int(c[0]) != len(self.names)
                         for q, row in enumerate(self.pops) for c in self.conns[row[P_CONN_LO]:row[P_CONN_HI]])
        out = self.names.index(self.output)
        if feeds_back or any(self.names.index(p) > out for p in self.passthrough):
            return 1
        return int(min(timesteps, max(1, WINDOW_BYTES // (8 * (self.n + n_in)))))

    def side_by_side(self, window: int, n_in: int) -> int:
        """Rows :func:`_run_fast` runs side by side (up to :data:`SUB_BATCH`): each holds the event lists of
        ``max(window, 2)`` steps, and all of them together stay within :data:`WINDOW_BYTES` per worker."""
        per_row = EVENT_BYTES * max(window, 2) * (self.n + n_in)
        return int(min(SUB_BATCH, max(1, WINDOW_BYTES // per_row)))

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

    def arrays(self, dtype: type, input_max: float = 1.0) -> tuple[np.ndarray, ...]:
        """The kernel's arguments after the input flags, state-valued arrays in ``dtype`` (cached), with the
        membrane bounds (``B_LO``, ``B_HI``, ``B_REACH`` per population) at inputs up to ``input_max``.

        Tables are int32 records (int64 when the indices need it); weights take the narrowest
        integer type that holds them.
        """
        if dtype not in self._cache:
            rows, runs, weight, shape = self.tables
            largest = max(self.n, weight.size, runs.shape[0], int(rows[:, R_SYNOPS].max(initial=0)), rows.shape[0])
            index = np.int32 if largest < 2 ** 31 else np.int64
            lim = np.array([V_MIN, V_MAX, np.iinfo(dtype).min, np.iinfo(dtype).max], dtype=dtype)
            self._cache[dtype] = (rows.astype(index), runs.astype(index), weight.astype(_narrowest(weight, dtype)),
                                  shape.astype(index), self.bias.astype(dtype), self.th.astype(dtype),
                                  self.vr.astype(dtype), lim)
        rows, runs, weight, shape, bias, th, vr, lim = self._cache[dtype]
        bounds = np.stack([self.v_lo, self.v_hi, self.reach(input_max)], axis=1).astype(np.int64)
        return self.pops, self.conns, rows, runs, weight, shape, bias, th, vr, lim, bounds, self.gather


def _integer(t: Tables) -> Tables:
    """The tables with integer weights (the plan checked they are integers) in the narrowest type that holds them."""
    w = t.weight.astype(np.int64)
    return Tables(t.pattern, t.first, t.rptr, t.run_at, t.run_len, t.run_k, t.run_step,
                  w.astype(_narrowest(w, np.int64)))


# ----------------------------------------------------------------------------- driver

@dataclass
class FastInput:
    """The input of one fast-path run: nonzero flags ``[B, T, n_in (padded)]`` and their integer values."""

    flags: np.ndarray
    values: np.ndarray
    analog: bool
    input_max: float
    timesteps: int


def fast_input(seq: np.ndarray, analog: bool, dtype: type, input_max: float) -> FastInput:
    """``seq`` ``[T, B, n_in]`` as the fast path reads it (events = nonzero entries, rows padded to 8 bytes)."""
    t, b, n_in = seq.shape
    flags = np.zeros((b, t, -(-n_in // 8) * 8), dtype=np.uint8)  # padded: scanned 8 bytes at a time
    flags[:, :, :n_in] = (seq != 0).transpose(1, 0, 2)
    values = (np.ascontiguousarray(seq.transpose(1, 0, 2)).astype(dtype) if analog
              else np.zeros((b, t, 0), dtype=dtype))
    return FastInput(flags, values, analog, input_max, t)


def simulate_fast(plan: Plan, net: FastNet, dtype: type, inp: FastInput, state: SimState) -> dict[str, torch.Tensor]:
    """Spike or integer analog input on a :class:`FastNet`: one compiled call per thread and chunk; fills
    ``state``'s counters and Output sequence and returns spikes (NCHW views)."""
    b, t = inp.flags.shape[0], inp.timesteps
    spk = np.zeros((b, t, net.n), dtype=np.uint8)
    args = net.arrays(dtype, inp.input_max)
    window = net.window(t, inp.flags.shape[2])
    side = net.side_by_side(window, inp.flags.shape[2])

    def job(rows: tuple[int, int]) -> tuple[int, np.ndarray, np.ndarray]:
        r0, r1 = rows
        stats = np.zeros((len(net.names), 5), dtype=np.int64)
        stats[:, S_HMAX], stats[:, S_HMIN] = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        synops = np.zeros(len(net.conn_names), dtype=np.int64)
        _run_fast(inp.flags[r0:r1], inp.values[r0:r1], inp.analog, *args, window, side, spk[r0:r1],
                  state.out_seq[:, r0:r1], stats, synops)
        return r1 - r0, stats, synops

    for lo in range(0, b, state.chunk):
        ranges = parts(lo, min(lo + state.chunk, b), state.workers)
        for rows, stats, synops in ([job(ranges[0])] if len(ranges) == 1 else list(state.pool.map(job, ranges))):
            _merge_fast(net, rows * t, state.integer, stats, synops, state.layers, state.neurons)
        state.bar.update(t)
    return {n: _public_spikes(spk, net, n, plan.shape[n]) for n in state.neurons}


def _merge_fast(net: FastNet, updates_per_neuron: int, integer: bool, stats: np.ndarray, synops: np.ndarray,
                layers: dict[str, LayerStats], neurons: dict[str, NeuronStats]) -> None:
    """Add one fast-path part's raw counters into the totals (as the general path's merge does).

    An analog first layer's events are MACs: effective ones, with the dense count beside them."""
    for name, ops in zip(net.conn_names, synops, strict=True):
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
    off, size = int(net.pops[q, P_OFF]), int(net.pops[q, P_SIZE])
    part = spk[:, :, off:off + size]
    if len(shape) == 3:  # stored channels-last: (H, W, C) → (C, H, W)
        return torch.from_numpy(part.reshape(*spk.shape[:2], shape[1], shape[2], shape[0])).permute(1, 0, 4, 2, 3)
    return torch.from_numpy(part.reshape(*spk.shape[:2], *shape)).transpose(0, 1)
