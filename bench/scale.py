"""The reference simulator at the papers' scale: every student (snn_2conv at 1×28×28, the others at 3×32×32).

For each student (width 1, 8-bit integer graph; BN statistics calibrated on uniform-noise images, and,
with ``--trained FOLDER``, the student trained one epoch on ``fake:3x32x32:10``): the plan build time,
the peak RSS of a fresh process that loads the graph, builds the plan and simulates, and side by side
in that process the simulator, the fair dense baseline (bench/dense.py: the student's own float32
forward, BN folded, T folded into the batch, compiled IF kernels, the faster memory format) and
``GraphSNN`` (float64, layer by layer and step by step); the simulator's fixed and per-SynOp cost
(split by a run without spike delivery, checked by a line over input intensities) and the firing
rate where it would meet the dense forward. All use 2 threads at most.

    .venv/bin/python bench/scale.py [--archs snn_2conv ...] [--batch 8] [--repeats 3] [--trained FOLDER]
        [--lava snn_resnet14 ...] [--write docs/benchmarks.md]

About 5 minutes on 2 cores without Lava. ``--lava ARCH ...`` also runs Lava (``run_lava``, through
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
from bench._timing import fit_line, interleaved  # noqa: E402

ARCHS = ["snn_2conv", "snn_resnet14", "snn_wrn16_2", "snn_vgg11", "snn_vgg16", "snn_resnet18"]
SHAPES = {"snn_2conv": (1, 28, 28)}  # the MNIST-size student; every other one at 3×32×32 (CIFAR)


def input_shape(arch: str) -> tuple[int, int, int]:
    return SHAPES.get(arch, (3, 32, 32))


def preprocessing(channels: int) -> dict:
    """Images in [0, 1], integer input = raw pixels."""
    return {"raw_scale": 1 / 255, "mean": [0.0] * channels, "std": [1.0] * channels}


def build(arch: str, seed: int = 0):
    """The student (BN calibrated on 16 uniform-noise images), its 8-bit integer graph and its parameter count."""
    from kdsnn.export.graph import student_to_graph
    from kdsnn.export.quantize import quantize_graph
    from kdsnn.models import build_model

    torch.manual_seed(seed)
    shape = input_shape(arch)
    m = build_model(arch, shape, 10, width=1.0)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = None
    m.train()
    with torch.no_grad():
        m(torch.rand(16, *shape))
    params = sum(p.numel() for p in m.parameters())
    return m.eval(), quantize_graph(student_to_graph(m.eval(), preprocessing(shape[0])), bits=8), params


def trained(arch: str, folder: str):
    """A trained student from ``folder/ARCH/checkpoint.pt`` (``kdsnn distill --dataset fake:3x32x32:10``), its
    8-bit integer graph and parameter count; None when there is none."""
    from kdsnn.export.student import load_student_graphs

    path = Path(folder) / arch / "checkpoint.pt"
    if not path.exists():
        return None
    d = load_student_graphs(str(path), bits=8)
    return d.model.eval(), d.graph, sum(p.numel() for p in d.model.parameters())


SCALES = (0.0, 0.25, 0.5, 1.0)  # input intensities of the check line: time against SynOps at four activity levels


def without_spike_delivery(plan):
    """A copy of ``plan`` whose fast path delivers only the Input's events (the direct-encoded first layer).

    Every population still takes its bias and is updated and scanned at every step, and the Output is read:
    the run's time is the simulator's fixed part, the part that does not follow the spikes. Its spikes
    are the bias's alone, so only its time is of use (the SynOps it counts are the Input's)."""
    import copy

    from kdsnn.deploy.simulator.fast_kernels import C_SOURCE, P_CONN_HI, P_CONN_LO

    net = copy.copy(plan.fast)
    pops, conns = net.pops.copy(), net.conns.copy()
    n_pop = pops.shape[0]
    for q in range(n_pop):
        lo, hi = int(pops[q, P_CONN_LO]), int(pops[q, P_CONN_HI])
        part = conns[lo:hi].copy()
        from_input = part[:, C_SOURCE] == n_pop
        conns[lo:hi] = np.concatenate([part[from_input], part[~from_input]])
        pops[q, P_CONN_HI] = lo + int(from_input.sum())
    net.pops, net.conns = pops, conns
    bare = copy.copy(plan)
    bare.fast = net
    return bare


def measure(files: str, batch: int, repeats: int, inputs: str, lava: bool = False) -> dict:
    """In this (fresh) process: plan, simulate, the dense forward and GraphSNN side by side; returns the figures."""
    torch.set_num_threads(2)
    from bench.dense import DenseForward, float32_exact_bound
    from kdsnn import data
    from kdsnn.deploy.simulator import Plan, simulate
    from kdsnn.export.runtime import GraphSNN

    model, graph = pickle.loads(Path(files).read_bytes())
    if inputs == "noise":
        from kdsnn.export.graph_view import GraphView

        x = torch.rand(batch, *GraphView.of(graph).input_shape, generator=torch.Generator().manual_seed(1))
    else:  # the data set the student was trained on
        x = data.sample_batch(inputs, batch)[0]
    t0 = time.perf_counter()
    plan = Plan(graph)
    build_s = time.perf_counter() - t0
    res = simulate(plan, x)  # also compiles/loads the kernels
    rss_sim = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # plan + simulation, before the dense run
    ref = GraphSNN(graph)
    if not torch.equal(res.logits, ref.run(x).logits):
        raise SystemExit("simulator and GraphSNN logits differ: the comparison would be meaningless")
    if plan.fast is None:
        raise SystemExit("the graph does not take the integer fast path: nothing here would measure it")
    bare = without_spike_delivery(plan)
    dense = DenseForward(model, x)
    cpu: dict[str, float] = {}
    best = interleaved({"sim": lambda: simulate(plan, x), "fixed": lambda: simulate(bare, x), "dense": dense,
                        "graphsnn": lambda: ref.run(x)}, repeats, cpu)

    def spike_synops(r) -> float:  # SynOps per inference that spikes deliver (all but the Input's), read off r
        return r.per_sample()["synops"] - sum(s.synops for s in r.layers.values() if s.source == plan.input) / r.batch

    fixed = cpu["fixed"] / batch
    delivered = spike_synops(res)
    slope = (cpu["sim"] / batch - fixed) / delivered if delivered > 0 else float("nan")
    points = [(0.0, fixed, 0.0)]  # (spike SynOps per inference, simulator CPU seconds per inference, mean firing)
    for scale in SCALES:
        xs = x * scale
        r = res if scale == 1.0 else simulate(plan, xs)
        c: dict[str, float] = {}
        if scale != 1.0:
            interleaved({"sim": lambda xs=xs: simulate(plan, xs)}, repeats, c)
        points.append((spike_synops(r), (cpu if scale == 1.0 else c)["sim"] / batch, _firing(r)))
    _, _, r2 = fit_line([p[0] for p in points], [p[1] for p in points])
    dense_cpu = cpu["dense"] / batch
    per_rate = delivered / _firing(res) if _firing(res) > 0 else float("nan")  # spike SynOps per unit of firing
    cross = (dense_cpu - fixed) / slope / per_rate if slope > 0 else float("nan")
    rates = [st.firing_rate for st in res.neurons.values()]
    lava_s = None
    if lava:
        from bench.lava import lava_seconds_per_sample
        got = lava_seconds_per_sample(graph, x[:1])
        if not got.get("identical", False):
            raise SystemExit("Lava's spikes or logits differ from GraphSNN's")
        lava_s = got["per_sample_s"]
    return {"lava_s": lava_s, "build_s": build_s, "rss_mb": rss_sim,
            "sim_ms": best["sim"] / batch * 1e3, "dense_ms": best["dense"] / batch * 1e3, "layout": dense.layout,
            "sim_cpu_ms": cpu["sim"] / batch * 1e3, "dense_cpu_ms": dense_cpu * 1e3,
            "graphsnn_ms": best["graphsnn"] / batch * 1e3, "synops": res.per_sample()["synops"],
            "spike_synops": delivered,
            "synapses": sum(c.synapses for c in plan.connections), "fast": True,
            "rate_min": min(rates) * 100, "rate_max": max(rates) * 100, "firing": _firing(res) * 100,
            "fixed_ms": fixed * 1e3, "ns_per_synop": slope * 1e9, "r2": r2, "crossover": cross * 100,
            "points": points, "log2_bound": float32_exact_bound(plan.fast, res.timesteps, 255.0)}


def _firing(res) -> float:
    """Spikes over neuron updates, all IF populations together."""
    upd = sum(st.updates for st in res.neurons.values())
    return sum(st.spikes for st in res.neurons.values()) / upd if upd else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=ARCHS)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--trained", default=None,
                    help="folder of trained students (FOLDER/ARCH/checkpoint.pt from kdsnn distill --dataset "
                         "fake:3x32x32:10): also measure them, on that data set's test images")
    ap.add_argument("--write", default=None,
                    help="docs/benchmarks.md: replace the '## Simulator at CIFAR scale' section")
    ap.add_argument("--lava", nargs="*", default=[], help="students to also run on Lava (1 sample each)")
    ap.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: one student in a fresh process
    ap.add_argument("--inputs", default="noise", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure(a.measure, a.batch, a.repeats, a.inputs, bool(a.lava))))
        return
    rows = []
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for arch in a.archs:
            variants = [("calibrated on noise", build(arch), "noise")]
            got = trained(arch, a.trained) if a.trained else None
            if got is not None:
                variants.append(("trained 1 epoch", got, "fake:3x32x32:10"))
            for label, (model, graph, params), inputs in variants:
                f = Path(tmp) / f"{arch}.pkl"
                f.write_bytes(pickle.dumps((model, graph)))
                lava = ["--lava", arch] if arch in a.lava and label.startswith("calibrated") else []
                run = subprocess.run([sys.executable, __file__, "--measure", str(f), "--batch", str(a.batch),
                                      "--repeats", str(a.repeats), "--inputs", inputs, *lava],
                                     capture_output=True, text=True, check=False)
                if run.returncode:
                    raise SystemExit(f"{arch}: {run.stderr.strip().splitlines()[-1]}")
                r = json.loads(run.stdout.strip().splitlines()[-1]) | {"arch": arch, "params": params,
                                                                      "variant": label}
                rows.append(r)
                print(f"{arch:13s} {label:20s} firing {r['firing']:4.1f} %  {r['synops'] / 1e6:6.1f} MSynOps/inf  "
                      f"sim {r['sim_ms']:6.1f} ms  dense fp32 {r['dense_ms']:6.1f} ms ({r['layout']}, "
                      f"{r['sim_ms'] / r['dense_ms']:.2f}×)  GraphSNN {r['graphsnn_ms']:6.1f} ms  fixed "
                      f"{r['fixed_ms']:.2f} ms + {r['ns_per_synop'] * 1e3:.0f} ps/spike SynOp (line R² {r['r2']:.3f})  "
                      f"crossover {_crossover_cell(r)}  bound 2^{r['log2_bound']:.1f}", flush=True)
    a.load = (load0, os.getloadavg()[0])
    if a.write:
        replace_section(Path(a.write), "Simulator at CIFAR scale", _markdown(a, rows))


def _crossover_cell(r: dict) -> str:
    """The firing rate where the simulator's time would equal the dense forward's; none where its fixed part alone
    costs more than the dense forward."""
    if r["fixed_ms"] >= r["dense_cpu_ms"]:
        return "none (fixed part ≥ dense)"
    return f"{r['crossover']:.1f} %"


def _lava_cell(r: dict) -> str:
    if r.get("lava_s") is not None:
        return f"{r['lava_s']:.1f}"
    return "—"


def _markdown(a, rows: list[dict]) -> str:
    lava = f"--lava {' '.join(a.lava)} " if a.lava else ""
    trained_arg = f"--trained {a.trained} " if a.trained else ""
    cmd = (f".venv/bin/python bench/scale.py --archs {' '.join(a.archs)} --batch {a.batch} --repeats {a.repeats} "
           f"{trained_arg}{lava}--write docs/benchmarks.md")
    lines = ["| student | weights | firing % (all IF; per layer min-max) | SynOps / inf | simulator ms / inf "
             "| dense float32 forward ms / inf | sim / dense (CPU time) | GraphSNN ms / inf | sim / GraphSNN "
             "| fixed CPU ms | CPU ps / spike SynOp | line R² | crossover firing | Lava s / sample |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arch']} | {r['variant']} | {r['firing']:.1f} ({r['rate_min']:.1f}-{r['rate_max']:.1f}) "
                     f"| {r['synops'] / 1e6:,.1f} M | {r['sim_ms']:.1f} | {r['dense_ms']:.1f} ({r['layout']}) "
                     f"| {r['sim_ms'] / r['dense_ms']:.2f}× ({r['sim_cpu_ms'] / r['dense_cpu_ms']:.2f}×) "
                     f"| {r['graphsnn_ms']:.1f} | "
                     f"{r['sim_ms'] / r['graphsnn_ms']:.2f}× | {r['fixed_ms']:.2f} | {r['ns_per_synop'] * 1e3:.0f} "
                     f"| {r['r2']:.3f} | {_crossover_cell(r)} | {_lava_cell(r)} |")
    plan_lines = ["| student | parameters | composed synapses | plan build | peak RSS | partial sums below |",
                  "|---|---|---|---|---|---|"]
    for r in rows:
        if r["variant"].startswith("calibrated"):
            plan_lines.append(f"| {r['arch']} | {r['params'] / 1e6:.2f} M | {r['synapses'] / 1e6:,.0f} M "
                              f"| {r['build_s']:.2f} s | {r['rss_mb'] / 1024:.2f} GB | 2^{r['log2_bound']:.1f} |")
    r18 = {r["variant"]: r for r in rows if r["arch"] == "snn_resnet18"}
    met = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    targets = []
    if "trained 1 epoch" in r18:
        t = r18["trained 1 epoch"]
        targets.append(f"snn_resnet18 trained: {t['sim_ms'] / t['dense_ms']:.2f}× the dense float32 forward "
                       f"(target ≤ 0.25×): {met(t['sim_ms'] <= 0.25 * t['dense_ms'])}")
    if "calibrated on noise" in r18:
        c = r18["calibrated on noise"]
        targets.append(f"snn_resnet18 calibrated on noise: {c['sim_ms'] / c['dense_ms']:.2f}× (target ≤ 0.7×): "
                       f"{met(c['sim_ms'] <= 0.7 * c['dense_ms'])}; plan build {c['build_s']:.2f} s (≤ 5 s), "
                       f"peak RSS {c['rss_mb'] / 1024:.2f} GB (≤ 2 GB): "
                       f"{met(c['build_s'] <= 5 and c['rss_mb'] <= 2048)}")
    return f"""Command: `{cmd}`

Each student at 3×32×32 (snn_2conv, the MNIST-size student, at 1×28×28), width 1, 8-bit integer graph
(direct encoding, T = 4, membrane readout), in two states: BN statistics calibrated on 16 uniform-noise
images (no training; the firing such statistics give), and, where `--trained` holds a checkpoint,
trained one epoch on `fake:3x32x32:10` (`kdsnn distill --arch ARCH --dataset fake:3x32x32:10 --kd none
--epochs 1`), run on that data set's test images. Inputs: {a.batch} images; 2 threads at most; each
student in a fresh process. The three runners are timed side by side
in that process (in turn, best of {a.repeats} each: interference on a shared machine only adds time):

- **simulator**: `simulate(plan, x)` (the integer fast path);
- **dense float32 forward**, the fair dense baseline (bench/dense.py): the student's own PyTorch forward
  the way the trainer runs it, BN folded into the convolutions, float32, the T steps folded into the
  batch (one convolution per layer for all steps; the direct-encoded first layer computed once), the
  compiled IF kernels, in the faster of NCHW and channels-last (NHWC) on this machine (the column says
  which). Its time does not depend on the weights' values. float32 would compute the integer graph
  exactly: every membrane and partial sum is bounded by the simulator's range proof (|bias| + Σ|w| of
  each target's fan-in, input up to 255, over T + 1 steps), and that bound is below 2^24 for every
  student (last column of the second table), so any order of addition gives the same integers;
- **GraphSNN** (`kdsnn.export.runtime`), the reference runtime, one layer and one step at a time in
  float64, what earlier versions of this table called the dense baseline. Its logits equal the simulator's.

Times are wall clock (best of the runs); "CPU time" is the process's CPU seconds (both threads), which
waiting for a core on a loaded machine does not inflate. Fixed and per-SynOp cost, split directly:
the **fixed** part is the CPU time of the same simulation with spike delivery switched off (bench/scale.py's
`without_spike_delivery`: the Input's events still reach the first layer, every population still takes its
bias, is updated and scanned at every step, the Output is read), timed in turn with the other runners;
the **per-SynOp** cost is the rest of the full run's CPU time over the SynOps that spikes deliver (all but the
Input's). Check: a least-squares line of CPU time against spike SynOps through the fixed point and the
same inputs scaled by {', '.join(str(s) for s in SCALES)} (less input, fewer spikes); "line R²" says how
well the split's straight-line model holds. The crossover firing rate is where fixed + per-SynOp × spike
SynOps meets the dense forward's CPU time, with spike SynOps taken as proportional to the mean firing
rate (their measured ratio); "none" where the fixed part alone costs more than the dense forward.
A shared 2-core machine: 1-minute load
average {a.load[0]:.1f} at the start, {a.load[1]:.1f} at the end.

{chr(10).join(lines)}

{chr(10).join(plan_lines)}

Targets:

{chr(10).join(f"- {t};" for t in targets) or "- snn_resnet18 not run."}

Lava: seconds per sample of `run_lava` on the first input (flush included, start-up excluded; its
spikes and logits checked against GraphSNN) for the students given to `--lava`, in the same process;
"—": not run here.

How the plan stays small: a convolution is stored as its kernel (one pattern per input channel and
border class, runs of output channels read from the kernel), a pool before a synaptic layer is
composed by coordinates, Flatten is index arithmetic and Scale elementwise (docs/synops.md, "How the
simulator stores connectivity"). Peak RSS: the fresh process's maximum after loading the graph,
building the plan and simulating the batch (Python, torch, numba and the graph included; measured
before the dense runs).
"""


if __name__ == "__main__":
    main()
