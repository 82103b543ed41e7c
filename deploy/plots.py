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
    fig, ax = plt.subplots(figsize=(max(4, 0.55 * len(layers) + 2), 3.2))
    names = list(layers)
    syn = [layers[n]["synops"] for n in names]
    mac = [layers[n]["macs_effective"] for n in names]
    ax.bar(names, syn, color="#3a7dc9", label="SynOps (spike × synapses reached)")
    ax.bar(names, mac, bottom=syn, color="#e08a2c", label="effective MACs (analog first layer)")
    ax.set_ylabel("operations per inference")
    ax.set_yscale("log")
    ax.set_title("Synaptic work per layer")
    ax.tick_params(axis="x", rotation=60)
    ax.legend(fontsize=8)
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


def raster(spikes: dict[str, np.ndarray], path: Path, max_neurons: int = 400) -> Path:
    """One sample's spikes ``{layer: [T, N]}``: each layer a band, neurons subsampled evenly."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(spikes) + 2.5))
    offset, ticks, labels = 0, [], []
    for name, s in spikes.items():
        s = s.reshape(s.shape[0], -1)
        keep = np.linspace(0, s.shape[1] - 1, min(max_neurons, s.shape[1])).astype(int)
        t, n = np.nonzero(s[:, keep])
        ax.scatter(t, n + offset, s=2, marker="|", color="black")
        ticks.append(offset + len(keep) / 2)
        labels.append(f"{name} ({s.shape[1]})")
        offset += len(keep) + 20
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("time step")
    ax.set_xticks(range(next(iter(spikes.values())).shape[0]))
    ax.set_title("Spike raster of one test sample (neurons subsampled per layer)")
    return _save(fig, path)
