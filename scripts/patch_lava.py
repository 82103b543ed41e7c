"""Make lava-nc 0.10.0 importable on Python 3.11 (idempotent; run by scripts/setup_env.sh).

Three dataclasses in ``lava/magma/compiler/var_model.py`` use ``ByteEncoder()`` as a mutable
field default, which Python 3.11's dataclasses refuse. The fix DESIGN.md records is
``field(default_factory=ByteEncoder)``. Running this twice changes nothing the second time.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path


def find_var_model() -> Path | None:
    spec = importlib.util.find_spec("lava")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "magma" / "compiler" / "var_model.py"
        if path.exists():
            return path
    return None


def patch_text(text: str) -> str:
    text = re.sub(r"(:\s*ByteEncoder\s*=\s*)ByteEncoder\(\)", r"\1field(default_factory=ByteEncoder)", text)
    if ("field(default_factory=ByteEncoder)" in text
            and not re.search(r"^from dataclasses import .*\bfield\b", text, re.M)):
        text = text.replace("from dataclasses import dataclass", "from dataclasses import dataclass, field", 1)
    return text


def main() -> int:
    path = find_var_model()
    if path is None:
        print("patch_lava: lava-nc is not installed; nothing to patch", file=sys.stderr)
        return 1
    old = path.read_text()
    new = patch_text(old)
    if new == old:
        print(f"patch_lava: {path} already patched")
        return 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(new)
    os.replace(tmp, path)
    for cache in path.parent.glob("__pycache__/var_model.*"):
        cache.unlink()
    print(f"patch_lava: patched {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
