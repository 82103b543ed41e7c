"""Images per second of real MNIST training (loader, augmentation, step), before and after issue 18's fixes.

A training epoch of mnist_cnn on the MNIST dev set with the recipe's RandomAffine ran at 44
images/s on this machine. Two causes are measured here, side by side, each configuration in
its own child process (libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads):

- OpenMP's wait policy: ``ACTIVE`` (worker threads spin while waiting: libgomp's default
  behaviour) against ``PASSIVE`` (they sleep: what ``import kdsnn`` now sets unless the user
  set it) on a machine shared with other jobs;
- augmentation: torchvision's ``RandomAffine`` per image (one thread each) against
  :class:`kdsnn.augment.BatchAffine` (the same parameters' distribution, one grid for the batch).

Each child builds the training split as ``kdsnn train-teacher``/``distill`` do
(``data.load(..., augment="affine")``), runs ``--batches`` training steps (forward, backward,
SGD) at batch 64 after two warm-up steps, and reports images/s over those steps. The
configurations alternate for ``--rounds`` rounds; the table gives each one's median.

    .venv/bin/python bench/epoch_throughput.py --data-root /work/mnist-dev [--write docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._doc import replace_section  # noqa: E402

CONFIGS = [("ACTIVE", "per-image"), ("ACTIVE", "batched"), ("PASSIVE", "per-image"), ("PASSIVE", "batched")]
BATCH = 64


def measure(arch: str, augmentation: str, data_root: str, batches: int) -> float:
    """Images/s of ``batches`` training steps of ``arch`` on augmented MNIST (run in a child)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from kdsnn import augment, data
    from kdsnn.models import build_model

    ds = data.load("mnist", "train", data_root, augment="affine")
    if augmentation == "per-image":  # what kdsnn did before: torchvision's RandomAffine, image by image
        from torchvision import transforms

        ds.augment = augment._SingleThreaded(transforms.RandomAffine(10, (0.1, 0.1), (0.9, 1.1)))
    torch.manual_seed(0)
    model = build_model(arch, ds.ds.input_shape, ds.ds.classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = iter(DataLoader(ds, BATCH, shuffle=True, generator=torch.Generator().manual_seed(0)))
    model.train()
    for step in range(batches + 2):
        if step == 2:
            start = time.perf_counter()
        x, y = next(loader)
        loss = F.cross_entropy(model(x).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batches * BATCH / (time.perf_counter() - start)


def child(arch: str, policy: str, augmentation: str, a: argparse.Namespace) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    out = subprocess.run([sys.executable, __file__, "--child", arch, augmentation, "--data-root", a.data_root,
                          "--batches", str(a.batches)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, help="MNIST in torchvision's layout (shared/tools/make-mnist-dev)")
    ap.add_argument("--archs", nargs="+", default=["mnist_cnn", "snn_2conv"])
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--write", default=None)
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps({"images_per_s": measure(*a.child, a.data_root, a.batches)}))
        return
    rates: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(a.rounds):
        for arch in a.archs:
            for policy, augmentation in CONFIGS:
                rate = child(arch, policy, augmentation, a)
                rates.setdefault((arch, policy, augmentation), []).append(rate)
                print(f"{arch} {policy} {augmentation}: {rate:.1f} images/s", flush=True)
    rows = ["| model | OpenMP wait | affine augmentation | images/s (median) | × before |", "|---|---|---|---|---|"]
    for arch in a.archs:
        before = statistics.median(rates[(arch, "ACTIVE", "per-image")])
        for policy, augmentation in CONFIGS:
            r = statistics.median(rates[(arch, policy, augmentation)])
            rows.append(f"| {arch} | {policy} | {augmentation} | {r:.1f} | {r / before:.2f} |")
    table = "\n".join(rows)
    print(table)
    if a.write:
        load = os.getloadavg()[0]
        body = (f"Command: `.venv/bin/python bench/epoch_throughput.py --data-root DIR --batches {a.batches} "
                f"--rounds {a.rounds}` (MNIST dev set, batch {BATCH}, RandomAffine ±10°, ±10 %, 1 ± 0.1; "
                f"{os.cpu_count()} cores shared with other jobs, load average {load:.1f} at the end; median of "
                f"{a.rounds} runs, configurations alternating).\n\n{table}\n\n"
                "`ACTIVE` is what libgomp does by default (waiting threads spin); kdsnn now sets `PASSIVE` when it "
                "is imported unless `OMP_WAIT_POLICY` is set. `per-image` is torchvision's RandomAffine on each "
                "image (kdsnn before), `batched` is `kdsnn.augment.BatchAffine` (each image its own parameters, "
                "the same distribution; equal to torchvision's `F.affine` on the same parameters, "
                "tests/kdsnn/test_augment.py).")
        replace_section(Path(a.write), "Training images per second on real MNIST (issue 18)", body)


if __name__ == "__main__":
    main()
