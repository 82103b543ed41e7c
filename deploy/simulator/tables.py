"""The simulator's connection tables: what one spike reaches, in the form every path reads.

:class:`Tables` stores a connection's synapses as shared patterns (runs of targets with the
weights they take) plus, per source, its pattern and first target; :mod:`kdsnn.deploy.simulator.connect`
builds them from kernels, :mod:`kdsnn.deploy.simulator.sparse` from explicit matrices. :func:`exact`
says when integer currents are exact in any order of addition (the condition of exact delivery).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np


def channels_last(shape: tuple[int, ...]) -> np.ndarray:
    """Internal position of each element (original C-order index) of a population of ``shape``:
    (C, H, W) populations go channels-last, any other shape keeps its order."""
    n = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(n, dtype=np.int64)
    c, h, w = shape
    return np.arange(n, dtype=np.int64).reshape(h, w, c).transpose(2, 0, 1).ravel()


@dataclass
class Tables:
    """A connection's synapses in target-local indices (see the module docstring).

    Source ``i`` reaches, for each run ``r`` of pattern ``p = pattern[i]`` (``rptr[p]:rptr[p + 1]``),
    the targets ``first[i] + run_at[r] + q·run_step[r]`` for ``q < run_len[r]``, with weights
    ``weight[run_k[r] + q]``. A source reaches each of its targets once; the strided runs of one
    pattern (a conv's taps over its output channels in C-order) share one length and step.
    """

    pattern: np.ndarray
    first: np.ndarray
    rptr: np.ndarray
    run_at: np.ndarray
    run_len: np.ndarray
    run_k: np.ndarray
    run_step: np.ndarray
    weight: np.ndarray
    kbase: np.ndarray | None = None  # per source: added to its runs' weight indices (None: 0)

    @property
    def kbases(self) -> np.ndarray:
        """Per source weight offset (zeros when the runs' weight indices are absolute)."""
        return np.zeros(self.pattern.size, np.int64) if self.kbase is None else self.kbase

    @cached_property
    def fan(self) -> np.ndarray:
        """Structural synapses of each pattern (the SynOps one event through it costs)."""
        cs = np.concatenate([[0], np.cumsum(self.run_len)]).astype(np.int64)
        return cs[self.rptr[1:]] - cs[self.rptr[:-1]]

    @property
    def synapses(self) -> int:
        return int(self.fan[self.pattern].sum())

    def unit_step(self) -> Tables:
        """The same synapses with every run contiguous (strided runs split into single targets)."""
        split = (self.run_step != 1) & (self.run_len > 1)
        if not split.any():
            return self
        n = np.where(split, self.run_len, 1)
        starts = np.repeat(np.cumsum(n) - n, n)
        q = np.arange(int(n.sum())) - starts
        run = np.repeat(np.arange(n.size), n)
        sp_ = split[run]
        at = self.run_at[run] + np.where(sp_, q * self.run_step[run], 0)
        k = self.run_k[run] + np.where(sp_, q, 0)
        length = np.where(sp_, 1, self.run_len[run])
        rptr = np.concatenate([[0], np.cumsum(n)])[self.rptr]
        return Tables(self.pattern, self.first, rptr, at, length, k, np.ones_like(length), self.weight, self.kbase)

    def grain(self) -> int:
        """The largest block size dividing every first target and run start and length (0: none)."""
        return int(np.gcd.reduce(np.concatenate([self.first, self.run_at, self.run_len, [0]]).astype(np.int64)))

    def relocated(self, index: np.ndarray | None, src_pos: np.ndarray | None) -> Tables:
        """Tables over the sources of a connection whose source ``f`` (C-order) meets the op at ``index[f]``
        (−1: reaches nothing; None: the identity), renumbered to internal positions ``src_pos``."""
        pattern, first, rptr, kbase = self.pattern, self.first, self.rptr, self.kbase
        if index is not None:
            empty = rptr.size - 1
            rptr = np.append(rptr, rptr[-1])
            ok = index >= 0
            at = np.where(ok, index, 0)
            pattern = np.where(ok, pattern[at], empty)
            first = np.where(ok, first[at], 0)
            kbase = None if kbase is None else np.where(ok, kbase[at], 0)
        if src_pos is not None:
            p, f = np.empty_like(pattern), np.empty_like(first)
            p[src_pos], f[src_pos] = pattern, first
            pattern, first = p, f
            if kbase is not None:
                kb = np.empty_like(kbase)
                kb[src_pos] = kbase
                kbase = kb
        return Tables(pattern, first, rptr, self.run_at, self.run_len, self.run_k, self.run_step, self.weight, kbase)


class Connection(Protocol):
    """What the plan and both paths read of a connection (:class:`KernelConnection`, or the sparse fallback)."""

    name: str
    source: str
    target: str

    def tables(self, src_hwc: bool = False, tgt_hwc: bool = False, shared: bool = False) -> Tables: ...

    @property
    def synapses(self) -> int: ...

    @property
    def integral(self) -> bool: ...

    @property
    def abs_fanin(self) -> np.ndarray: ...


EXACT_BOUND = 2.0 ** 52  # |current| below this: integer float64 sums are exact in any order


def exact(bias: np.ndarray, conns: list[Connection]) -> bool:
    """Whether a target's spike-driven currents are integer sums below :data:`EXACT_BOUND` (bias included),
    so any order of addition gives the same bits."""
    if not conns or any(not c.integral for c in conns):
        return False
    if not (np.isfinite(bias).all() and (bias == np.round(bias)).all()):
        return False
    bound = np.abs(bias) + sum(c.abs_fanin for c in conns)
    return bool(bound.size == 0 or bound.max() < EXACT_BOUND)
