"""Lava at CIFAR scale: seconds and peak memory (the whole process tree) per sample, per conv model.

Each (student, conv model) runs in a fresh Python process: it builds the student at 3×32×32
(width 1, BN calibrated on seeded uniform images, 8-bit integer; bench/lava.py's
``synthetic_graph``), runs ``run_lava`` on the first ``--samples`` inputs while a thread samples
that process and every Lava process it forks (bench/proctree.py: summed RSS and PSS), then checks
every IF layer's spikes and the logits against ``GraphSNN``. ``--conv lava`` is Lava's own
fixed-point Conv model (a ``scipy.signal.convolve2d`` per channel pair and step), ``--conv kdsnn``
kdsnn's vectorized one (deploy/lava/conv_model.py). One run at a time (each is heavy)::

    nice -n 10 .venv/bin/python -m bench.lava_scale --students snn_resnet14 snn_resnet18 \
        --conv lava kdsnn [--samples 1] [--write docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

TITLE = "Lava at CIFAR scale: time and memory per sample (issue 20)"


def one(arch: str, conv: str, samples: int) -> dict:
    """Run in this process; the result as a dict (what ``--one`` prints as JSON)."""
    import numpy as np
    import torch

    from bench.lava import synthetic_graph
    from bench.proctree import TreeSampler
    from kdsnn.deploy.lava import run_lava
    from kdsnn.deploy.lava.plan import lava_graph_plan
    from kdsnn.errors import KdsnnError
    from kdsnn.export.runtime import GraphSNN

    for bits in (8, 7, 6):  # the widest the Lava plan accepts (its worst-case 24-bit current check)
        graph, x = synthetic_graph(arch, bits=bits)
        try:
            lava_graph_plan(graph)
            break
        except KdsnnError:
            continue
    x = x[:samples]
    kwargs = {"conv_model": conv} if "conv_model" in inspect.signature(run_lava).parameters else {}
    if conv != "lava" and not kwargs:
        raise SystemExit("this checkout's run_lava has no conv_model option")
    sampler = TreeSampler(os.getpid())
    sampler.sample()
    before = sampler.peak
    sampler.start()
    t0 = time.perf_counter()
    run = run_lava(graph, x, progress=False, **kwargs)
    wall = time.perf_counter() - t0
    peak = sampler.stop()
    ref = GraphSNN(graph).run(x)
    same = all(np.array_equal(run.spikes[n], ref.outputs[n].numpy()) for n in run.spikes)
    return {"arch": arch, "bits": bits, "conv": conv, "samples": samples, "route": run.route,
            "startup_s": run.startup_s,
            "per_sample_s": run.per_sample_s, "wall_s": wall, "before_rss_gb": before.rss_gb,
            "peak_rss_gb": peak.rss_gb, "peak_pss_gb": peak.pss_gb, "processes": peak.processes,
            "identical": bool(same and torch.equal(run.logits, ref.logits)),
            "rate": float(np.mean([s.mean() for s in run.spikes.values()]))}


def measure(arch: str, conv: str, samples: int) -> dict:
    """:func:`one` in a fresh process (so no run inherits another's memory)."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "bench.lava_scale", "--one", arch, "--conv", conv,
                           "--samples", str(samples)], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{arch} ({conv}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", nargs="+", default=["snn_resnet14", "snn_resnet18"])
    ap.add_argument("--conv", nargs="+", default=["lava", "kdsnn"], choices=["lava", "kdsnn"])
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--one", metavar="ARCH", help=argparse.SUPPRESS)
    ap.add_argument("--write", metavar="MD", help="replace this section of a Markdown file (docs/benchmarks.md)")
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.conv[0], a.samples)))
        return
    rows = ["| student | bits | conv model | start-up | per sample | peak RSS, tree (sum) | peak PSS, tree | "
            "processes | Python before Lava | spikes and logits vs GraphSNN |", "|---" * 10 + "|"]
    for arch in a.students:
        for conv in a.conv:
            r = measure(arch, conv, a.samples)
            rows.append(f"| {arch} | {r['bits']} | {conv} | {r['startup_s']:.1f} s | {r['per_sample_s']:.2f} s | "
                        f"{r['peak_rss_gb']:.2f} GB | {r['peak_pss_gb']:.2f} GB | {r['processes']} | "
                        f"{r['before_rss_gb']:.2f} GB | {'identical' if r['identical'] else 'DIFFER'} |")
            print(rows[-1], f"load {os.getloadavg()[0]:.2f}", flush=True)
    command = " ".join(["nice -n 10 .venv/bin/python -m bench.lava_scale --students", *a.students, "--conv", *a.conv,
                        "--samples", str(a.samples), "--write docs/benchmarks.md"])
    body = f"""Command: `{command}`

Each student at 3×32×32, width 1, T = 4, integer graph (BN calibrated on 64 seeded uniform images;
8 bits, or the widest below that Lava's plan accepts: at 8 bits snn_resnet18's last population can
receive more than Loihi's current range in one step in the worst case, which the plan refuses),
{a.samples} seeded uniform image(s), run by `run_lava` (process-graph route, Lava 0.10
`Loihi2SimCfg(select_tag='fixed_pt')`, {platform.machine()}, a shared 2-core machine, load average
{os.getloadavg()[0]:.1f} at the end), each in a fresh process. Memory: the peak, over the run, of the
summed RSS (a shared page counted in every process that maps it: an upper bound far above the truth,
since every Lava process is forked from the Python process) and of the summed PSS (a shared page split
among its sharers: what the machine really holds) of the Python process and every Lava process it
forked (bench/proctree.py: RSS every 0.25 s; PSS, a page-table walk, as often as costs under 5 % of
the wall time); "Python before Lava" is the process's RSS after building the graph. Per sample: run
time over the samples, pipeline flush included; start-up: compiling and starting the runtime.

{chr(10).join(rows)}"""
    print(body)
    if a.write:
        from bench._doc import replace_section
        replace_section(Path(a.write), TITLE, body)


if __name__ == "__main__":
    main()
