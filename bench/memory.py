"""Peak memory of ``simulate``, ``map`` and ``report`` on many inputs of a 3×32×32 residual student.

Issue 14's target: each stays under 2 GB peak RSS for 400 inputs, because they take their
inputs a batch at a time (deploy/batched.py). The student is ``kdsnn distill --arch
snn_resnet14 --dataset fake:3x32x32:10 --kd none --epochs 1`` (width 1), quantized to 8 bits;
the inputs are N seeded normal images with labels (``--inputs``/``--labels``). Each command
runs in a fresh process under ``/usr/bin/time -v`` ("Maximum resident set size": Python,
torch, numba and the graph included). ``--compare KDSNN`` runs the same commands with another
checkout's ``kdsnn`` executable in the same call (e.g. the main line before this change), so
the two columns are measured side by side on the same machine and load.

    .venv/bin/python bench/memory.py [--samples 400] [--work /tmp/kdsnn-bench-memory]
        [--compare /path/to/other/.venv/bin/kdsnn] [--write docs/benchmarks.md]

About 5 minutes per kdsnn (the report runs Lava on 2 inputs, and every backend on all N).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._doc import replace_section  # noqa: E402

KDSNN = str(Path(sys.executable).with_name("kdsnn"))
TITLE = "Peak memory of simulate, map and report (3×32×32 residual student)"


def _commands(work: Path, n: int) -> dict[str, list[str]]:
    inputs, labels = str(work / f"inputs{n}.npy"), str(work / f"labels{n}.npy")
    return {
        "simulate": ["simulate", str(work / "student.nir"), "--inputs", inputs, "--labels", labels],
        "map": ["map", str(work / "student.nir"), "--inputs", inputs, "--samples", str(n)],
        "report": ["report", "--checkpoint", str(work / "run" / "checkpoint.pt"), "--inputs", inputs,
                   "--labels", labels, "--out", str(work / "report"), "--slow-samples", "2", "--force"],
    }


def prepare(work: Path, n: int) -> None:
    """The student (trained one epoch), its integer NIR graph, and N inputs with labels."""
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "run" / "checkpoint.pt").exists():
        subprocess.run([KDSNN, "distill", "--arch", "snn_resnet14", "--dataset", "fake:3x32x32:10", "--kd", "none",
                        "--epochs", "1", "--out", str(work / "run"), "--quiet"], check=True)
    if not (work / "student.nir").exists():
        subprocess.run([KDSNN, "quantize", "--checkpoint", str(work / "run" / "checkpoint.pt"),
                        "--out", str(work / "student.nir")], check=True, stdout=subprocess.DEVNULL)
    rng = np.random.default_rng(0)
    np.save(work / f"inputs{n}.npy", rng.normal(0, 1, (n, 3, 32, 32)).astype(np.float32))
    np.save(work / f"labels{n}.npy", rng.integers(0, 10, n))


def peak(kdsnn: str, argv: list[str], must: bool = True) -> tuple[float, float] | None:
    """(peak RSS in GB, wall seconds) of one command in a fresh process (None: it failed and need not run)."""
    t0 = time.time()
    proc = subprocess.run(["/usr/bin/time", "-v", kdsnn, *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        if not must:  # an older checkout without an option this command uses
            print(f"{kdsnn} {' '.join(argv)}: {proc.stderr.strip().splitlines()[-2][:200]}")
            return None
        raise SystemExit(f"{kdsnn} {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return kb * 1024 / 2 ** 30, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--work", default="/tmp/kdsnn-bench-memory")
    ap.add_argument("--compare", default=None, help="another checkout's kdsnn executable, measured beside this one")
    ap.add_argument("--write", default=None)
    a = ap.parse_args()
    work = Path(a.work)
    prepare(work, a.samples)
    commands = _commands(work, a.samples)
    rows = []
    for name, argv in commands.items():
        here = peak(KDSNN, argv)
        other = peak(a.compare, [w for w in argv if w != "--force"], must=False) if a.compare else None
        rows.append((name, here, other))
        print(name, f"{here[0]:.2f} GB {here[1]:.0f} s", "" if other is None else f"(compare {other[0]:.2f} GB)")
    head = "| command | peak RSS | wall | " + ("compared checkout: peak RSS | wall |" if a.compare else "")
    lines = [head, "|---" * (5 if a.compare else 3) + "|"]
    for name, here, other in rows:
        cells = f"| {name} | {here[0]:.2f} GB | {here[1]:.0f} s |"
        if a.compare:
            cells += f" {other[0]:.2f} GB | {other[1]:.0f} s |" if other else " — | — |"
        lines.append(cells)
    cmd = f".venv/bin/python bench/memory.py --samples {a.samples}" + (" --compare KDSNN" if a.compare else "")
    body = (f"Command: `{cmd} --write docs/benchmarks.md`\n\n"
            f"{a.samples} inputs (seeded normal images with labels, `--inputs`/`--labels`) through `kdsnn "
            "simulate`, `kdsnn map` and `kdsnn report` on snn_resnet14 (width 1, 3×32×32, T = 4, 8-bit integer "
            "graph, one epoch on fake:3x32x32:10); each command in a fresh process, peak RSS from `/usr/bin/time "
            "-v` (Python, torch and numba included: about 0.9 GB before any work). Target: under 2 GB each. "
            "The commands: " + "; ".join(f"`kdsnn {' '.join(v)}`" for v in commands.values()).replace(str(work), "W")
            + ".\n\n" + "\n".join(lines))
    print(body)
    if a.write:
        replace_section(Path(a.write), TITLE, body)


if __name__ == "__main__":
    main()
