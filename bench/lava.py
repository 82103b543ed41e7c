"""Lava seconds per sample for residual students at 3×32×32 (the process-graph route).

``lava_seconds_per_sample(graph, x)`` is the figure ``bench/scale.py`` can call; run as a
script it builds snn_resnet14 (and optionally others) at 3×32×32, width 1, BN calibrated on
synthetic inputs, 8-bit integer, checks Lava's spikes against ``GraphSNN`` and prints a
Markdown table for docs/benchmarks.md::

    .venv/bin/python -m bench.lava --students snn_resnet14 --samples 2
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import nir
import numpy as np
import torch

IMAGE_PREPROCESSING = {"raw_scale": 1 / 255, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


def synthetic_graph(arch: str, shape: tuple[int, int, int] = (3, 32, 32), width: float = 1.0, seed: int = 0,
                    timesteps: int = 4, readout: str = "membrane", bits: int = 8) -> tuple[nir.NIRGraph, torch.Tensor]:
    """A ``bits``-bit integer student graph, BN calibrated on seeded uniform images, and 8 more such images."""
    from kdsnn.export.graph import student_to_graph
    from kdsnn.export.quantize import quantize_graph
    from kdsnn.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, shape, 10, timesteps=timesteps, readout=readout, width=width)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    g = torch.Generator().manual_seed(seed)
    calib = torch.randint(0, 256, (64, *shape), generator=g).float() / 255
    model.train()
    with torch.no_grad():
        model(calib)
    model.eval()
    x = torch.randint(0, 256, (8, *shape), generator=g).float() / 255
    return quantize_graph(student_to_graph(model, IMAGE_PREPROCESSING), bits=bits), x


def lava_seconds_per_sample(graph: nir.NIRGraph, x: torch.Tensor, check: bool = True) -> dict:
    """Run ``graph`` on Lava for the batch ``x``: seconds per sample (flush included), start-up,
    route, and (with ``check``) whether every IF layer's spikes and the logits equal GraphSNN's."""
    from kdsnn.deploy.lava import run_lava
    from kdsnn.export.runtime import GraphSNN

    t0 = time.perf_counter()
    run = run_lava(graph, x, progress=False)
    result = {"route": run.route, "samples": int(x.shape[0]), "per_sample_s": run.per_sample_s,
              "startup_s": run.startup_s, "wall_s": time.perf_counter() - t0, "lava_steps": run.lava_steps,
              "populations": len(run.spikes)}
    if check:
        ref = GraphSNN(graph).run(x)
        result["identical"] = bool(all(np.array_equal(run.spikes[n], ref.outputs[n].numpy()) for n in run.spikes)
                                   and torch.equal(run.logits, ref.logits))
        result["rate"] = float(np.mean([s.mean() for s in run.spikes.values()]))
    return result


TITLE = "Lava at 3×32×32 (process-graph route)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", nargs="+", default=["snn_resnet14"])
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--write", metavar="MD", help="replace this section of a Markdown file (docs/benchmarks.md)")
    a = ap.parse_args()
    rows = ["| student | width | samples | route | IF populations | start-up | per sample | mean IF rate | "
            "spikes and logits vs GraphSNN |", "|---|---|---|---|---|---|---|---|---|"]
    for arch in a.students:
        graph, x = synthetic_graph(arch, width=a.width)
        r = lava_seconds_per_sample(graph, x[:a.samples])
        rows.append(f"| {arch} | {a.width:g} | {r['samples']} | {r['route']} | {r['populations']} | "
                    f"{r['startup_s']:.1f} s | {r['per_sample_s']:.2f} s | {r['rate']:.3f} | "
                    f"{'identical' if r['identical'] else 'DIFFER'} |")
        print(rows[-1], flush=True)
    command = " ".join(["`.venv/bin/python -m bench.lava", "--students", *a.students, "--samples", str(a.samples),
                        "--width", f"{a.width:g}"] + (["--write", a.write] if a.write else [])) + "`"
    body = f"""Command: {command}

Each student at 3×32×32, T = 4, 8-bit integer graph, random weights with BN calibrated on 64
seeded uniform images; inputs are seeded uniform images (no data set). Lava 0.10
(`Loihi2SimCfg(select_tag='fixed_pt')`) on the CPU ({platform.machine()}, a shared 2-core
machine), through `run_lava`, which picks the process-graph route for residual students
(docs/lava.md). Start-up is compiling and starting Lava's runtime (one OS process per Lava
process: populations, relays, connections, sinks); per sample is run time divided by the
batch, pipeline flush included (`lava_seconds_per_sample(graph, x)` in bench/lava.py gives
both). Every IF layer's spikes and the logits are compared with `GraphSNN` on the same inputs.

{chr(10).join(rows)}

Convolutions run kdsnn's vectorized Conv process model (deploy/lava/conv_model.py, bit for bit
Lava's); bench/lava_scale.py compares it with Lava's own (a `scipy.signal.convolve2d` per (output,
input) channel pair and step) and measures memory ("Lava at CIFAR scale")."""
    print(body)
    if a.write:
        from bench._doc import replace_section
        replace_section(Path(a.write), TITLE, body)


if __name__ == "__main__":
    main()
