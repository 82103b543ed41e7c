#!/usr/bin/env bash
# Creates .venv-vendors/synsense: SynSense's own toolchains (Sinabs 3.1.3 for Speck, Rockpool 3.1.0 for
# Xylo) with the nir they pin. Both pin nir <= 1.0.4 and kdsnn needs nir >= 1.0.8, so they cannot share
# .venv. To avoid a second multi-GB PyTorch, the vendor venv holds only the vendor packages and their
# conflicting pins; a .pth file appends .venv's site-packages (torch, numpy, h5py, ...) after its own, so
# its own packages come first on sys.path. `samna` (the chip driver) is not installed: the package index
# has only a stub that downloads the real one from SynSense's server at import (see docs/targets.md).
# Idempotent and quick (a few small wheels); re-run it when PINS changes. Needs .venv (setup_env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=.venv/bin/python
ENV=.venv-vendors/synsense
PINS="sinabs==3.1.3 rockpool==3.1.0 nir==1.0.4 nirtorch==2.0.2 pbr==7.1.3 bitstruct==8.21.0"
[ -x "$VPY" ] || { echo "setup_vendors: $VPY is missing: run scripts/setup_env.sh first" >&2; exit 2; }
if [ -f "$ENV/.pins" ] && [ "$(cat "$ENV/.pins")" = "$PINS" ] && [ -x "$ENV/bin/python" ]; then
    echo "setup_vendors: $ENV up to date"
    exit 0
fi
rm -rf "$ENV"
"$VPY" -m venv --without-pip "$ENV"
# .venv's pip installs into the vendor interpreter (--python); --no-deps: torch, numpy, h5py come from .venv.
# shellcheck disable=SC2086
"$VPY" -m pip --disable-pip-version-check -q --python "$ENV/bin/python" install --no-deps $PINS
SITE=$("$ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# .venv's own site-packages and whatever it extends (a worktree's .venv reads the main one): plain lines,
# appended after the vendor's site-packages; kdsnn itself is not importable there (no .pth is processed).
"$VPY" -c 'import sys; print("\n".join(p for p in sys.path if p.endswith("site-packages")))' > "$SITE/zz_kdsnn_venv.pth"
"$ENV/bin/python" - <<'PY'
import importlib.metadata as md
import nir, numpy, sinabs, rockpool, torch  # noqa: F401 - the environment must import them all
want = {"sinabs": "3.1.3", "rockpool": "3.1.0", "nir": "1.0.4", "nirtorch": "2.0.2"}
got = {k: md.version(k) for k in want}
assert got == want, f"vendor environment resolves {got}, wanted {want}"
print(f"setup_vendors: sinabs {got['sinabs']}, rockpool {got['rockpool']}, nir {got['nir']} "
      f"(from {nir.__file__.rsplit('/site-packages', 1)[0]}); torch {torch.__version__}, numpy {numpy.__version__} from .venv")
PY
echo "$PINS" > "$ENV/.pins"
