"""Run a sweep of training runs one after another, keeping every finished run's result.

A plan (``bench/sweeps/*.toml``) lists runs; each is a ``kdsnn train-teacher`` or ``kdsnn
distill`` command given as options (the names of its flags). ``[common]`` options go to every
run; ``teacher = "@NAME"`` stands for the checkpoint of the plan's run NAME. Each finished run
appends one JSON line (name, command, options, accuracy, split, seconds) to ``--results``; a
run already there is skipped, so a stopped sweep continues where it stopped (an interrupted
run resumes from its last epoch). Choose with ``validate = true`` in ``[common]``: the
held-out fifth of the training split, never the test split.

    .venv/bin/python bench/sweep.py bench/sweeps/mnist-teacher.toml --data-root /work/mnist-dev \\
        --runs /work/i18-sweeps/runs --results /work/i18-sweeps/results.jsonl [--only NAME ...]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

COMMANDS = {"teacher": "train-teacher", "student": "distill"}


def flags(options: dict[str, Any]) -> list[str]:
    """``{"batch-size": 64, "validate": True}`` → ``["--batch-size", "64", "--validate"]``."""
    out: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is not False:
            out += [flag, str(value)]
    return out


def done(results: Path) -> dict[str, dict[str, Any]]:
    """Results already in the file, by run name (the last line of a name wins)."""
    if not results.exists():
        return {}
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {r["name"]: r for r in rows}


def run_one(run: dict[str, Any], common: dict[str, Any], runs: Path, data_root: str | None) -> dict[str, Any]:
    """One training command in a child process; returns its result line."""
    name, kind = run["name"], run["kind"]
    options = {**common, **{k: v for k, v in run.items() if k not in ("name", "kind", "note")}}
    if kind == "teacher":
        options.pop("teacher", None)
    if isinstance(options.get("teacher"), str) and options["teacher"].startswith("@"):
        options["teacher"] = str(runs / options["teacher"][1:] / "checkpoint.pt")
    if data_root and "data-root" not in options:
        options["data-root"] = data_root
    out = runs / name
    cmd = [sys.executable, "-m", "kdsnn", COMMANDS[kind], *flags(options), "--out", str(out), "--resume",
           "--quiet", "--json"]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"run {name} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    result = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    metrics = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln]
    key = f"{result['split']}_accuracy"
    return {"name": name, "kind": kind, "options": options, "accuracy": result["accuracy"], "split": result["split"],
            "best": max(m[key] for m in metrics), "curve": [round(m[key], 4) for m in metrics],
            "recipe": result.get("recipe"), "seconds": round(seconds, 1), "note": run.get("note", "")}


def table(runs: list[dict[str, Any]], finished: dict[str, dict[str, Any]]) -> str:
    """Markdown: each finished run of the plan with its note, final and best-epoch accuracy and time."""
    rows = ["| run | what | accuracy (last epoch) | best epoch | minutes |", "|---|---|---|---|---|"]
    for run in runs:
        r = finished.get(run["name"])
        if r is not None:
            rows.append(f"| {r['name']} | {r['note']} | {r['accuracy'] * 100:.2f} % ({r['split']}) "
                        f"| {r['best'] * 100:.2f} % | {r['seconds'] / 60:.0f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plan", help="sweep plan (TOML): [common] and [[run]] tables")
    ap.add_argument("--runs", required=True, help="folder of the runs' checkpoints")
    ap.add_argument("--results", required=True, help="JSON-lines file the finished runs are appended to")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--only", nargs="*", default=None, help="run only these names")
    ap.add_argument("--table", action="store_true", help="print the plan's finished runs as a markdown table, run none")
    a = ap.parse_args()
    plan = tomllib.loads(Path(a.plan).read_text())
    common, runs = plan.get("common", {}), plan.get("run", [])
    results, folder = Path(a.results), Path(a.runs)
    if a.table:
        print(table(runs, done(results)))
        return
    results.parent.mkdir(parents=True, exist_ok=True)
    for run in runs:
        if a.only is not None and run["name"] not in a.only:
            continue
        if run["name"] in done(results):
            print(f"{run['name']}: done before, skipped", flush=True)
            continue
        row = run_one(run, common, folder, a.data_root)
        with results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{row['name']}: {row['split']} {row['accuracy'] * 100:.2f} % (best epoch {row['best'] * 100:.2f} %), "
              f"{row['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
