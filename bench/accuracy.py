"""Teacher and students on digits at T = 4, one per distillation method (issue 2's benchmark).

Same student, seeds and epochs for every method, so the table shows what distillation adds
over the plain SNN (``none``): the mean over seeds and the per-seed (paired) difference to the
plain SNN trained with the same seed. ``--validate`` trains on 80 % of the training split and
measures the held-out 20 % instead of the test split: options (student width, KD weights) are
chosen there, and the test split is measured once with the chosen ones.

    .venv/bin/python bench/accuracy.py [--width 0.25] [--epochs 30] [--seeds 0 1 2 3 4]
        [--alpha response=0.9] [--validate] [--write docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._doc import replace_section  # noqa: E402
from kdsnn.trainer import TrainConfig, train  # noqa: E402

METHODS = ["none", "response", "feature", "lasnn"]


def parse_alphas(items: list[str]) -> dict[str, float]:
    """``["response=0.9", ...]`` → ``{"response": 0.9}``."""
    out = {}
    for item in items:
        kd, _, value = item.partition("=")
        if kd not in METHODS or not value:
            raise SystemExit(f"--alpha wants METHOD=VALUE with METHOD in {METHODS}, got {item!r}")
        out[kd] = float(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher-arch", default="mnist_cnn")
    ap.add_argument("--student-arch", default="snn_2conv")
    ap.add_argument("--width", type=float, default=0.25, help="student channel multiplier")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--teacher-epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--alpha", nargs="*", default=[], help="METHOD=VALUE overrides of the methods' defaults")
    ap.add_argument("--validate", action="store_true", help="measure the held-out 20 %% of the training split")
    ap.add_argument("--write", default=None)
    ap.add_argument("--section", default=None)
    a = ap.parse_args()
    alphas = parse_alphas(a.alpha)
    torch.set_num_threads(2)
    root = Path(tempfile.mkdtemp(prefix="kdsnn-bench-"))
    t0 = time.time()
    teacher = train(TrainConfig(arch=a.teacher_arch, epochs=a.teacher_epochs, out=str(root / "teacher"), quiet=True,
                                validate=a.validate), "teacher")
    split = teacher["split"]
    print(f"teacher {a.teacher_arch}: {split} {teacher['accuracy']:.4f}")
    results: dict[str, list[float]] = {}
    for kd in a.methods:
        for seed in a.seeds:
            r = train(TrainConfig(arch=a.student_arch, kd=kd, teacher=teacher["checkpoint"], epochs=a.epochs, seed=seed,
                                  timesteps=4, width=a.width, alpha=alphas.get(kd), out=str(root / f"{kd}-{seed}"),
                                  quiet=True, validate=a.validate), "student")
            results.setdefault(kd, []).append(r["accuracy"])
            print(f"{kd} seed {seed}: {r['accuracy']:.4f}", flush=True)
    table = _table(a, alphas, teacher["accuracy"], results, split)
    print(table)
    elapsed = time.time() - t0
    print(f"({elapsed:.0f} s)")
    if a.write:
        flags = " ".join(f"--{k} {v}"
                         for k, v in (("width", a.width), ("epochs", a.epochs), ("teacher-epochs", a.teacher_epochs)))
        cmd = (f"`.venv/bin/python bench/accuracy.py {flags} --seeds {' '.join(map(str, a.seeds))}"
               + (f" --alpha {' '.join(a.alpha)}" if a.alpha else "") + (" --validate" if a.validate else "")
               + f" --write {a.write}`")
        n_eval = ("269 held-out training images (1 image = 0.37 pp)" if a.validate
                  else "450 test images (1 image = 0.22 pp)")
        body = (f"Command: {cmd} ({elapsed:.0f} s on this machine). Data: digits (scikit-learn), fixed stratified "
                f"split, 1,347 train / 450 test; accuracy on {n_eval}. Students: {a.student_arch} at width "
                f"{a.width}, direct encoding, hard-reset IF (θ = 1), membrane readout, SGD 0.05 cosine, batch 64, "
                f"{a.epochs} epochs; methods at their defaults unless --alpha says otherwise (response α = 0.9, τ = 4; "
                "feature α = 1e-3; lasnn α = 1). Target: every KD student ≥ 97 % and above the plain SNN.\n\n" + table)
        section = a.section or ("Accuracy on digits, held-out split (choosing options)" if a.validate
                                else "Accuracy on digits (teacher, plain SNN, KD students)")
        replace_section(Path(a.write), section, body)


def _table(a: argparse.Namespace, alphas: dict[str, float], teacher_acc: float, results: dict[str, list[float]],
           split: str) -> str:
    """Markdown: teacher, then each method's mean, per-seed accuracies and paired difference to ``none``."""
    plain = results.get("none")
    rows = [f"| model | method | mean {split} accuracy | per seed | vs plain SNN (mean of paired differences) "
            "| seeds above / equal / below |",
            "|---|---|---|---|---|---|",
            f"| teacher {a.teacher_arch} (ANN) | — | {teacher_acc * 100:.2f} % | seed 0 | | |"]
    for kd, accs in results.items():
        delta = wins = ""
        if plain is not None and kd != "none":
            diffs = [x - y for x, y in zip(accs, plain, strict=True)]
            delta = f"{statistics.mean(diffs) * 100:+.2f} pp"
            wins = f"{sum(d > 0 for d in diffs)} / {sum(d == 0 for d in diffs)} / {sum(d < 0 for d in diffs)}"
        alpha = f", α = {alphas[kd]}" if kd in alphas else ""
        rows.append(f"| student {a.student_arch} ×{a.width} (SNN, T = 4) | {kd}{alpha} "
                    f"| {statistics.mean(accs) * 100:.2f} % | "
                    f"{', '.join(f'{x * 100:.2f}' for x in accs)} | {delta} | {wins} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
