"""HTML pieces both reports (checkpoint and graph) are built from: images inlined, tables, and
the accuracy, energy and source rows, so the two pages say the same things the same way."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from kdsnn import human

from .targets import energy_line

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
         "td.n{text-align:right}img{max-width:100%;margin:0.5em 0}figure{margin:1em 0}"
         "figcaption{font-size:0.9em;color:#555}#summary{background:#f4f7fb;border:1px solid #c9d6e8;"
         "padding:0.5em 1.2em;margin:1em 0}#summary li{margin:0.3em 0}.bad{color:#b03020}.good{color:#1d7a35}")


def img(path: Path) -> str:
    return f'<img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def figure(path: Path, caption: str) -> str:
    """An inlined image with a caption that says what it shows and on how many samples."""
    return f"<figure>{img(path)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def fmt(v: Any) -> str:
    """A table cell: numbers with thousands separators or SI prefixes (never exponent notation)."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)):
        return human.count(v)
    return html.escape(str(v))


def table(rows: list[list[Any]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def accuracy_rows(r: dict[str, Any]) -> list[list[Any]]:
    """One row per backend: accuracy, samples, note."""
    return [[k, human.percent(v["accuracy"]) if "accuracy" in v else "—", v.get("samples", ""),
             human.percent(v["agreement"]) if "agreement" in v else "—", v.get("note", "")]
            for k, v in r["accuracy"].items()]


ACCURACY_HEAD = ["backend", "accuracy", "samples", "same prediction as the reference simulator", "note"]


def energy_rows(r: dict[str, Any], article: str = "") -> list[list[Any]]:
    """Per profile: the SNN's energy with its terms, then each ANN beside it in a plain sentence."""
    rows = []
    for e in r["energy"]:
        rows.append([e["profile"], "SNN", human.joules(e["snn"]["total_joules"]), "; ".join(
            f"{k}: {human.count(v['count'])} × {human.joules(v['joules_each'])}" for k, v in e["snn"].items()
            if isinstance(v, dict))])
        for name, a in e["ann"].items():
            rows.append([e["profile"], name, human.joules(a["joules"]),
                         f"{human.count(a['count'])} MACs. "
                         + energy_line(e["snn"]["total_joules"], a["joules"], f"{article}{name}")])
    return rows


def sources_html(r: dict[str, Any]) -> str:
    """Each profile's per-operation sources as list items."""
    return "".join(f"<li><b>{html.escape(e['profile'])}</b>: " + "; ".join(
        f"{html.escape(k)}: {html.escape(s)}" for k, s in e["sources"].items()) + "</li>" for e in r["energy"])
