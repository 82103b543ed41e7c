"""``kdsnn demo``: the whole road on the embedded digits data, with no arguments.

Train the teacher, distill the student, quantize, export NIR/ONNX/netx, simulate on the
reference simulator and on Lava, verify that every backend agrees, and write the report.
Each stage's files stay in ``runs/demo``; a second run resumes finished training.
"""
from __future__ import annotations

import time
from pathlib import Path

from kdsnn import data
from kdsnn.distill import DEMO_METHOD
from kdsnn.export import nir_io
from kdsnn.export.netx import export_netx
from kdsnn.export.onnx import export_onnx
from kdsnn.export.student import load_student_graphs
from kdsnn.trainer import TrainConfig, train

from .report import build_report
from .report.summary import summary_text
from .verify import format_table, verify


def _stage(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def run_demo(out: str = "runs/demo", teacher_epochs: int = 15, student_epochs: int = 15, kd: str = DEMO_METHOD,
             verify_samples: int = 8) -> int:
    t0 = time.time()
    root = Path(out)
    _stage(f"1/6 train the teacher (mnist_cnn, {teacher_epochs} epochs on digits)")
    teacher = train(TrainConfig(arch="mnist_cnn", epochs=teacher_epochs, out=str(root / "teacher"), resume=True),
                    "teacher")
    print(f"teacher test accuracy {teacher['accuracy'] * 100:.2f} %")
    _stage(f"2/6 distill the student (snn_2conv, T = 4, --kd {kd}, {student_epochs} epochs)")
    student = train(TrainConfig(arch="snn_2conv", kd=kd, teacher=teacher["checkpoint"], epochs=student_epochs,
                                timesteps=4, out=str(root / "student"), resume=True), "student")
    print(f"student test accuracy {student['accuracy'] * 100:.2f} %")

    _stage("3/6 fold BN, quantize to 8 bits, export NIR / ONNX / netx")
    dep = load_student_graphs(student["checkpoint"], bits=8)
    files = {
        "NIR (float)": nir_io.write(dep.float_graph, root / "export" / "student_float.nir"),
        "NIR (int8)": nir_io.write(dep.int_graph, root / "export" / "student_int8.nir"),
        "ONNX (unrolled)": export_onnx(dep.int_graph, root / "export" / "student_int8.onnx", "unrolled"),
        "ONNX (step)": export_onnx(dep.int_graph, root / "export" / "student_int8_step.onnx", "step"),
        "netx (Lava)": export_netx(dep.int_graph, root / "export" / "student_int8.net"),
    }
    for what, path in files.items():
        print(f"  {what:16s} {path}")

    _stage(f"4/6 verify: every backend on {verify_samples} test inputs against the integer PyTorch model")
    x, _ = data.sample_batch(dep.dataset, verify_samples)
    checks = verify(dep, x, workdir=root / "verify", progress=True)
    print(format_table(checks))

    _stage("5/6 report: accuracy on every backend, firing, SynOps, energy")
    report = build_report(dep, root / "report", slow_samples=32)
    print(summary_text(report))

    failed = [c for c in checks if c.failed]
    _stage("6/6 done" + (" — BACKENDS DISAGREE" if failed else ""))
    print(f"report: {root / 'report' / 'report.html'}  ({time.time() - t0:.0f} s)")
    return 1 if failed else 0
