"""Update one ``## Section`` of docs/benchmarks.md, leaving the other sections alone."""
from __future__ import annotations

import re
from pathlib import Path

from kdsnn.atomic import write_text


def replace_section(path: Path, title: str, body: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEach section names the command that produced it.\n"
    block = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: block + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    write_text(path, text)
