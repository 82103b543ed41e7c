"""``kdsnn quantize``, ``kdsnn export`` and ``kdsnn inspect``.

``quantize`` folds BN, quantizes to k bits and writes the NIR graph, reporting float and
quantized test accuracy and any values a Loihi-style target cannot hold. ``export`` writes
NIR, ONNX (unrolled or step form) or netx, then checks the written file against the PyTorch
graph runtime on a few real test inputs of the checkpoint's data set.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nir
import torch

from kdsnn.arg_types import positive_int
from kdsnn.errors import KdsnnError

CHECK_SAMPLES = 8
# ``kdsnn export --for CHIP``: the file a chip vendor's own toolchain reads. Writing it needs the hardware
# targets (kdsnn.deploy), which install the handler here when the command line is built (set_handoff).
_HANDOFF: Callable[[argparse.Namespace], int] | None = None
HANDOFF_CHIPS = ("speck", "xylo", "loihi2")


def set_handoff(handler: Callable[[argparse.Namespace], int]) -> None:
    """Install the writer of ``kdsnn export --for CHIP`` (called by kdsnn.deploy.targets)."""
    global _HANDOFF
    _HANDOFF = handler


QUANTIZE_TARGETS = ("loihi2", "xylo")  # quantize --target: whose integer decays (export/quantize.py)


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the export sub-commands to the ``kdsnn`` parser (see kdsnn/cli.py)."""
    p = add("quantize", "fold BN, quantize a student (or quantize a NIR file: IF, LIF, CubaLIF, LI, recurrent) to k "
                        "bits and write its NIR graph", _quantize)
    p.add_argument("graph", nargs="?", default=None,
                   help="a float NIR file to quantize instead of --checkpoint (integer, Loihi's 12-bit decays); "
                        "--inputs then calibrates the input step and measures float-vs-integer agreement")
    _source(p)
    _reading(p)
    p.add_argument("--float", action="store_true",
                   help="store the quantized values as floats on the k-bit grid (fake quantization) "
                        "instead of integers")
    p.add_argument("--target", default="loihi2", choices=QUANTIZE_TARGETS,
                   help="the chip whose integer decays a leaky NIR file gets: loihi2 (12-bit fractions dv/4096) or "
                        "xylo (LIF: the nearest bit shift v − (v >> dash), its error in τ reported)")
    p.add_argument("--out", default=None, help="NIR file to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")

    p = add("export", "export a student SNN to NIR, ONNX or lava-dl netx and check the file", _export)
    _source(p)
    p.add_argument("--format", default="nir", help=_format_help())
    p.add_argument("--float", action="store_true", help="export the float graph (BN folded, not quantized)")
    p.add_argument("--out", default=None, help="file to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--no-check", action="store_true", help="skip checking the written file against PyTorch")
    p.add_argument("--for", dest="for_chip", default=None, metavar="CHIP",
                   help=f"write what that chip's own toolchain reads instead of --format ({', '.join(HANDOFF_CHIPS)}): "
                        "speck: NIR for Sinabs 3.1 (nir 1.0.4, reset by subtraction, Sinabs' integers); xylo: NIR "
                        "Linear + CubaLIF for Rockpool's Xylo mapper; loihi2: netx (sequential) or NIR for Lava")

    p = add("inspect", "summarise a NIR, ONNX or netx file (layers, shapes, parameters, quantization)", _inspect)
    p.add_argument("file", help="the file to describe; its format is recognised by content")
    _reading(p)


def _reading(p: argparse.ArgumentParser) -> None:
    """How a NIR file is read: dt, the legacy reset rule, T."""
    p.add_argument("--dt", type=float, default=None, help="NIR: the time step its neurons are meant with")
    p.add_argument("--legacy-reset", "--legacy-if-reset", dest="legacy_if_reset", default=None,
                   choices=("zero", "subtract"),
                   help="NIR written by nir < 1.0.6: the IF, LIF and CubaLIF reset its writer meant "
                        "(default: subtract, that version's spec; --legacy-if-reset is the earlier name)")
    p.add_argument("--timesteps", type=positive_int, default=None, help="NIR: the T it would run with")


def _format_help() -> str:
    from .formats import help_text
    return help_text()


def _source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="student checkpoint.pt (from kdsnn distill)")
    p.add_argument("--bits", type=int, default=8, help="weight bits (2..16)")
    p.add_argument("--dataset", default=None, help="data for accuracy/checks; defaults to the checkpoint's")
    p.add_argument("--data-root", default=None, help="folder in torchvision's layout (mnist/cifar)")
    p.add_argument("--inputs", default=None,
                   help="your own samples, a .npy [N, C, H, W] normalized as the network's input: used to calibrate "
                        "the input step and to check the written file (instead of the data set)")


# ----------------------------------------------------------------------------- shared steps

def _require(a: argparse.Namespace, *names: str) -> None:
    for n in names:
        if not getattr(a, n, None):
            raise KdsnnError(f"--{n.replace('_', '-')} is required")


def _check_out(a: argparse.Namespace) -> None:
    """``--out`` is writable, is none of the command's inputs, and replaces an earlier file only with --force."""
    from kdsnn.outputs import check_file

    check_file(a.out, "--out", {"--checkpoint": a.checkpoint, "--inputs": a.inputs, "--config": a.config}, a.force)


def _dataset(a: argparse.Namespace, ckpt: dict[str, Any]) -> str:
    from kdsnn.checkpoint import checkpoint_dataset

    return checkpoint_dataset(ckpt, a.dataset, str(a.checkpoint))


def _graphs(a: argparse.Namespace, integer: bool,
            quantized: bool) -> tuple[torch.nn.Module, dict, nir.NIRGraph, nir.NIRGraph]:
    """(student, checkpoint, float graph, graph to write)."""
    from .student import load_student_graphs

    sg = load_student_graphs(a.checkpoint, a.bits, integer, quantized, a.dataset, a.data_root, _user_inputs(a))
    return sg.model, sg.ckpt, sg.float_graph, sg.graph


def _user_inputs(a: argparse.Namespace) -> torch.Tensor | None:
    """``--inputs`` as a tensor shaped like the checkpoint's input (None when not given)."""
    if getattr(a, "inputs", None) is None:  # "" (an unset variable) is refused by the reader
        return None
    from kdsnn import checkpoint, data

    spec = checkpoint.model_spec(checkpoint.load(a.checkpoint))
    return data.load_inputs(a.inputs, shape=tuple(spec["input_shape"]))[0]


def _emit(a: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    print(json.dumps(result) if getattr(a, "json", False) else text)


# ----------------------------------------------------------------------------- quantize

def _quantize(a: argparse.Namespace) -> int:
    from kdsnn import checkpoint, data
    from kdsnn.trainer import evaluate

    from . import nir_io
    from .formats import check_name, get
    from .quantize import range_problems
    from .runtime import GraphSNN

    if a.out:
        check_name(get("nir"), a.out, choosing=False)  # quantize writes NIR, whatever the name says
    if getattr(a, "graph", None):
        from .quantize_file import quantize_file

        _emit(a, *quantize_file(a))
        return 0
    _require(a, "checkpoint", "out")
    given = [f for f, v in (("--timesteps", a.timesteps), ("--dt", a.dt), ("--legacy-reset", a.legacy_if_reset))
             if v is not None]
    if given:  # they were ignored: the checkpoint's student records its own T, dt and reset
        raise KdsnnError(f"{given[0]} says how to read a NIR file; --checkpoint {a.checkpoint} records its own "
                         "T, dt and reset (drop it, or quantize the NIR file)")
    if getattr(a, "target", "loihi2") != "loihi2":
        raise KdsnnError("--target chooses the decays of a leaky NIR file; a checkpoint's IF student has none "
                         "(quantize it as it is, then kdsnn map --target xylo)")
    _check_out(a)
    model, ckpt, _, graph = _graphs(a, integer=not a.float, quantized=True)
    dataset = _dataset(a, ckpt)
    path = nir_io.write(graph, a.out)
    test = data.load(dataset, "test", a.data_root, timesteps=checkpoint.data_timesteps(ckpt))
    torch.manual_seed(0)  # bernoulli encoding draws spikes: the same draws for both evaluations
    float_acc = evaluate(model, test, torch.device("cpu"))
    torch.manual_seed(0)
    quant_acc = evaluate(GraphSNN(graph), test, torch.device("cpu"))
    problems = range_problems(graph)
    result = {"out": str(path), "bits": a.bits, "integer": not a.float, "dataset": dataset,
              "float_accuracy": float_acc, "quantized_accuracy": quant_acc, "range_problems": problems}
    mode = "fake-quantized float" if a.float else "integer"
    text = (f"wrote {path} ({a.bits}-bit {mode})\n"
            f"{dataset} test accuracy: float {float_acc * 100:.2f} %, quantized {quant_acc * 100:.2f} % "
            f"({(quant_acc - float_acc) * 100:+.2f} points)\n"
            + ("range problems:\n  " + "\n  ".join(problems) if problems
               else "ranges: every weight, bias and threshold fits Loihi's"))
    _emit(a, result, text)
    return 0


# ----------------------------------------------------------------------------- export

def _export(a: argparse.Namespace) -> int:
    from kdsnn import checkpoint, data

    from .formats import check_name, get

    _require(a, "checkpoint", "out")
    if getattr(a, "for_chip", None):
        if a.for_chip not in HANDOFF_CHIPS:
            raise KdsnnError(f"unknown --for {a.for_chip!r}; choose one of {', '.join(HANDOFF_CHIPS)}")
        if _HANDOFF is None:
            raise KdsnnError("--for needs kdsnn's hardware targets (kdsnn.deploy), which are not installed")
        _check_out(a)  # an existing file is replaced only with --force, an input never (it was overwritten)
        return _HANDOFF(a)
    fmt = get(a.format)
    if fmt.integer_only and a.float:
        raise KdsnnError(f"{fmt.name} holds integer networks only; drop --float")
    check_name(fmt, a.out)
    _check_out(a)
    _, ckpt, _, graph = _graphs(a, integer=True, quantized=not a.float)
    path = fmt.write(graph, a.out)
    result: dict[str, Any] = {"out": str(path), "format": a.format, "integer": not a.float,
                              "bits": None if a.float else a.bits}
    lines = [f"wrote {path} ({a.format}, {'float' if a.float else f'integer {a.bits}-bit'})"]
    ok = True
    if not a.no_check:
        user = _user_inputs(a)
        x = (user[:CHECK_SAMPLES] if user is not None
             else data.sample_batch(_dataset(a, ckpt), CHECK_SAMPLES, a.data_root,
                                    timesteps=checkpoint.data_timesteps(ckpt))[0])
        check = check_file(a.format, path, graph, x)
        result["check"] = check
        ok = check["passed"] is not False
        lines.append(f"check: {check['summary']}")
    _emit(a, result, "\n".join(lines))
    if not ok:
        print(f"kdsnn: error: the written file does not reproduce the PyTorch graph ({check['summary']})",
              file=sys.stderr)
        return 1
    return 0


def check_file(fmt: str, path: Path, graph: nir.NIRGraph, x: torch.Tensor) -> dict[str, Any]:
    """Run the written file on ``x`` and compare with GraphSNN of ``graph``.

    Returns ``{"passed": True/False/None, "max_abs_diff", "summary"}``; ``None`` when the check
    could not run (netx without Lava). Integer graphs must agree exactly; float ONNX graphs
    within :data:`~kdsnn.export.onnx.writer.FLOAT_ATOL`.
    """
    from .formats import get
    from .runtime import GraphSNN

    snn = GraphSNN(graph)
    if snn.encoding == "bernoulli":
        torch.manual_seed(0)
        x = snn.prepare_input(x)  # one spike draw, fed identically to both sides
    return get(fmt).check(path, graph, x, snn.run(x))


# ----------------------------------------------------------------------------- inspect

def _inspect(a: argparse.Namespace) -> int:
    from .inspect import describe, detect

    text = describe(a.file, a.dt, a.legacy_if_reset, a.timesteps)
    _emit(a, {"file": a.file, "format": detect(a.file), "summary": text}, text)
    return 0
