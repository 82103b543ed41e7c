"""Files the bad-input tests start from: untrained (BN-calibrated) checkpoints written as a training run
writes them, and their integer NIR graph. Nothing is trained: each is made in well under a second."""
from __future__ import annotations

from pathlib import Path

import pytest

from kdsnn import checkpoint, data
from kdsnn.models import build_model
from tests.helpers import calibrated_student


def save_student(path: Path, **spec_changes) -> Path:
    """A snn_2conv student (width 0.25, digits) saved as ``kdsnn distill`` saves one."""
    model = calibrated_student("snn_2conv", width=0.25)
    spec = {"arch": "snn_2conv", "input_shape": [1, 8, 8], "classes": 10, "timesteps": 4, "encoding": "direct",
            "readout": "membrane", "width": 0.25,
            "neuron": {"threshold": 1.0, "reset": "hard", "v_reset": 0.0, "surrogate": "sigmoid",
                       "surrogate_param": None, "detach_reset": False}, **spec_changes}
    checkpoint.save(path, {"kind": "student", "model_spec": spec, "dataset": "digits",
                           "preprocessing": data.spec("digits").preprocessing(), "model": model.state_dict(),
                           "epoch": 1, "epochs": 1})
    return path


@pytest.fixture(scope="session")
def student_ckpt(tmp_path_factory) -> Path:
    return save_student(tmp_path_factory.mktemp("student") / "checkpoint.pt")


@pytest.fixture(scope="session")
def teacher_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("teacher") / "checkpoint.pt"
    checkpoint.save(path, {"kind": "teacher", "model_spec": {"arch": "mnist_cnn", "input_shape": [1, 8, 8],
                                                             "classes": 10},
                           "dataset": "digits", "preprocessing": data.spec("digits").preprocessing(),
                           "model": build_model("mnist_cnn", (1, 8, 8), 10).state_dict(), "epoch": 1, "epochs": 1})
    return path


@pytest.fixture(scope="session")
def student_int_nir(student_ckpt, tmp_path_factory) -> Path:
    """The student's 8-bit integer graph, as ``kdsnn quantize`` writes it."""
    from kdsnn.export import nir_io
    from kdsnn.export.student import load_student_graphs

    dep = load_student_graphs(str(student_ckpt), 8)
    return nir_io.write(dep.int_graph, tmp_path_factory.mktemp("nir") / "student_int8.nir")
