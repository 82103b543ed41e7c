"""Teachers, the plain SNN and every distillation method side by side, several seeds (issue 18's benchmark).

Every run is what ``kdsnn train-teacher`` / ``kdsnn distill`` does with the data set's recipe
(kdsnn/recipes/), plus only what the command line here names. The students share seeds, so the
table shows each method's mean ± sample standard deviation over seeds and the mean of the paired
(same-seed) differences to the plain SNN (``--kd none``), with each run's training time, wall
clock and CPU (all threads; on a machine shared with other jobs wall time is inflated).
``--validate`` measures the held-out fifth of the training split instead of the test split:
choose options there, measure the test split once with the chosen ones.
A second table says why KD can add little (bench/accuracy.py's ``diagnose``): each model's accuracy
on its own training images without augmentation, and its test errors divided into those the
teacher gets right (all that KD could fix) and those both make.

Each finished run is kept in ``--runs`` (its checkpoint and a ``bench.json``), so a stopped
benchmark continues where it stopped and a finished one only rewrites its table.

    .venv/bin/python bench/accuracy.py --dataset mnist --data-root /work/mnist-dev --teachers mnist_cnn resnet18 \\
        --kd-teacher mnist_cnn --seeds 0 1 2 --runs runs/bench-mnist --write docs/benchmarks.md
    .venv/bin/python bench/accuracy.py --width 0.25 --epochs 30 --teacher-epochs 30 --seeds 0 1 2 3 4   # digits
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._doc import replace_section  # noqa: E402
from kdsnn import recipes  # noqa: E402
from kdsnn.atomic import write_text  # noqa: E402
from kdsnn.trainer import TrainConfig, train  # noqa: E402

METHODS = ["none", "response", "feature", "lasnn"]
DATA_TEXT = {
    "digits": "digits (scikit-learn), fixed stratified split, 1,347 train / 450 test",
    "mnist": "the MNIST dev set (`shared/tools/make-mnist-dev`: 6,393 train / 1,603 test real MNIST digits)",
}

SECTIONS = {  # (data set, --validate) → the docs/benchmarks.md section a run rewrites
    ("digits", False): "Accuracy on digits (teacher, plain SNN, KD students)",
    ("digits", True): "Accuracy on digits, held-out split (choosing options)",
    ("mnist", False): "Accuracy on the MNIST dev set (teachers, plain SNN, KD students)",
    ("mnist", True): "Accuracy on the MNIST dev set, held-out split (choosing options)",
}


def parse_alphas(items: list[str]) -> dict[str, float]:
    """``["response=0.9", ...]`` → ``{"response": 0.9}``."""
    out = {}
    for item in items:
        kd, _, value = item.partition("=")
        if kd not in METHODS or not value:
            raise SystemExit(f"--alpha wants METHOD=VALUE with METHOD in {METHODS}, got {item!r}")
        out[kd] = float(value)
    return out


def run_once(folder: Path, cfg: TrainConfig, kind: str) -> dict[str, Any]:
    """Train (or resume) one run in ``folder``; its result with wall and CPU seconds, kept in bench.json."""
    record = folder / "bench.json"
    if record.exists():
        return json.loads(record.read_text())
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(cfg, kind)
    result.update(wall_s=round(time.perf_counter() - wall, 1), cpu_s=round(time.process_time() - cpu, 1))
    resolved, _ = recipes.apply(cfg, kind)
    result["epochs"] = resolved.epochs
    write_text(record, json.dumps(result) + "\n")
    return result


@functools.cache
def _split(dataset: str, split: str, root: str | None):
    """A split read once for every run's diagnosis (never augmented)."""
    from kdsnn import data

    return data.load(dataset, split, root)


def predictions(checkpoint: str, dataset: str, split: str, root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, label) of every example of ``split`` (never augmented here), one thread."""
    from kdsnn import data
    from kdsnn.checkpoint import load_model

    model, _ = load_model(checkpoint)
    model.eval()
    preds, labels = [], []
    with torch.no_grad():
        for x, y in data.loader(_split(dataset, split, root), 256, shuffle=False):
            preds.append(model(x).logits.argmax(1))
            labels.append(y)
    return torch.cat(preds), torch.cat(labels)


def diagnose(run: dict[str, Any], teacher_right: torch.Tensor | None, a: argparse.Namespace) -> dict[str, Any]:
    """Why KD can add little, measured per run (kept in the run's diagnosis.json): how well the model fits its
    own training images without augmentation, and how many of its test errors the teacher gets right (all
    that KD could fix) or also makes."""
    record = Path(run["checkpoint"]).parent / "diagnosis.json"
    if record.exists():
        return json.loads(record.read_text())
    fit_split, eval_split = ("fit", "val") if a.validate else ("train", "test")
    p, y = predictions(run["checkpoint"], a.dataset, fit_split, a.data_root)
    out: dict[str, Any] = {"fit_accuracy": float((p == y).double().mean())}
    p, y = predictions(run["checkpoint"], a.dataset, eval_split, a.data_root)
    wrong = p != y
    out.update(errors=int(wrong.sum()), right=(~wrong).tolist())
    if teacher_right is not None:
        out.update(teacher_right=int((wrong & teacher_right).sum()), both_wrong=int((wrong & ~teacher_right).sum()))
    write_text(record, json.dumps(out) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--teachers", nargs="+", default=["mnist_cnn"], help="teacher architectures to train")
    ap.add_argument("--kd-teacher", default=None, help="the teacher the students learn from (default: the first)")
    ap.add_argument("--student-arch", default="snn_2conv")
    ap.add_argument("--width", type=float, default=1.0, help="student channel multiplier")
    ap.add_argument("--epochs", type=int, default=None, help="student epochs (default: the recipe's)")
    ap.add_argument("--teacher-epochs", type=int, default=None, help="teacher epochs (default: the recipe's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--alpha", nargs="*", default=[], help="METHOD=VALUE overrides of the recipe's weights")
    ap.add_argument("--validate", action="store_true", help="measure the held-out 20 %% of the training split")
    ap.add_argument("--runs", default=None, help="folder keeping every run (default: a new temporary folder)")
    ap.add_argument("--write", default=None)
    ap.add_argument("--section", default=None)
    ap.add_argument("--table-only", action="store_true",
                    help="write the table from the finished runs in --runs; train nothing (a stopped benchmark)")
    a = ap.parse_args()
    alphas = parse_alphas(a.alpha)
    kd_teacher = a.kd_teacher or a.teachers[0]
    if kd_teacher not in a.teachers:
        raise SystemExit(f"--kd-teacher {kd_teacher} is not among --teachers {a.teachers}")
    root = Path(a.runs) if a.runs else Path(tempfile.mkdtemp(prefix="kdsnn-bench-"))
    common = dict(dataset=a.dataset, data_root=a.data_root, validate=a.validate, quiet=True, resume=True)
    t0 = time.time()
    teachers = {}
    for arch in a.teachers:
        teachers[arch] = run_once(root / f"teacher-{arch}",
                                  TrainConfig(arch=arch, epochs=a.teacher_epochs, out=str(root / f"teacher-{arch}"),
                                              **common), "teacher")
        print(f"teacher {arch}: {teachers[arch]['split']} {teachers[arch]['accuracy']:.4f} "
              f"({teachers[arch]['wall_s']:.0f} s)", flush=True)
    students: dict[str, list[dict[str, Any]]] = {}
    for seed in a.seeds:  # every method at one seed before the next seed: a stopped run still pairs
        for kd in a.methods:
            name = f"{kd}-{seed}"
            teacher = None if kd == "none" else teachers[kd_teacher]["checkpoint"]  # a plain SNN runs none
            cfg = TrainConfig(arch=a.student_arch, kd=kd, teacher=teacher, epochs=a.epochs, seed=seed, width=a.width,
                              alpha=alphas.get(kd), out=str(root / name), **common)
            if a.table_only and not (root / name / "bench.json").exists():
                continue
            r = run_once(root / name, cfg, "student") | {"seed": seed}
            students.setdefault(kd, []).append(r)
            print(f"{kd} seed {seed}: {r['accuracy']:.4f} ({r['wall_s']:.0f} s)", flush=True)
    torch.set_num_threads(1)
    t_diag = {arch: diagnose(t, None, a) for arch, t in teachers.items()}
    t_right = torch.tensor(t_diag[kd_teacher]["right"])
    diags = {kd: [diagnose(r, t_right, a) for r in runs] for kd, runs in students.items()}
    table = _table(a, kd_teacher, teachers, students) + "\n\n" + _why_table(a, kd_teacher, t_diag, diags)
    print(table)
    elapsed = time.time() - t0
    print(f"({elapsed:.0f} s this invocation)")
    if a.write:
        _write(a, alphas, kd_teacher, table, teachers, students)


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values) * 100:.2f} ± {sd * 100:.2f} %"


def _minutes(runs: list[dict[str, Any]]) -> str:
    wall = statistics.mean(r["wall_s"] for r in runs) / 60
    cpu = statistics.mean(r["cpu_s"] for r in runs) / 60
    return f"{wall:.1f} / {cpu:.1f}"


def _table(a: argparse.Namespace, kd_teacher: str, teachers: dict[str, dict], students: dict[str, list[dict]]) -> str:
    """Markdown: teachers, then each method's mean ± sd, per-seed accuracies, paired difference to ``none``."""
    split = next(iter(teachers.values()))["split"]
    rows = [f"| model | method | {split} accuracy (mean ± sd) | per seed | vs plain SNN: mean of paired differences "
            "(± sd) | seeds above / equal / below | epochs | training time, min (wall / CPU) |",
            "|---|---|---|---|---|---|---|---|"]
    for arch, t in teachers.items():
        rows.append(f"| teacher {arch} (ANN) | — | {t['accuracy'] * 100:.2f} % | seed 0 | | | {t['epochs']} "
                    f"| {_minutes([t])} |")
    plain = {r["seed"]: r["accuracy"] for r in students.get("none", [])}
    for kd, runs in students.items():
        accs = [r["accuracy"] for r in runs]
        delta = wins = ""
        diffs = [r["accuracy"] - plain[r["seed"]] for r in runs if r["seed"] in plain]  # paired by seed
        if diffs and kd != "none":
            sd = statistics.stdev(diffs) * 100 if len(diffs) > 1 else 0.0
            delta = f"{statistics.mean(diffs) * 100:+.2f} pp (± {sd:.2f})"
            wins = f"{sum(d > 0 for d in diffs)} / {sum(d == 0 for d in diffs)} / {sum(d < 0 for d in diffs)}"
        source = "" if kd == "none" else f" from {kd_teacher}"
        per_seed = ", ".join(f"{r['accuracy'] * 100:.2f} (seed {r['seed']})" for r in runs)
        rows.append(f"| student {a.student_arch} ×{a.width:g} (SNN, T = 4) | {kd}{source} | {_mean_sd(accs)} | "
                    f"{per_seed} | {delta} | {wins} | {runs[0]['epochs']} "
                    f"| {_minutes(runs)} |")
    return "\n".join(rows)


def _why_table(a: argparse.Namespace, kd_teacher: str, teachers: dict[str, dict],
               students: dict[str, list[dict]]) -> str:
    """Markdown: each model's fit of its own training images and its test errors, split by whether the teacher
    gets them right (what KD could fix), means over seeds."""
    fit_split = "fit part of the training split" if a.validate else "training split"
    rows = [f"| model | method | accuracy on the {fit_split}, no augmentation | errors on the evaluated split | of "
            f"them the {kd_teacher} teacher gets right (KD's headroom) | both wrong |", "|---|---|---|---|---|---|"]
    for arch, d in teachers.items():
        rows.append(f"| teacher {arch} | — | {d['fit_accuracy'] * 100:.2f} % | {d['errors']} | — | — |")
    for kd, ds in students.items():
        m = {k: statistics.mean(d[k] for d in ds) for k in ("fit_accuracy", "errors", "teacher_right", "both_wrong")}
        rows.append(f"| student {a.student_arch} ×{a.width:g} | {kd} | {m['fit_accuracy'] * 100:.2f} % | "
                    f"{m['errors']:.1f} | {m['teacher_right']:.1f} | {m['both_wrong']:.1f} |")
    return "\n".join(rows)


def _command(a: argparse.Namespace) -> str:
    parts = [f"--dataset {a.dataset}"] + ([f"--data-root {a.data_root}"] if a.data_root else [])
    parts += [f"--teachers {' '.join(a.teachers)}", f"--kd-teacher {a.kd_teacher or a.teachers[0]}",
              f"--student-arch {a.student_arch}", f"--width {a.width:g}"]
    parts += [f"--{k} {v}" for k, v in (("epochs", a.epochs), ("teacher-epochs", a.teacher_epochs)) if v is not None]
    parts += [f"--seeds {' '.join(map(str, a.seeds))}", f"--methods {' '.join(a.methods)}"]
    parts += ([f"--alpha {' '.join(a.alpha)}"] if a.alpha else []) + (["--validate"] if a.validate else [])
    return f"`.venv/bin/python bench/accuracy.py {' '.join(parts)} --runs DIR --write {a.write}`"


def _write(a: argparse.Namespace, alphas: dict[str, float], kd_teacher: str, table: str,
           teachers: dict[str, dict], students: dict[str, list[dict]]) -> None:
    t_recipe = recipes.load(None, "teacher", a.dataset)
    s_recipe = recipes.load(None, "student", a.dataset)
    overrides = ", ".join(f"{k} = {v}" for k, v in (("student epochs", a.epochs), ("teacher epochs", a.teacher_epochs),
                                                     *((f"{m} α", v) for m, v in alphas.items())) if v is not None)
    weights = "; ".join(f"{m} α = {s_recipe.values(a.student_arch, m).get('alpha')}" for m in a.methods if m != "none")
    split = ("the held-out fifth of the training split (`--validate`)" if a.validate else "the test split")
    body = (f"Command: {_command(a)}. Data: {DATA_TEXT.get(a.dataset, a.dataset)}; accuracy on {split}. "
            f"Recipes: teachers `{t_recipe.name}` ({recipes.summary(t_recipe.values(a.teachers[0]))}), students "
            f"`{s_recipe.name}` ({recipes.summary(s_recipe.values(a.student_arch))}; {weights})"
            + (f"; overridden here: {overrides}" if overrides else "") + f". Students: {a.student_arch} at width "
            f"{a.width:g}, direct encoding, hard-reset IF (θ = 1), membrane readout, T = 4; KD students learn from "
            f"the {kd_teacher} teacher above. Time: one training run each, mean over seeds (wall clock / CPU time "
            "of all threads). The second table measures why KD can add little: each model's accuracy on its own "
            "training images without augmentation (how well it fits them), and its errors on the evaluated split "
            "divided into those the teacher gets right (all that KD could fix) and those both make (means over "
            "seeds).\n\n" + table)
    section = a.section or SECTIONS.get((a.dataset, a.validate), f"Accuracy on {a.dataset}"
                                        + (", held-out split" if a.validate else ""))
    replace_section(Path(a.write), section, body)


if __name__ == "__main__":
    main()
