"""Memory of a whole process tree (a command and every process it forks), sampled from /proc.

Lava runs every process of a network as a forked OS process, so one process's peak RSS (what
``/usr/bin/time -v`` reports: the largest single child) says little. :class:`TreeSampler` polls
the tree and keeps the peak of two sums: RSS (every page each process maps, shared ones counted in
each process: an upper bound) and PSS (each shared page split among its sharers: what the tree
really holds in memory). Linux only; no dependencies.
"""
from __future__ import annotations

import os
import threading
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


def _rss_pss_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB, (0, 0) if it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


@dataclass
class TreePeak:
    """Peaks of a process tree, in GiB, and the largest number of processes seen at once."""

    rss_gb: float = 0.0
    pss_gb: float = 0.0
    processes: int = 0


class TreeSampler:
    """Poll the tree under ``pid`` every ``interval`` s in a thread until :meth:`stop`; ``peak`` holds the peaks."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval, self.peak = pid, interval, TreePeak()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        pids = tree(self.pid)
        sums = [_rss_pss_kb(p) for p in pids]
        rss, pss = sum(s[0] for s in sums) / 2 ** 20, sum(s[1] for s in sums) / 2 ** 20
        self.peak = TreePeak(max(self.peak.rss_gb, rss), max(self.peak.pss_gb, pss),
                             max(self.peak.processes, len([s for s in sums if s[0]])))

    def _run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> TreePeak:
        self._done.set()
        self._thread.join()
        return self.peak
