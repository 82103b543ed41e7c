"""The reference simulator at the papers' scale: every student at 3×32×32, plan, memory, time, SynOps.

For each student (width 1, 8-bit integer graph, BN statistics calibrated on uniform-noise images so
that hidden layers fire at realistic rates, reported): the plan build time, the peak RSS of a
fresh process that loads the graph, builds the plan and simulates, the simulator's ms per inference
(best of ``--repeats`` on a batch), SynOps per inference, and the dense PyTorch time per inference
of the same integer graph (``kdsnn.export.runtime.GraphSNN``, float64 holding integers) on the same
inputs in the same process. Both use 2 threads at most. Each student runs in its own process so
its peak RSS is its own.

    .venv/bin/python bench/scale.py [--archs snn_2conv ...] [--batch 8] [--repeats 3] [--lava snn_resnet14 ...]
        [--write docs/benchmarks.md]

About 3 minutes on 2 cores without Lava. ``--lava ARCH ...`` also runs Lava (``run_lava``, through
bench/lava.py's ``lava_seconds_per_sample``) on the first input for those students, in the same
process: seconds to minutes per sample (its convolutions cost channels², not spikes).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/lava.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._doc import replace_section  # noqa: E402
from bench._timing import timed  # noqa: E402

ARCHS = ["snn_2conv", "snn_resnet14", "snn_wrn16_2", "snn_vgg11", "snn_vgg16", "snn_resnet18"]
PRE = {"raw_scale": 1 / 255, "mean": [0.0] * 3, "std": [1.0] * 3}  # images in [0, 1], integer input = raw pixels


def build(arch: str, seed: int = 0):
    """The student's 8-bit integer graph, BN calibrated on 16 uniform-noise images, and its parameter count."""
    from kdsnn.export.graph import student_to_graph
    from kdsnn.export.quantize import quantize_graph
    from kdsnn.models import build_model

    torch.manual_seed(seed)
    m = build_model(arch, (3, 32, 32), 10, width=1.0)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = None
    m.train()
    with torch.no_grad():
        m(torch.rand(16, 3, 32, 32))
    params = sum(p.numel() for p in m.parameters())
    return quantize_graph(student_to_graph(m.eval(), PRE), bits=8), params


def measure(graph_file: str, batch: int, repeats: int, lava: bool = False) -> dict:
    """In this (fresh) process: plan, simulate, GraphSNN; returns the figures."""
    torch.set_num_threads(2)
    from kdsnn.deploy.simulator import Plan, simulate
    from kdsnn.export.runtime import GraphSNN

    graph = pickle.loads(Path(graph_file).read_bytes())
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    t0 = time.perf_counter()
    plan = Plan(graph)
    build_s = time.perf_counter() - t0
    res = simulate(plan, x)  # also compiles/loads the kernels
    rss_sim = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # plan + simulation, before the dense run
    ref = GraphSNN(graph)
    out = ref.run(x)
    if not torch.equal(res.logits, out.logits):
        raise SystemExit("simulator and GraphSNN logits differ: the comparison would be meaningless")
    t_sim = timed(lambda: simulate(plan, x), repeats) / batch
    t_dense = timed(lambda: ref.run(x), repeats) / batch
    rates = [st.firing_rate for st in res.neurons.values()]
    lava_s = None
    if lava:
        from bench.lava import lava_seconds_per_sample
        got = lava_seconds_per_sample(graph, x[:1])
        if not got.get("identical", False):
            raise SystemExit("Lava's spikes or logits differ from GraphSNN's")
        lava_s = got["per_sample_s"]
    return {"lava_s": lava_s, "build_s": build_s, "rss_mb": rss_sim,
            "rss_all_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "sim_ms": t_sim * 1e3, "dense_ms": t_dense * 1e3, "synops": res.per_sample()["synops"],
            "macs": res.per_sample()["macs_effective"], "synapses": sum(c.synapses for c in plan.connections),
            "fast": plan.fast is not None, "rate_min": min(rates) * 100, "rate_mean": float(np.mean(rates)) * 100,
            "rate_max": max(rates) * 100}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=ARCHS)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", default=None,
                    help="docs/benchmarks.md: replace the '## Simulator at CIFAR scale' section")
    ap.add_argument("--lava", nargs="*", default=[], help="students to also run on Lava (1 sample each)")
    ap.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: one student in a fresh process
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure(a.measure, a.batch, a.repeats, bool(a.lava))))
        return
    rows = []
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for arch in a.archs:
            graph, params = build(arch)
            f = Path(tmp) / f"{arch}.pkl"
            f.write_bytes(pickle.dumps(graph))
            del graph
            lava = ["--lava", arch] if arch in a.lava else []
            run = subprocess.run([sys.executable, __file__, "--measure", str(f), "--batch", str(a.batch),
                                  "--repeats", str(a.repeats), *lava], capture_output=True, text=True, check=False)
            if run.returncode:
                raise SystemExit(f"{arch}: {run.stderr.strip().splitlines()[-1]}")
            r = json.loads(run.stdout.strip().splitlines()[-1]) | {"arch": arch, "params": params}
            rows.append(r)
            print(f"{arch:13s} {params / 1e6:5.2f} M params  plan {r['build_s']:5.2f} s  RSS {r['rss_mb']:6.0f} MB  "
                  f"sim {r['sim_ms']:7.1f} ms  dense {r['dense_ms']:7.1f} ms  ({r['sim_ms'] / r['dense_ms']:.2f}×)  "
                  f"{r['synops'] / 1e6:7.1f} MSynOps/inf  firing {r['rate_min']:.1f}-{r['rate_max']:.1f} % "
                  f"(mean {r['rate_mean']:.1f})  fast path {r['fast']}  Lava {_lava_cell(r)} s/sample", flush=True)
    a.load = (load0, os.getloadavg()[0])
    if a.write:
        replace_section(Path(a.write), "Simulator at CIFAR scale", _markdown(a, rows))


def _lava_cell(r: dict) -> str:
    if r.get("lava_s") is not None:
        return f"{r['lava_s']:.1f}"
    return "—"


def _markdown(a, rows: list[dict]) -> str:
    lava = f"--lava {' '.join(a.lava)} " if a.lava else ""
    cmd = (f".venv/bin/python bench/scale.py --archs {' '.join(a.archs)} --batch {a.batch} --repeats {a.repeats} "
           f"{lava}--write docs/benchmarks.md")
    lines = ["| student | parameters | composed synapses | plan build | peak RSS | firing % (min-max, mean) "
             "| SynOps / inf | simulator ms / inf | dense PyTorch ms / inf | sim / dense | Lava s / sample |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arch']} | {r['params'] / 1e6:.2f} M | {r['synapses'] / 1e6:,.0f} M "
                     f"| {r['build_s']:.2f} s | "
                     f"{r['rss_mb'] / 1024:.2f} GB | {r['rate_min']:.1f}-{r['rate_max']:.1f} ({r['rate_mean']:.1f}) | "
                     f"{r['synops'] / 1e6:,.1f} M | {r['sim_ms']:.1f} | {r['dense_ms']:.1f} | "
                     f"{r['sim_ms'] / r['dense_ms']:.2f}× | {_lava_cell(r)} |")
    r18 = next((r for r in rows if r["arch"] == "snn_resnet18"), None)
    worst = max(rows, key=lambda r: r["sim_ms"] / r["dense_ms"])
    met = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    r18_line = ("snn_resnet18 not run" if r18 is None else
                f"snn_resnet18 plan build {r18['build_s']:.2f} s (target ≤ 5 s): {met(r18['build_s'] <= 5)}; peak RSS "
                f"{r18['rss_mb'] / 1024:.2f} GB (target ≤ 2 GB): {met(r18['rss_mb'] <= 2048)}")
    return f"""Command: `{cmd}`

Each student at 3×32×32, width 1, 8-bit integer graph (direct encoding, T = 4, membrane readout), BN
statistics calibrated on 16 uniform-noise images (no training: the firing rates are what such
statistics give, listed per student). Inputs: {a.batch} uniform-noise images; best of {a.repeats} runs;
2 threads at most. Each student runs in a fresh process: peak RSS is that process's maximum after
loading the graph, building the plan and simulating the batch (Python, torch, numba and the graph
included; measured before the dense baseline runs), plan build is `Plan(graph)`. \
The dense baseline is `GraphSNN` on the same
integer graph and inputs in the same process (every layer, every step; float64 holding integers); its
logits equal the simulator's. A shared 2-core machine: 1-minute load average {a.load[0]:.1f} at the start,
{a.load[1]:.1f} at the end. Other work slows the dense baseline (torch on 2 threads) more than the
simulator, so the last column moves between runs; the simulator's own time per SynOp is the steadier figure
({min(r['sim_ms'] / r['synops'] for r in rows) * 1e6:.2f}-{max(r['sim_ms'] / r['synops'] for r in rows) * 1e6:.2f} ns
per SynOp here, first layer and neuron updates included).

{chr(10).join(lines)}

Targets:

- {r18_line};
- every student's simulation at most 2× the dense PyTorch time: worst {worst['arch']} at
  {worst['sim_ms'] / worst['dense_ms']:.2f}×: {met(all(r['sim_ms'] <= 2 * r['dense_ms'] for r in rows))}.

Lava: seconds per sample of `run_lava` on the first input (flush included, start-up excluded; its
spikes and logits checked against GraphSNN) for the students given to `--lava`, in the same process;
"—": not run here. Lava's cost grows with channels² (a Python convolution per channel pair and
step, see "Lava at 3×32×32"), so VGG and ResNet18 students would take far longer per sample.

How the plan stays small: a convolution is stored as its kernel (one pattern per input channel and
border class, runs of output channels read from the kernel), a pool before a synaptic layer is
composed by coordinates, Flatten is index arithmetic and Scale elementwise (docs/synops.md, "How the
simulator stores connectivity"). The composed connectivity column is what the previous, per-synapse
plan stored explicitly.
"""


if __name__ == "__main__":
    main()
