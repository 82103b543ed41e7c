"""Sizes from users, files and metadata are checked against the machine before anything is allocated.

Every case runs in one child process whose address space is capped at 6 GB (tests/cli/bounded_run.py):
the sizes here need tens of GB to PB, so a command that believed one would fail inside PyTorch or numpy
(an exception) instead of refusing in one line that names the size and the limit, as each must.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import h5py
import nir
import numpy as np
import pytest
import torch

from kdsnn.export import nir_io
from kdsnn.export.graph import get_meta, set_meta
from tests.helpers import REPO

CAP = 6 * 2 ** 30


def _huge_input_graph() -> nir.NIRGraph:
    """Input [1, 100000, 100000] → 1×1 conv → IF → a pool over the whole map → Affine → IF → Output."""
    n = 100_000
    nodes = {"input": nir.Input({"input": np.array([1, n, n])}),
             "conv": nir.Conv2d(input_shape=np.array([n, n]), weight=np.ones((1, 1, 1, 1)), stride=1, padding=0,
                                dilation=1, groups=1, bias=np.zeros(1)),
             "if1": nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)),
             "pool": nir.SumPool2d(kernel_size=np.array([n, n]), stride=np.array([n, n]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([1, 1, 1])}, start_dim=0, end_dim=-1),
             "aff": nir.Affine(weight=np.ones((10, 1)), bias=np.zeros(10)),
             "if2": nir.IF(r=np.ones(10), v_threshold=np.ones(10), v_reset=np.zeros(10)),
             "output": nir.Output({"output": np.array([10])})}
    edges = [("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "aff"),
             ("aff", "if2"), ("if2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.fixture(scope="module")
def refusals(student_ckpt, student_int_nir, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("huge")
    huge = root / "huge_input.nir"
    nir.write(huge, _huge_input_graph())
    g = nir_io.read(student_int_nir)
    set_meta(g, {**get_meta(g), "dataset": "fake:3x100000x100000:10"})
    meta_dataset = nir_io.write(g, root / "meta_dataset.nir")
    ckpt = torch.load(student_ckpt, weights_only=True)
    long = copy.deepcopy(ckpt)
    long["model_spec"]["timesteps"] = 10 ** 8
    torch.save(long, root / "t1e8.pt")
    with h5py.File(root / "huge.net", "w") as f:  # a netx file declaring 10^10 weights it never stores
        layer = f.create_group("layer")
        layer.create_group("0").create_dataset("type", data=[b"input"])
        dense = layer.create_group("1")
        dense.create_dataset("type", data=[b"dense"])
        dense.create_dataset("weight", shape=(100_000, 100_000), dtype="f8")
    with open(root / "huge.npy", "wb") as f:  # a header declaring 400 GB of float32 over a few bytes
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (100_000, 1, 1000, 1000)})
        f.write(bytes(64))
    out = str(root / "run")
    cases = {
        "fake image size": ["distill", "--dataset", "fake:3x100000x100000:10", "--kd", "none", "--epochs", "1",
                            "--out", out, "--quiet"],
        "fake classes": ["distill", "--dataset", "fake:1x8x8:9999999999", "--kd", "none", "--epochs", "1",
                         "--out", out, "--quiet"],
        "timesteps": ["distill", "--timesteps", "10000000", "--kd", "none", "--epochs", "1", "--out", out, "--quiet"],
        "metadata dataset": ["simulate", str(meta_dataset), "--samples", "2"],
        "huge input simulate": ["simulate", str(huge), "--spike-rate", "0.1", "--timesteps", "4", "--samples", "2"],
        "huge input map": ["map", str(huge)],
        "checkpoint timesteps": ["evaluate", "--checkpoint", str(root / "t1e8.pt")],
        "netx weights": ["inspect", str(root / "huge.net")],
        "simulate timesteps": ["simulate", str(student_int_nir), "--spike-rate", "0.5", "--timesteps", "100000000"],
        "npy header": ["simulate", str(student_int_nir), "--inputs", str(root / "huge.npy")],
        "npy header export": ["export", "--checkpoint", str(student_ckpt), "--inputs", str(root / "huge.npy"),
                              "--out", str(root / "x.nir")],
    }
    proc = subprocess.run([sys.executable, "-m", "tests.cli.bounded_run", str(CAP)], input=json.dumps(cases),
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    results["_out"] = out
    return results


@pytest.mark.parametrize("case, names", [
    ("fake image size", "one 3×100000×100000 image"),
    ("fake classes", "training on fake:1x8x8:9999999999"),
    ("timesteps", "T = 10000000"),
    ("metadata dataset", "one 3×100000×100000 image"),
    ("huge input simulate", "one sample of this graph"),
    ("huge input map", "one sample of this graph"),
    ("checkpoint timesteps", "T = 100000000"),
    ("netx weights", "74.5 GB"),
    ("simulate timesteps", "over 100000000 steps"),
    # numpy allocated what the header declared (a MemoryError, or the machine's memory for a large real file)
    ("npy header", "huge.npy (an array of shape [100000, 1, 1000, 1000])"),
    ("npy header export", "huge.npy (an array of shape [100000, 1, 1000, 1000])"),
])
def test_huge_size_is_refused_before_allocation(refusals, case, names):
    r = refusals[case]
    assert r["exception"] is None, r  # nothing escaped: no MemoryError, no traceback under the 6 GB cap
    lines = r["stderr"].strip().splitlines()
    assert r["rc"] == 2 and len(lines) == 1 and lines[0].startswith("kdsnn: error: "), r
    assert "would need" in lines[0] and "kdsnn allows itself" in lines[0], lines[0]  # the size and the limit
    assert names in lines[0], lines[0]


def test_refused_training_leaves_no_run_folder(refusals):
    from pathlib import Path

    assert not Path(refusals["_out"]).exists()
