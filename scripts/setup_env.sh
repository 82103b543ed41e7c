#!/usr/bin/env bash
# Creates .venv and installs kdsnn with everything it needs, Lava included.
# Idempotent: re-running it on an existing .venv only fills in what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
PIP="$VPY -m pip --disable-pip-version-check -q"
$PIP install --upgrade pip >/dev/null
# PyTorch: the pair DESIGN.md names (the CPU-only 2.13.0 file breaks torchvision).
$PIP install "torch==2.14.1" "torchvision==0.29.1"
# The project itself with its test and interop (Norse) extras.
$PIP install -e ".[test,interop]"
# Lava: lava-nc 0.10.0 and lava-dl 0.6.0 pin Python < 3.11 and old torch/numpy, so they go
# in without their declared dependencies; their real needs come from pyproject's [lava] extra.
$PIP install -e ".[lava]"
$PIP install --no-deps --ignore-requires-python "lava-nc==0.10.0" "lava-dl==0.6.0"
$VPY scripts/patch_lava.py
# Sinabs and Rockpool (the Speck and Xylo toolchains) pin nir <= 1.0.4: their own small venv.
bash scripts/setup_vendors.sh
echo "setup: .venv ready"
