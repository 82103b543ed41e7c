"""Teacher and students on digits at T = 4, one per distillation method (issue 2's benchmark).

Same student, seeds and epochs for every method, so the table shows what distillation adds
over the plain SNN (``none``). Each student is trained for every seed; the table gives the
mean and the per-seed accuracies on digits' fixed test split (450 images: one image is 0.22 pp).

    .venv/bin/python bench/accuracy.py [--epochs 30] [--seeds 0 1 2] [--write docs/benchmarks.md]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher-arch", default="mnist_cnn")
    ap.add_argument("--student-arch", default="snn_2conv")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--teacher-epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--write", default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    root = Path(tempfile.mkdtemp(prefix="kdsnn-bench-"))
    t0 = time.time()
    teacher = train(TrainConfig(arch=a.teacher_arch, epochs=a.teacher_epochs, out=str(root / "teacher"), quiet=True), "teacher")
    print(f"teacher {a.teacher_arch}: {teacher['accuracy']:.4f}")
    results: dict[str, list[float]] = {}
    for kd in a.methods:
        for seed in a.seeds:
            r = train(TrainConfig(arch=a.student_arch, kd=kd, teacher=teacher["checkpoint"], epochs=a.epochs, seed=seed,
                                  timesteps=4, out=str(root / f"{kd}-{seed}"), quiet=True), "student")
            results.setdefault(kd, []).append(r["accuracy"])
            print(f"{kd} seed {seed}: {r['accuracy']:.4f}")
    plain = statistics.mean(results["none"]) if "none" in results else None
    rows = ["| model | method | mean test accuracy | per seed | vs plain SNN |", "|---|---|---|---|---|",
            f"| teacher {a.teacher_arch} (ANN) | — | {teacher['accuracy'] * 100:.2f} % | seed 0 | |"]
    for kd, accs in results.items():
        mean = statistics.mean(accs)
        delta = "" if plain is None or kd == "none" else f"{(mean - plain) * 100:+.2f} pp"
        rows.append(f"| student {a.student_arch} (SNN, T = 4) | {kd} | {mean * 100:.2f} % | "
                    f"{', '.join(f'{x * 100:.2f}' for x in accs)} | {delta} |")
    table = "\n".join(rows)
    print(table)
    print(f"({time.time() - t0:.0f} s)")
    if a.write:
        cmd = (f"`.venv/bin/python bench/accuracy.py --epochs {a.epochs} --teacher-epochs {a.teacher_epochs} "
               f"--seeds {' '.join(map(str, a.seeds))} --write {a.write}`")
        body = (f"Command: {cmd} ({time.time() - t0:.0f} s on this machine). Data: digits (scikit-learn), fixed "
                "stratified split, 1,347 train / 450 test. Students: direct encoding, hard-reset IF (θ = 1), "
                "membrane readout, SGD 0.05 cosine, batch 64; methods at their defaults (response α = 0.5, τ = 4; "
                "feature α = 1e-3; lasnn α = 1). Target: every KD student ≥ 97 % and above the plain SNN.\n\n" + table)
        replace_section(Path(a.write), "Accuracy on digits (teacher, plain SNN, KD students)", body)


if __name__ == "__main__":
    main()
