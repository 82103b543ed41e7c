"""The vendors' own toolchains, as the tests call them: a subprocess in .venv-vendors/synsense.

Sinabs 3.1.3 (Speck) and Rockpool 3.1.0 (Xylo) pin nir ≤ 1.0.4, kdsnn needs ≥ 1.0.8, so they live in
their own environment (scripts/setup_vendors.sh, run by scripts/setup_env.sh; made here on first use
if it is missing). A probe script reads a kdsnn file there and prints one JSON line. Probes whose
vendor code imports ``samna`` without using it get the stand-in in ``samna_standin/`` on their path.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHON = ROOT / ".venv-vendors" / "synsense" / "bin" / "python"
STANDIN = HERE / "samna_standin"


def vendor_python() -> Path:
    """The vendor environment's interpreter, created by scripts/setup_vendors.sh if it is missing."""
    if not PYTHON.exists() or not (PYTHON.parent.parent / ".pins").exists():
        done = subprocess.run(["bash", str(ROOT / "scripts" / "setup_vendors.sh")], cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"scripts/setup_vendors.sh failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return PYTHON


def run_probe(script: str, *args: str | Path, standin: bool = True, timeout: int = 600) -> dict:
    """Run ``tests/vendor_env/<script>`` in the vendor environment; its last stdout line as JSON."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    if standin:
        env["PYTHONPATH"] = str(STANDIN)
    done = subprocess.run([str(vendor_python()), str(HERE / script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)
    assert done.returncode == 0, f"{script} failed in the vendor environment:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])
