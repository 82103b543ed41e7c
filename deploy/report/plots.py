"""The report's pictures (matplotlib, headless): firing rates, SynOps, energy, raster."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kdsnn.atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def firing_rates(rates: dict[str, float], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(max(4, 0.55 * len(rates) + 2), 3.2))
    names = list(rates)
    ax.bar(names, [rates[n] * 100 for n in names], color="#3a7dc9")
    ax.set_ylabel("firing rate (% of neurons per step)")
    ax.set_title("Firing rate per IF layer (reference simulator, test inputs)")
    ax.tick_params(axis="x", rotation=60)
    return _save(fig, path)


def synops(layers: dict[str, dict[str, Any]], path: Path) -> Path:
    """One bar per synaptic layer: SynOps (spiking input) or effective MACs (analog first layer)."""
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(layers) + 2.5), 3.2))
    names = list(layers)
    analog = [layers[n]["macs_effective"] > 0 and layers[n]["synops"] == 0 for n in names]
    vals = [layers[n]["macs_effective"] if a else layers[n]["synops"] for n, a in zip(names, analog, strict=True)]
    colors = ["#e08a2c" if a else "#3a7dc9" for a in analog]
    ax.bar(names, vals, color=colors)
    positive = [v for v in vals if v > 0]
    if positive:
        ax.set_yscale("log")
        ax.set_ylim(min(positive) / 3, max(positive) * 3)
    for i, v in enumerate(vals):
        ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("operations per inference")
    ax.set_title("Synaptic work per layer (blue: SynOps; orange: effective MACs of the analog input)", fontsize=9)
    ax.tick_params(axis="x", rotation=60)
    return _save(fig, path)


def energy(reports: list[dict[str, Any]], path: Path) -> Path:
    names = [r["profile"] for r in reports]
    series: dict[str, list[float]] = {"SNN": [r["snn"]["total_joules"] for r in reports]}
    for key in reports[0]["ann"]:
        series[key.replace("_", " ")] = [r["ann"][key]["joules"] for r in reports]
    x = np.arange(len(names))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(2.2 * len(names) + 2, 3.4))
    for i, (label, vals) in enumerate(series.items()):
        ax.bar(x + i * width, vals, width, label=label)
    ax.set_xticks(x + width * (len(series) - 1) / 2, names)
    ax.set_yscale("log")
    ax.set_ylabel("joules per inference")
    ax.set_title("Energy per inference by hardware profile")
    ax.legend(fontsize=8)
    return _save(fig, path)


def raster(spikes: dict[str, np.ndarray], path: Path, max_neurons: int = 512) -> Path:
    """One sample's spikes ``{layer: [T, N]}``: a panel per layer, time down, neurons across
    (evenly subsampled to ``max_neurons``), a black cell per spike."""
    fig, axes = plt.subplots(len(spikes), 1,
                             figsize=(8, 0.35 * sum(s.shape[0] for s in spikes.values()) + 1.2 * len(spikes)),
                             squeeze=False)
    for ax, (name, s) in zip(axes[:, 0], spikes.items(), strict=True):
        s = s.reshape(s.shape[0], -1)
        keep = np.linspace(0, s.shape[1] - 1, min(max_neurons, s.shape[1])).astype(int)
        ax.imshow(s[:, keep], aspect="auto", cmap="Greys", interpolation="nearest", vmin=0, vmax=1)
        ax.set_ylabel("t", rotation=0)
        ax.set_yticks(range(s.shape[0]))
        ax.set_title(f"{name}: {s.shape[1]} neurons ({len(keep)} shown), {int(s.sum())} spikes, "
                     f"rate {s.mean() * 100:.1f} %", fontsize=8, loc="left")
        ax.set_xticks([])
    fig.suptitle("Spike raster of one test sample", fontsize=10)
    return _save(fig, path)


def core_load(result: dict[str, Any], path: Path) -> Path:
    """One bar per core of a ``kdsnn map`` result: time per step (or SynOps per step when the target
    publishes no timing); the busiest core in red, so the step's bottleneck stands out."""
    cores = result["placement"]["cores"]
    secs = [c["per_step"]["seconds"] for c in cores]
    timed = result["latency"].get("step_seconds") is not None
    vals = [s * 1e9 for s in secs] if timed else [c["per_step"]["synops"] for c in cores]
    busiest = int(np.argmax(vals)) if vals else 0
    fig, ax = plt.subplots(figsize=(min(14, max(4, 0.18 * len(cores) + 3)), 3.2))
    colors = ["#c0392b" if i == busiest else "#3a7dc9" for i in range(len(cores))]
    ax.bar(range(len(cores)), vals, color=colors)
    if len(cores) <= 24:
        ax.set_xticks(range(len(cores)), [c["label"] for c in cores], rotation=60, fontsize=7)
    else:
        ax.set_xlabel("core")
    ax.set_ylabel("ns per time step" if timed else "SynOps per time step")
    label = cores[busiest]["label"] if cores else ""
    ax.set_title(f"{result['target']}: per-core load ({'time' if timed else 'SynOps'} per step); "
                 f"busiest {label} in red", fontsize=9)
    return _save(fig, path)
