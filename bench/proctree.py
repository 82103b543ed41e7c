"""Memory of a whole process tree (a command and every process it forks), sampled from /proc.

Lava runs every process of a network as a forked OS process, so one process's peak RSS (what
``/usr/bin/time -v`` reports: the largest single child) says little. :class:`TreeSampler` polls
the tree and keeps the peak of two sums: RSS (every page each process maps, shared ones counted in
each process: an upper bound) and PSS (each shared page split among its sharers: what the tree
really holds in memory). Linux only; no dependencies. ``python -m bench.proctree COMMAND ...`` runs a
command and prints its tree's peaks.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every task's ``children`` file under /proc/PID/task)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(c) for c in fh.read().split()]
    except OSError:  # the process ended while we looked
        pass
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _rss_kb(pid: int) -> int:
    """RSS of one process in kB from /proc/PID/statm (a counter: cheap), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:
        return 0


def _pss_kb(pid: int) -> int:
    """PSS of one process in kB, 0 if it is gone. The kernel walks the process's page tables for it: costly
    for many large processes, so :class:`TreeSampler` spaces these reads out."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class TreePeak:
    """Peaks of a process tree, in GiB, and the largest number of processes seen at once."""

    rss_gb: float = 0.0
    pss_gb: float = 0.0
    processes: int = 0


class TreeSampler:
    """Poll the tree under ``pid`` in a thread until :meth:`stop`; ``peak`` holds the peaks.

    RSS is read every ``interval`` s; PSS (a page-table walk of every process: with 70 Lava processes of
    0.9 GB mapped each, a large share of a core when read every 0.25 s) at most every ``interval`` s and
    only so often that reading it takes under ``budget`` of the sampler's time, so the measurement does
    not slow what it measures."""

    def __init__(self, pid: int, interval: float = 0.25, budget: float = 0.05) -> None:
        self.pid, self.interval, self.budget, self.peak = pid, interval, budget, TreePeak()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._next_pss = 0.0

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def sample(self, pss: bool = True) -> None:
        pids = tree(self.pid)
        rss = [_rss_kb(p) for p in pids]
        alive = len([r for r in rss if r])
        pss_gb = self.peak.pss_gb
        if pss:
            pss_gb = max(pss_gb, sum(_pss_kb(p) for p in pids) / 2 ** 20)
        self.peak = TreePeak(max(self.peak.rss_gb, sum(rss) / 2 ** 20), pss_gb, max(self.peak.processes, alive))

    def _run(self) -> None:
        while not self._done.is_set():
            now = time.monotonic()
            due = now >= self._next_pss
            self.sample(pss=due)
            if due:
                took = time.monotonic() - now
                self._next_pss = now + max(self.interval, took / self.budget)
            self._done.wait(self.interval)

    def stop(self) -> TreePeak:
        self._done.set()
        self._thread.join()
        self.sample()
        return self.peak


def main() -> None:
    """``python -m bench.proctree COMMAND ...``: run COMMAND, then print its tree's peaks and wall time."""
    import subprocess
    import sys

    t0 = time.perf_counter()
    proc = subprocess.Popen(sys.argv[1:])
    sampler = TreeSampler(proc.pid).start()
    rc = proc.wait()
    peak = sampler.stop()
    print(f"exit {rc}; wall {time.perf_counter() - t0:.1f} s; peak tree RSS (sum) {peak.rss_gb:.2f} GB, "
          f"PSS {peak.pss_gb:.2f} GB, {peak.processes} processes", file=sys.stderr)
    raise SystemExit(rc)


if __name__ == "__main__":
    main()
