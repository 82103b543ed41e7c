"""Helpers shared by the tests: students whose BN statistics come from real data, the directory of
committed fixtures, and the spike-for-spike comparison of a backend's run with the graph runtime.

Untrained students with default BN statistics barely spike; calibrating BN on digits (the
running statistics of a few training batches) gives realistic firing at every layer, so the
export and simulator tests compare non-trivial spike trains without training.
"""
from __future__ import annotations

from pathlib import Path

import torch

from kdsnn import data
from kdsnn.models import STUDENTS, build_model

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


def calibrated_student(arch: str, seed: int = 0, timesteps: int = 4, readout: str = "membrane", input_shape=(1, 8, 8),
                       classes: int = 10, **kw) -> torch.nn.Module:
    """A student with random weights (seeded) and BN statistics measured on digits."""
    torch.manual_seed(seed)
    model = build_model(arch, input_shape, classes, timesteps=timesteps, readout=readout, **kw)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the calibration batches
    x, _ = data.sample_batch("digits", 128, split="train")
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


ALL_STUDENTS = STUDENTS


def assert_same_run(graph, x: torch.Tensor, run) -> None:
    """A backend's run (logits, spikes per IF node) equals the PyTorch graph runtime's, spike for spike."""
    import nir

    from kdsnn.export.runtime import GraphSNN

    ref = GraphSNN(graph).run(x)
    ifs = [n for n, node in graph.nodes.items() if isinstance(node, nir.IF)]
    assert sorted(run.spikes) == sorted(ifs)
    for name in ifs:
        expected = ref.outputs[name].numpy()
        assert run.spikes[name].shape == expected.shape
        assert 0.005 < expected.mean() < 0.6, f"{name} should spike a realistic amount"
        mismatch = int((run.spikes[name] != expected).sum())
        assert mismatch == 0, f"{name}: {mismatch} spikes differ from GraphSNN"
    assert torch.equal(run.logits, ref.logits)


def error_line(capsys) -> str:
    """The one line a refused command prints on stderr (and no traceback anywhere)."""
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kdsnn: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return err[0]


def snapshot(path: Path) -> tuple[bytes, int]:
    """A file's bytes and modification time: the same before and after means untouched."""
    return path.read_bytes(), path.stat().st_mtime_ns
