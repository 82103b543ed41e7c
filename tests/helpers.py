"""Helpers shared by the tests: students whose BN statistics come from real data, the directory of
committed fixtures, and the spike-for-spike comparison of a backend's run with the graph runtime.

Untrained students with default BN statistics barely spike; calibrating BN on digits (the
running statistics of a few training batches) gives realistic firing at every layer, so the
export and simulator tests compare non-trivial spike trains without training.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
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


# ----------------------------------------------------------------------------- event recordings, written byte by byte

def nmnist_bytes(events: list[tuple[int, int, int, int]]) -> bytes:
    """N-MNIST's 5-byte events (x, y, polarity, t µs), as the data set's README lays them out."""
    out = bytearray()
    for x, y, p, t in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    return bytes(out)


def aedat31_packet(event_type: int, event_size: int, events: bytes, number: int, overflow: int = 0,
                   capacity: int | None = None) -> bytes:
    """One AEDAT 3.1 packet: the 28-byte header (libcaer's caer_event_packet_header) and its events."""
    import struct

    capacity = number if capacity is None else capacity
    head = struct.pack("<hhiiiiii", event_type, 1, event_size, 4, overflow, capacity, number, number)
    return head + events + bytes(capacity * event_size - len(events))


def polarity_events(events: list[tuple[int, int, int, int]], valid: list[bool] | None = None) -> bytes:
    """AEDAT 3.1 polarity events (x, y, polarity, t µs): uint32 data (bit 0 valid, bit 1 polarity,
    bits 2-16 y, bits 17-31 x) and int32 timestamp."""
    import struct

    valid = valid or [True] * len(events)
    return b"".join(struct.pack("<Ii", (x << 17) | (y << 2) | (p << 1) | int(v), t)
                    for (x, y, p, t), v in zip(events, valid, strict=True))


def aedat31_file(packets: list[bytes]) -> bytes:
    """A whole AEDAT 3.1 file: the header DVS128 Gesture's recordings carry, then the packets."""
    header = (b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
              b"#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n")
    return header + b"".join(packets)


def write_nmnist_tree(root: Path, per_class: dict[str, int], classes: int = 3, seed: int = 0) -> None:
    """An N-MNIST tree (``NMNIST/Train|Test/<digit>/NNNNN.bin``) of learnable recordings: digit k's events
    fall on rows 10k..10k+3 of the 34×34 sensor (ON) and columns 10k..10k+3 (OFF), over 300 ms."""
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for k in range(classes):
            folder = root / "NMNIST" / split / str(k)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                m = 60
                on = [(int(x), 10 * k + int(r), 1, int(t)) for x, r, t in
                      zip(rng.integers(0, 34, m), rng.integers(0, 4, m), rng.integers(0, 300_000, m), strict=True)]
                off = [(10 * k + int(c), int(y), 0, int(t)) for c, y, t in
                       zip(rng.integers(0, 4, m), rng.integers(0, 34, m), rng.integers(0, 300_000, m), strict=True)]
                events = sorted(on + off, key=lambda e: e[3])
                (folder / f"{i:05d}.bin").write_bytes(nmnist_bytes(events))


def write_gesture_tree(root: Path, trials: dict[str, int], classes: int = 3, seed: int = 0) -> None:
    """A DVS128 Gesture tree (``DvsGesture/`` with the trial lists, AEDAT 3.1 recordings and label files) of
    learnable gestures: each trial holds one 100 ms gesture of every class k in ``1..classes``, whose ON events
    fall on sensor rows 40(k−1)..40(k−1)+11 and OFF events on the same columns."""
    rng = np.random.default_rng(seed)
    folder = root / "DvsGesture"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in trials.items():
        names = [f"user{split[:2]}{i:02d}_natural.aedat" for i in range(n)]
        (folder / f"trials_to_{split}.txt").write_text("".join(f"{name}\n" for name in names))
        for name in names:
            events, labels = [], []
            for k in range(1, classes + 1):
                start = 1_000_000 + 200_000 * k
                labels.append((k, start, start + 100_000))
                m = 150
                lo = 40 * (k - 1)
                for p, (a, b) in ((1, (rng.integers(0, 128, m), rng.integers(lo, lo + 12, m))),
                                  (0, (rng.integers(lo, lo + 12, m), rng.integers(0, 128, m)))):
                    events += [(int(x), int(y), p, int(t)) for x, y, t in
                               zip(a, b, rng.integers(start, start + 100_000, m), strict=True)]
            events.sort(key=lambda e: e[3])
            (folder / name).write_bytes(aedat31_file([aedat31_packet(1, 8, polarity_events(events), len(events))]))
            rows = "".join(f"{c},{s},{e}\n" for c, s, e in labels)
            (folder / name.replace(".aedat", "_labels.csv")).write_text("class,startTime_usec,endTime_usec\n" + rows)


def recurrent_if_graph(seed: int = 1, timesteps: int = 6):
    """An integer three-layer IF graph whose middle population feeds itself back through an all-to-all synapse
    (``if2`` → ``rec`` → ``if2``): input 6 → 8 → 8 (recurrent) → 4, direct encoding, input step 1."""
    import nir
    import numpy as np

    from kdsnn.export.graph import set_meta

    rng = np.random.default_rng(seed)

    def affine(o: int, i: int, scale: float) -> nir.Affine:
        return nir.Affine(weight=np.round(rng.normal(0, scale, (o, i))), bias=np.round(rng.normal(0, 1, o)))

    def if_(n: int, theta: float) -> nir.IF:
        return nir.IF(r=np.ones(n), v_threshold=np.full(n, theta), v_reset=np.zeros(n))

    nodes = {"input": nir.Input(np.array([6])), "fc1": affine(8, 6, 3), "if1": if_(8, 4.0), "fc2": affine(8, 8, 3),
             "if2": if_(8, 5.0), "rec": nir.Linear(np.round(rng.normal(0, 3, (8, 8)))), "fc3": affine(4, 8, 3),
             "if3": if_(4, 4.0), "output": nir.Output(np.array([4]))}
    edges = [("input", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "if2"), ("if2", "rec"), ("rec", "if2"),
             ("if2", "fc3"), ("fc3", "if3"), ("if3", "output")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    set_meta(g, {"integer": True, "timesteps": timesteps, "encoding": "direct", "input_scale": 1.0})
    return g
