"""The report's pictures (matplotlib, headless): firing rates, SynOps, energy, raster, per-core load.

Every plot labels both axes, names the samples it was measured on in its title, writes its numbers with SI
prefixes (:mod:`kdsnn.human`: µJ, µs, M, never exponent notation) and draws zero values (a zero bar on a
log axis is a marked stub at the bottom, labelled 0)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from kdsnn import human  # noqa: E402
from kdsnn.atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _samples(n: int) -> str:
    return f"{n:,} sample{'s' if n != 1 else ''}"


def _ticks(unit: str) -> FuncFormatter:
    """Axis ticks with SI prefixes: ``100 k``, ``1 µJ``, ``50 µs``."""
    return FuncFormatter(lambda v, _: human.si(v, unit, trim=True) if v else "0")


def _log_bars(ax, vals: list[float], unit: str, colors: list[str] | str, labels: list[str] | None = None,
              x: Any = None, width: float = 0.8, label: str | None = None) -> None:
    """Bars on a log axis with SI tick labels; a zero value is a hatched stub at the bottom labelled 0."""
    x = np.arange(len(vals)) if x is None else x
    positive = [v for v in vals if v > 0]
    lo, hi = (min(positive) / 4, max(positive) * 4) if positive else (1e-12, 1.0)
    shown = [v if v > 0 else lo * 1.6 for v in vals]
    bars = ax.bar(x, shown, width, color=colors, label=label)
    for b, v in zip(bars, vals, strict=True):
        if v <= 0:
            b.set_hatch("///")
            b.set_facecolor("white")
            b.set_edgecolor("#888")
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.yaxis.set_major_locator(LogLocator(base=10))
    ax.yaxis.set_major_formatter(_ticks(unit))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    if labels is not None:
        for xi, s, text in zip(x, shown, labels, strict=True):
            ax.annotate(text, (xi, s), ha="center", va="bottom", fontsize=7, rotation=90 if len(vals) > 8 else 0,
                        xytext=(0, 2), textcoords="offset points")


def firing_rates(rates: dict[str, float], path: Path, samples: int, timesteps: int | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(max(4, 0.55 * len(rates) + 2), 3.2))
    names = list(rates)
    ax.bar(names, [rates[n] * 100 for n in names], color="#3a7dc9")
    for i, n in enumerate(names):
        ax.annotate(f"{rates[n] * 100:.1f}", (i, rates[n] * 100), ha="center", va="bottom", fontsize=7)
    ax.set_xlabel("spiking layer")
    ax.set_ylabel("firing rate (% of neurons per step)")
    steps = f" × {timesteps} steps" if timesteps else ""
    ax.set_title(f"Firing rate per spiking layer (reference simulator, {_samples(samples)}{steps})", fontsize=9)
    ax.tick_params(axis="x", rotation=60)
    return _save(fig, path)


def synops(layers: dict[str, dict[str, Any]], path: Path, samples: int) -> Path:
    """One bar per synaptic layer: SynOps (spiking input) or effective MACs (analog first layer); zeros shown."""
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(layers) + 2.5), 3.4))
    names = list(layers)
    analog = [layers[n]["macs_effective"] > 0 and layers[n]["synops"] == 0 for n in names]
    vals = [layers[n]["macs_effective"] if a else layers[n]["synops"] for n, a in zip(names, analog, strict=True)]
    colors = ["#e08a2c" if a else "#3a7dc9" for a in analog]
    _log_bars(ax, vals, "", colors, [human.count(v) for v in vals])
    ax.set_xticks(range(len(names)), names, rotation=60)
    ax.set_xlabel("synaptic layer")
    ax.set_ylabel("operations per inference")
    ax.set_title(f"Synaptic work per layer, mean over {_samples(samples)} (blue: SynOps; orange: effective MACs "
                 "of the analog input; hatched: none)", fontsize=9)
    return _save(fig, path)


def energy(reports: list[dict[str, Any]], path: Path, samples: int) -> Path:
    """Energy per inference by profile: the SNN beside each ANN, in joules with SI prefixes."""
    names = [r["profile"] for r in reports]
    series: dict[str, list[float]] = {"SNN": [r["snn"]["total_joules"] for r in reports]}
    for key in reports[0]["ann"]:
        series[key.replace("_", " ")] = [r["ann"][key]["joules"] for r in reports]
    x = np.arange(len(names))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(2.4 * len(names) + 2, 3.6))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    everything = [v for vals in series.values() for v in vals]
    for i, (label, vals) in enumerate(series.items()):
        _log_bars(ax, vals, "J", palette[i % len(palette)], [human.joules(v) for v in vals], x=x + i * width,
                  width=width, label=label)
    positive = [v for v in everything if v > 0]
    if positive:
        ax.set_ylim(min(positive) / 4, max(positive) * 8)
    ax.set_xticks(x + width * (len(series) - 1) / 2, names)
    ax.set_xlabel("hardware profile")
    ax.set_ylabel("energy per inference")
    ax.set_title(f"Energy per inference by hardware profile, mean over {_samples(samples)}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def raster(spikes: dict[str, np.ndarray], path: Path, max_neurons: int = 512) -> Path:
    """One sample's spikes ``{layer: [T, N]}``: a panel per layer (two columns when there are many), time down,
    neurons across (evenly subsampled to ``max_neurons``), a black cell per spike; sized to its content."""
    n = len(spikes)
    cols = 1 if n <= 4 else 2
    rows = -(-n // cols)
    steps = max(s.shape[0] for s in spikes.values())
    fig, axes = plt.subplots(rows, cols, figsize=(8 * cols, rows * (0.16 * steps + 0.95)), squeeze=False,
                             layout="constrained")
    for ax, (name, s) in zip(axes.T.flat if cols > 1 else axes[:, 0], spikes.items(), strict=False):
        s = s.reshape(s.shape[0], -1)
        keep = np.linspace(0, s.shape[1] - 1, min(max_neurons, s.shape[1])).astype(int)
        ax.imshow(s[:, keep], aspect="auto", cmap="Greys", interpolation="nearest", vmin=0, vmax=1)
        ax.set_ylabel("time step", fontsize=7)
        ax.set_yticks(range(0, s.shape[0], max(1, s.shape[0] // 4)))
        ax.tick_params(labelsize=7)
        ticks = np.linspace(0, len(keep) - 1, min(5, len(keep))).astype(int)
        ax.set_xticks(ticks, [f"{keep[i]:,}" for i in ticks])
        ax.set_xlabel("neuron index" + (" (evenly subsampled)" if len(keep) < s.shape[1] else ""), fontsize=7)
        ax.set_title(f"{name}: {s.shape[1]:,} neurons ({len(keep):,} shown), {int(s.sum()):,} spikes, "
                     f"rate {s.mean() * 100:.1f} %", fontsize=8, loc="left")
    for ax in list(axes.T.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Spike raster of one test sample (1 sample: the first)", fontsize=10)
    return _save(fig, path)


def core_load(result: dict[str, Any], path: Path) -> Path:
    """One bar per core of a ``kdsnn map`` result, in the unit that limits the chip: time per step where the
    target publishes its timing (the step waits for the busiest core), SynOps per step otherwise; the busiest
    core in red, so the step's bottleneck stands out."""
    cores = [c for c in result["placement"]["cores"] if "per_step" in c]
    timed = result["latency"].get("step_seconds") is not None
    vals = [c["per_step"]["seconds"] if timed else c["per_step"]["synops"] for c in cores]
    busiest = int(np.argmax(vals)) if vals else 0
    fig, ax = plt.subplots(figsize=(min(14, max(4, 0.18 * len(cores) + 3)), 3.2))
    colors = ["#c0392b" if i == busiest else "#3a7dc9" for i in range(len(cores))]
    ax.bar(range(len(cores)), vals, color=colors)
    unit = "s" if timed else ""
    ax.yaxis.set_major_formatter(_ticks(unit))
    if len(cores) <= 24:
        ax.set_xticks(range(len(cores)), [c["label"] for c in cores], rotation=60, fontsize=7)
    ax.set_xlabel("core" if result["kind"] != "layers" else "chip layer")
    ax.set_ylabel("time per step" if timed else "SynOps per step")
    label = cores[busiest]["label"] if cores else ""
    samples = (result.get("load") or {}).get("samples", 0)
    ax.set_title(f"{result['target']}: per-core load ({'time' if timed else 'SynOps'} per step), mean over "
                 f"{_samples(samples)}; busiest {label} in red", fontsize=9)
    return _save(fig, path)
