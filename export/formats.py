"""The file formats ``kdsnn export`` writes, by name: how each is written and checked.

Each format writes a graph to a path and checks the written file against the PyTorch graph
runtime on a few inputs. A format whose files only a deployment backend can run (netx: Lava)
gets its checker from that backend (:func:`set_checker`, called by :mod:`kdsnn.deploy`), so
this package never imports the deploy layer. Adding a format is one class and one line in
:data:`FORMATS`.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from kdsnn.errors import KdsnnError

Checker = Callable[[Path, nir.NIRGraph, torch.Tensor, torch.Tensor], dict[str, Any]]


class Format:
    """A file format: ``write`` the graph, ``check`` the written file (``passed`` None: not checked)."""

    name = ""
    summary = ""
    integer_only = False
    suffixes: tuple[str, ...] = ()  # the file names it is known by (an --out named like another format's is refused)

    def write(self, graph: nir.NIRGraph, path: str | Path) -> Path:  # pragma: no cover - overridden
        raise NotImplementedError

    def check(self, path: Path, graph: nir.NIRGraph, x: torch.Tensor, ref: Any) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError


class Nir(Format):
    name, summary, suffixes = "nir", "NIR graph (HDF5), the hub every tool reads", (".nir",)

    def write(self, graph, path):
        from . import nir_io
        return nir_io.write(graph, path)

    def check(self, path, graph, x, ref):
        from . import nir_io
        back = nir_io.load_snn(path).run(x)
        same = (all(torch.equal(back.outputs[k], v) for k, v in ref.outputs.items())
                and torch.equal(back.logits, ref.logits))
        diff = float((back.logits - ref.logits).abs().max())
        return {"passed": same, "max_abs_diff": diff,
                "summary": f"reloaded NIR vs PyTorch graph on {_count(x)} test inputs: "
                           + ("identical outputs at every node" if same else f"differ (max |Δlogit| {diff:.3g})")}


class Onnx(Format):
    name, summary, form = "onnx", "ONNX, unrolled over T (one call per inference)", "unrolled"
    suffixes = (".onnx",)

    def write(self, graph, path):
        from .onnx import export_onnx
        return export_onnx(graph, path, form=self.form)

    def check(self, path, graph, x, ref):
        from .onnx import FLOAT_ATOL, run_onnx
        got = run_onnx(path, x)
        want = ref.logits.float().numpy()
        diff = float(np.abs(got - want).max())
        integer = bool(_meta(graph).get("integer"))
        passed = bool(np.array_equal(got, want)) if integer else diff <= FLOAT_ATOL
        kind = ("identical logits" if diff == 0
                else f"max |Δlogit| {diff:.3g} (tolerance {0 if integer else FLOAT_ATOL:g})")
        return {"passed": passed, "max_abs_diff": diff,
                "summary": f"onnxruntime vs PyTorch graph on {_count(x)} test inputs: {kind}"
                           + ("" if passed else ": FAILED")}


class OnnxStep(Onnx):
    name, summary, form = "onnx-step", "ONNX, one time step with explicit membrane state (streaming)", "step"


class Netx(Format):
    name, summary, integer_only = "netx", "lava-dl netx (HDF5) for Loihi 2 via Lava; sequential graphs", True
    suffixes = (".net",)
    checker: Checker | None = None

    def write(self, graph, path):
        from .netx import export_netx
        return export_netx(graph, path)

    def check(self, path, graph, x, ref):
        if self.checker is None:
            return {"passed": None, "max_abs_diff": None,
                    "summary": "skipped: no runner for netx files is installed "
                               "(kdsnn.deploy's Lava backend provides it)"}
        return self.checker(path, graph, x, ref.logits)


FORMATS: dict[str, Format] = {f.name: f for f in (Nir(), Onnx(), OnnxStep(), Netx())}


def get(name: str) -> Format:
    """Format ``name``, or a one-line error listing the known ones."""
    if name not in FORMATS:
        raise KdsnnError(f"unknown --format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


def check_name(fmt: Format, path: str | Path, choosing: bool = True) -> None:
    """Refuse an ``--out`` whose name says another format (``--format netx --out m.nir``): the file would be taken
    for what its name says, by the user and by other tools. A name no format claims is the user's choice.
    ``choosing``: the command has ``--format`` (export), else it always writes ``fmt`` (quantize)."""
    suffix = Path(path).suffix.lower()
    other = next((f for f in FORMATS.values() if suffix in f.suffixes and suffix not in fmt.suffixes), None)
    if other is not None:
        switch = (f"pass --format {other.name}" if choosing
                  else f"write {other.name} with kdsnn export --format {other.name}")
        raise KdsnnError(f"--out {path} is named like a{'n' if other.name[0] in 'aeiou' else ''} {other.name} file, "
                         f"but {fmt.name} is written; name it {fmt.suffixes[0]} or {switch}")


def set_checker(name: str, checker: Checker) -> None:
    """Install the runner that checks written files of format ``name`` (a deployment backend)."""
    fmt = get(name)
    fmt.checker = checker  # type: ignore[attr-defined]


def help_text() -> str:
    """``--format`` help, generated from the registry."""
    return "; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values())


def _meta(graph: nir.NIRGraph) -> dict:
    from .graph import get_meta
    return get_meta(graph)


def _count(x: torch.Tensor) -> int:
    return int(x.shape[-4] if x.dim() >= 4 else x.shape[0])
