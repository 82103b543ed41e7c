"""The report's answer in ten seconds: what was measured, accuracy, energy against the ANN, a verdict per target.

The same lines open ``report.html`` (before any table) and end ``kdsnn report`` in the terminal; each names the
samples it was measured on. The target lines are ``kdsnn map``'s own verdicts (:func:`..targets.command.verdict`).
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from kdsnn import human

from ..targets.command import closing_line, verdict
from .targets import energy_line

REFERENCE = "reference simulator"


@dataclass
class Summary:
    """The summary as plain text lines, grouped as the page shows them."""

    about: str
    accuracy: list[str] = field(default_factory=list)
    energy: list[str] = field(default_factory=list)
    targets: list[tuple[str, str | None]] = field(default_factory=list)
    closing: str | None = None


def _samples(n: int) -> str:
    return f"{n:,} sample{'s' if n != 1 else ''}"


def _about(r: dict[str, Any]) -> str:
    if "checkpoint_arch" in r:
        return (f"{r['checkpoint_arch']} on {r['dataset']}: T = {r['timesteps']}, {r['bits']}-bit integer weights, "
                f"{r['parameters']:,} parameters, {r['encoding']} encoding, {r['readout']} readout; "
                f"{_samples(r['samples'])} measured")
    return f"{r['model']} on {r['inputs']}: T = {r['timesteps']}, IF reset {r['if_reset']}, {r['readout']} readout"


def _accuracy(r: dict[str, Any]) -> list[str]:
    """``float (PyTorch student) 93.80 % → quantized 8-bit (PyTorch) 93.60 % → …``, then each backend's samples
    and how often it predicted what the reference simulator predicted on them."""
    rows = {k: v for k, v in r["accuracy"].items() if "accuracy" in v}
    if not rows:
        return ["accuracy: not measured (no labels)"]
    lines = [" → ".join(f"{k} {human.percent(v['accuracy'])} ({_samples(v['samples'])})" for k, v in rows.items())]
    agree = [f"{k} {human.percent(v['agreement'])} of {v['samples']:,}" for k, v in rows.items()
             if "agreement" in v and REFERENCE not in k]
    if agree:
        lines.append("the same prediction as the reference simulator on the samples each ran: " + "; ".join(agree))
    for k, v in r["accuracy"].items():
        if "accuracy" not in v and v.get("note"):
            lines.append(f"{k}: {v['note']}")
    return lines


def _energy(r: dict[str, Any]) -> list[str]:
    n = r.get("samples")
    per = f" (mean over {_samples(n)})" if n else ""
    lines = []
    for e in r["energy"]:
        name, ann = next(iter(e["ann"].items()))
        lines.append(f"{e['profile']}{per}: " + energy_line(e["snn"]["total_joules"], ann["joules"], name))
    return lines


def summarize(r: dict[str, Any]) -> Summary:
    """The summary of a report's JSON content (checkpoint or graph report)."""
    targets = [t for t in r.get("targets", []) if "placement" in t]
    return Summary(_about(r), _accuracy(r), _energy(r), [verdict(t) for t in targets],
                   closing_line(targets) if targets else None)


def summary_html(r: dict[str, Any]) -> str:
    """The summary section: no table, so it is read before any table."""
    s = summarize(r)
    e = html.escape
    parts = [f'<section id="summary"><h2>Summary</h2><p><b>{e(s.about)}</b>.</p>',
             "<p><b>Accuracy</b></p><ul>" + "".join(f"<li>{e(x)}</li>" for x in s.accuracy) + "</ul>",
             "<p><b>Energy per inference, SNN against the ANN</b></p><ul>"
             + "".join(f"<li>{e(x)}</li>" for x in s.energy) + "</ul>"]
    if s.targets:
        items = []
        for head, problem in s.targets:
            cls = "bad" if problem else "good"
            items.append(f'<li class="{cls}">{e(head)}' + (f"<br><small>first problem: {e(problem)}</small>"
                                                          if problem else "") + "</li>")
        m = r.get("map_samples")
        on = f" ({_samples(m)}, as kdsnn map)" if m else ""
        parts.append(f"<p><b>Hardware targets{on}</b>: {e(s.closing or '')}</p><ul>" + "".join(items) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def summary_text(r: dict[str, Any]) -> str:
    """The summary for a terminal (the end of ``kdsnn report``)."""
    s = summarize(r)
    lines = ["summary", f"  {s.about}", "  accuracy:"] + [f"    {x}" for x in s.accuracy]
    lines += ["  energy per inference, SNN against the ANN:"] + [f"    {x}" for x in s.energy]
    if s.targets:
        lines.append("  hardware targets:")
        for head, problem in s.targets:
            lines.append(f"    {head}" + (f"\n      first problem: {problem}" if problem else ""))
        lines.append(f"  {s.closing}")
    return "\n".join(lines)


__all__ = ["Summary", "summarize", "summary_html", "summary_text"]
