"""HTML pieces both reports (checkpoint and graph) are built from: images inlined, tables, and
the accuracy, energy and source rows, so the two pages say the same things the same way."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from ..targets.core_load import human_joules
from .targets import energy_line


def img(path: Path) -> str:
    return f'<img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def table(rows: list[list[Any]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def accuracy_rows(r: dict[str, Any]) -> list[list[Any]]:
    """One row per backend: accuracy, samples, note."""
    return [[k, f"{v['accuracy'] * 100:.2f} %" if "accuracy" in v else "—", v.get("samples", ""), v.get("note", "")]
            for k, v in r["accuracy"].items()]


def energy_rows(r: dict[str, Any], article: str = "") -> list[list[Any]]:
    """Per profile: the SNN's energy with its terms, then each ANN beside it in a plain sentence."""
    rows = []
    for e in r["energy"]:
        rows.append([e["profile"], "SNN", human_joules(e["snn"]["total_joules"]), "; ".join(
            f"{k}: {v['count']:.3g} × {v['joules_each']:.3g} J" for k, v in e["snn"].items() if isinstance(v, dict))])
        for name, a in e["ann"].items():
            rows.append([e["profile"], name, human_joules(a["joules"]),
                         f"{a['count']:.3g} MACs. "
                         + energy_line(e["snn"]["total_joules"], a["joules"], f"{article}{name}")])
    return rows


def sources_html(r: dict[str, Any]) -> str:
    """Each profile's per-operation sources as list items."""
    return "".join(f"<li><b>{html.escape(e['profile'])}</b>: " + "; ".join(
        f"{html.escape(k)}: {html.escape(s)}" for k, s in e["sources"].items()) + "</li>" for e in r["energy"])
