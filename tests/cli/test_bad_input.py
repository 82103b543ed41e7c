"""Bad input a new user hits, through the command line: one line on stderr, exit status 2, no traceback,
and nothing left under a final file name."""
import struct
from pathlib import Path

import numpy as np
import pytest

from kdsnn import data
from kdsnn.cli import main
from tests.helpers import calibrated_student, error_line

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx(array: np.ndarray) -> bytes:
    """``array`` in MNIST's IDX format (unsigned bytes; magic 0x0803 for images, 0x0801 for labels)."""
    head = struct.pack(">IIII", 0x0803, *array.shape) if array.ndim == 3 else struct.pack(">II", 0x0801, len(array))
    return head + array.astype(np.uint8).tobytes()


def _mnist_root(root: Path, **contents: bytes) -> Path:
    """A valid tiny MNIST (8 train, 4 test images) in torchvision's layout; ``contents`` replaces files."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte": _idx(rng.integers(0, 256, (8, 28, 28))),
             "train-labels-idx1-ubyte": _idx(rng.integers(0, 10, 8)),
             "t10k-images-idx3-ubyte": _idx(rng.integers(0, 256, (4, 28, 28))),
             "t10k-labels-idx1-ubyte": _idx(rng.integers(0, 10, 4))}
    files.update({k.replace("_", "-"): v for k, v in contents.items()})
    for name, blob in files.items():
        (raw / name).write_bytes(blob)
    return root


def _train_mnist(root: Path, out: Path) -> int:
    return main(["train-teacher", "--dataset", "mnist", "--data-root", str(root), "--epochs", "1",
                 "--warmup-epochs", "0", "--out", str(out), "--quiet"])


def test_valid_tiny_mnist_root_trains(tmp_path, capsys):
    # the control for the corrupt cases below: the same files, undamaged, are read and trained on
    out = tmp_path / "run"
    assert _train_mnist(_mnist_root(tmp_path / "data"), out) == 0
    assert (out / "checkpoint.pt").is_file()


@pytest.mark.parametrize("bad, file, says", [
    ({"train_images_idx3_ubyte": b"garbage!" * 400}, "train-images-idx3-ubyte", "magic number"),
    ({"t10k_labels_idx1_ubyte": b"\x00\x00\x08"}, "t10k-labels-idx1-ubyte", "truncated"),
    # a right header over too few bytes: 8 images promised, 2 present
    ({"train_images_idx3_ubyte": struct.pack(">IIII", 0x0803, 8, 28, 28) + bytes(2 * 784)},
     "train-images-idx3-ubyte", "truncated"),
    ({"train_images_idx3_ubyte": _idx(np.zeros((8, 16, 16)))}, "train-images-idx3-ubyte", "16x16 images, not 28x28"),
    ({"train_labels_idx1_ubyte": _idx(np.zeros(5))}, "train-images-idx3-ubyte holds 8 images", "5 labels"),
])
def test_corrupt_mnist_file_is_named(tmp_path, capsys, bad, file, says):
    out = tmp_path / "run"
    assert _train_mnist(_mnist_root(tmp_path / "data", **bad), out) == 2
    line = error_line(capsys)
    assert file in line and says in line, line
    assert not out.exists()


def test_missing_mnist_file_is_listed(tmp_path, capsys):
    root = _mnist_root(tmp_path / "data")
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").unlink()
    assert _train_mnist(root, tmp_path / "run") == 2
    line = error_line(capsys)
    assert "not found" in line and "missing t10k-images-idx3-ubyte" in line


def test_unreadable_file_that_passes_the_checks(tmp_path, capsys):
    # torchvision's old processed layout (MNIST/processed/*.pt) is read by torchvision itself: garbage there
    # still ends in one line naming the data set
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir(parents=True)
    for name in ("training.pt", "test.pt"):
        (processed / name).write_bytes(b"not a torch file")
    assert _train_mnist(tmp_path, tmp_path / "run") == 2
    line = error_line(capsys)
    assert f"mnist under {tmp_path} is unreadable, corrupt or truncated" in line and "replace its files" in line


def test_corrupt_cifar_file_is_named(tmp_path, capsys):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"):
        (folder / name).write_bytes(b"not a pickle")
    assert main(["train-teacher", "--dataset", "cifar10", "--arch", "resnet18", "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "run")]) == 2
    line = error_line(capsys)
    assert "data_batch_1 is corrupt or truncated" in line


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me\n")
    assert main(["train-teacher", "--epochs", "1", "--out", str(existing), "--quiet"]) == 2
    line = error_line(capsys)
    assert f"--out {existing} is an existing file" in line and "must be a folder" in line
    assert existing.read_text() == "keep me\n"  # untouched
    assert main(["distill", "--kd", "none", "--epochs", "1", "--out", str(existing / "sub"), "--quiet"]) == 2
    assert f"its parent {existing} is an existing file" in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


@pytest.fixture(scope="module")
def student_nir(tmp_path_factory) -> Path:
    from kdsnn.export import nir_io
    from kdsnn.export.graph import student_to_graph

    graph = student_to_graph(calibrated_student("snn_2conv", width=0.25), data.spec("digits").preprocessing(),
                             extra={"arch": "snn_2conv", "dataset": "digits"})
    return nir_io.write(graph, tmp_path_factory.mktemp("nir") / "student.nir")


@pytest.mark.parametrize("samples", ["0", "-3"])
def test_simulate_with_no_samples(student_nir, capsys, samples):
    assert main(["simulate", str(student_nir), "--samples", samples]) == 2
    assert f"need at least 1 input sample of digits, got {samples}" in error_line(capsys)


def test_simulate_with_samples_runs(student_nir, capsys):
    # control for the case above: the same file with --samples 2 simulates two digits
    assert main(["simulate", str(student_nir), "--samples", "2", "--json"]) == 0
    assert '"samples": 2' in capsys.readouterr().out
