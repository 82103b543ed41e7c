"""Bad input a new user hits, through the command line: one line on stderr, exit status 2, no traceback,
and nothing left under a final file name."""
import struct
from pathlib import Path

import numpy as np
import pytest

from kdsnn import data
from kdsnn.cli import main
from tests.helpers import calibrated_student, error_line, snapshot

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


# ----------------------------------------------------------------------------- numbers no run can use

TINY = ["--dataset", "fake:1x8x8:3", "--epochs", "1", "--quiet"]


@pytest.mark.parametrize("argv, says", [
    # seeds beyond 64 bits overflowed inside PyTorch's generator (a traceback)
    (["train-teacher", "--seed", "99999999999999999999"], "argument --seed: must be an integer between"),
    (["train-teacher", "--workers", "-1"], "argument --workers: must be an integer ≥ 0, got -1"),
    # 0 or fewer batches trained nothing and reported 0.00 % accuracy as the run's result
    (["train-teacher", "--max-batches", "0"], "argument --max-batches: must be an integer ≥ 1, got 0"),
    (["train-teacher", "--max-batches", "-1"], "argument --max-batches: must be an integer ≥ 1, got -1"),
    (["train-teacher", "--stop-after", "0"], "argument --stop-after: must be an integer ≥ 1, got 0"),
    # continue and start over at once: --resume won silently
    (["train-teacher", "--resume", "--force"], "give --resume (continue the run in --out) or --force (start it over), "
                                               "not both"),
    # infinite or NaN hyper-parameters trained NaN weights and wrote them as a checkpoint
    (["train-teacher", "--lr", "inf"], "--lr must be > 0, got inf (a finite number)"),
    (["train-teacher", "--weight-decay", "nan"], "--weight-decay must be >= 0, got nan (a finite number)"),
    (["distill", "--kd", "none", "--alpha", "nan"], "--alpha must be >= 0, got nan (a finite number)"),
    (["distill", "--kd", "none", "--temperature", "inf"], "--temperature must be > 0, got inf (a finite number)"),
    # an IF threshold at or below 0 fires at every step, NaN or ∞ never; a surrogate of slope 0 passes no gradient
    (["distill", "--kd", "none", "--threshold", "0"], "--threshold must be a finite number > 0, got 0.0"),
    (["distill", "--kd", "none", "--threshold", "-1"], "--threshold must be a finite number > 0, got -1.0"),
    (["distill", "--kd", "none", "--threshold", "nan"], "--threshold must be a finite number > 0, got nan"),
    (["distill", "--kd", "none", "--threshold", "inf"], "--threshold must be a finite number > 0, got inf"),
    (["distill", "--kd", "none", "--surrogate-param", "0"], "--surrogate-param must be a finite number > 0"),
    (["distill", "--kd", "none", "--surrogate-param", "nan"], "--surrogate-param must be a finite number > 0"),
])
def test_training_numbers_are_refused_before_the_run(tmp_path, capsys, argv, says):
    out = tmp_path / "run"
    try:
        code = main([*argv, *TINY, "--out", str(out)])
    except SystemExit as exc:  # argparse's refusals exit from inside the parser
        code = exc.code
    assert code == 2
    assert says in error_line(capsys)
    assert not out.exists()


def test_a_threshold_and_surrogate_that_make_sense_still_train(tmp_path, capsys):
    # the control for the refusals above: the same command with θ 0.5 and slope 2 trains
    out = tmp_path / "run"
    assert main(["distill", "--kd", "none", *TINY, "--width", "0.25", "--timesteps", "2", "--max-batches", "1",
                 "--threshold", "0.5", "--surrogate-param", "2", "--out", str(out)]) == 0
    assert (out / "checkpoint.pt").is_file()


@pytest.mark.parametrize("argv, says", [
    (["--seed", "-99999999999999999999"], "argument --seed: must be an integer between"),
    # NaN noise made every image NaN; a "fraction" of 2 or a level for a corruption that takes none was dropped
    (["--noise", "gaussian:nan"], "noise level must be a finite number >= 0, got nan"),
    (["--noise", "gaussian:inf"], "noise level must be a finite number >= 0, got inf"),
    (["--noise", "noise:2"], "noise:2 replaces a fraction of the pixels: give a fraction in [0, 1], got 2.0"),
    (["--noise", "rotation:5"], "noise rotation takes no level (got 'rotation:5'); write --noise rotation"),
    (["--noise", "background:0.5"], "noise background takes no level"),
])
def test_evaluate_options_are_checked(student_ckpt, capsys, argv, says):
    before = snapshot(student_ckpt)
    try:
        code = main(["evaluate", str(student_ckpt), *argv])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert says in error_line(capsys)
    assert snapshot(student_ckpt) == before


def test_noise_levels_that_make_sense_still_evaluate(student_ckpt, capsys):
    for noise in ("noise:0.5", "rotation", "gaussian"):
        assert main(["evaluate", str(student_ckpt), "--noise", noise, "--json"]) == 0
        assert f'"noise": "{noise}"' in capsys.readouterr().out


def test_a_foreign_pickle_is_one_line(tmp_path):
    """torch.load warned about the pickle protocol on stderr before kdsnn's refusal: two lines, not one. Run as the
    user runs it (pytest would catch the warning)."""
    import pickle
    import subprocess
    import sys

    from tests.helpers import REPO

    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    proc = subprocess.run([sys.executable, "-m", "kdsnn", "evaluate", str(path)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path} is not a readable kdsnn checkpoint" in lines[0], proc.stderr


@pytest.mark.parametrize("argv, says", [
    (["--student-epochs", "-1"], "argument --student-epochs: must be an integer ≥ 1, got -1"),
    (["--teacher-epochs", "0"], "argument --teacher-epochs: must be an integer ≥ 1, got 0"),
    # the method's name was checked only after the teacher had trained (12 s on digits)
    (["--kd", "crd"], "unknown distillation method 'crd'; choose one of"),
])
def test_demo_options_are_checked_before_the_teacher_trains(tmp_path, capsys, argv, says):
    out = tmp_path / "demo"
    try:
        code = main(["demo", "--out", str(out), *argv])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert says in error_line(capsys)
    assert not out.exists()


def test_resume_on_other_data_is_refused(tmp_path, capsys):
    """A run resumed on other data of the same shape (digits, then fake 1×8×8 with 10 classes: the same model
    spec, the same recipe), on another split (--validate) or data order (--seed) continued silently and mixed two
    trainings in one checkpoint."""
    run = tmp_path / "run"
    common = ["train-teacher", "--recipe", "digits-teacher", "--epochs", "2", "--max-batches", "1", "--out", str(run),
              "--quiet"]
    assert main([*common, "--stop-after", "1"]) == 0
    capsys.readouterr()
    before = snapshot(run / "checkpoint.pt")
    assert main([*common, "--dataset", "fake:1x8x8:10", "--resume"]) == 2
    line = error_line(capsys)
    assert "was trained with dataset = 'digits', this run asks for 'fake:1x8x8:10'" in line
    assert snapshot(run / "checkpoint.pt") == before
    for other, says in ((["--seed", "3"], "was trained with seed = 0, this run asks for 3"),
                        (["--validate"], "was trained with validate = False, this run asks for True")):
        assert main([*common, *other, "--resume"]) == 2
        assert says in error_line(capsys)
    assert snapshot(run / "checkpoint.pt") == before
    assert main([*common, "--resume"]) == 0  # the same data set continues


# ----------------------------------------------------------------------------- deploy commands

@pytest.mark.parametrize("argv, says", [
    (["simulate", "{nir}", "--spike-rate", "0.1", "--seed", "99999999999999999999"],
     "argument --seed: must be an integer between"),
    (["verify", "{nir}", "--spike-rate", "0.1", "--seed", "99999999999999999999"],
     "argument --seed: must be an integer between"),
    # a data set with more classes than the graph has outputs: labels it can never predict, a wrong accuracy
    (["simulate", "{nir}", "--dataset", "fake:1x8x8:20", "--samples", "2"],
     "fake:1x8x8:20 has 20 classes but the graph has 10 outputs: labels 10..19 could never be predicted"),
    (["map", "{nir}", "--dataset", "fake:1x8x8:20", "--samples", "2"], "fake:1x8x8:20 has 20 classes"),
    (["report", "{nir}", "--out", "{tmp}/r", "--dataset", "fake:1x8x8:20", "--samples", "2"],
     "fake:1x8x8:20 has 20 classes"),
    # --slow-samples 0 (or below) crashed in the batching of the slow backends
    (["report", "{nir}", "--out", "{tmp}/r", "--samples", "2", "--slow-samples", "0"],
     "argument --slow-samples/--lava-samples: must be an integer ≥ 1, got 0"),
    # --target was silently ignored for a NIR file's report (even a name that does not exist)
    (["report", "{nir}", "--out", "{tmp}/r", "--target", "truenorth"],
     "--target maps a checkpoint's integer graph in its report; for a NIR file run `kdsnn map"),
    # how to read a NIR file, given with a checkpoint: ignored before, so --timesteps 9 ran T = 4
    (["verify", "{ckpt}", "--timesteps", "9", "--samples", "2"], "--timesteps says how to read a NIR file;"),
    (["verify", "{ckpt}", "--dt", "0.5", "--samples", "2"], "--dt says how to read a NIR file;"),
    (["report", "{ckpt}", "--out", "{tmp}/r", "--legacy-reset", "zero"], "--legacy-reset says how to read a NIR file"),
    (["quantize", "--checkpoint", "{ckpt}", "--timesteps", "9", "--out", "{tmp}/q.nir"],
     "--timesteps says how to read a NIR file;"),
    # quantize FILE calibrates on --inputs: a --dataset was ignored
    (["quantize", "{nir}", "--dataset", "cifar10", "--out", "{tmp}/q.nir"], "--dataset goes with --checkpoint"),
])
def test_deploy_options_are_refused_before_the_work(student_int_nir, student_ckpt, tmp_path, capsys, argv, says):
    argv = [a.format(nir=student_int_nir, ckpt=student_ckpt, tmp=tmp_path) for a in argv]
    before = snapshot(student_int_nir), snapshot(student_ckpt)
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert says in error_line(capsys)
    assert list(tmp_path.iterdir()) == []
    assert (snapshot(student_int_nir), snapshot(student_ckpt)) == before


def test_fewer_classes_than_outputs_still_simulate(student_int_nir, capsys):
    # the control: a 3-class data set on the 10-output graph is a question the graph can answer (labels 0..2)
    assert main(["simulate", str(student_int_nir), "--dataset", "fake:1x8x8:3", "--samples", "2", "--json"]) == 0
    assert '"samples": 2' in capsys.readouterr().out


def test_save_with_a_backend_that_returns_only_spikes_is_refused_before_running(student_int_nir, tmp_path, capsys):
    """Lava returns its populations' spikes, not the Output's membrane sequence: --save on a membrane-readout graph
    ran the whole simulation, then refused. Now it refuses first (or says Lava is not usable here)."""
    from kdsnn.deploy.backends import get

    out = tmp_path / "run.npz"
    assert main(["simulate", str(student_int_nir), "--backend", "lava", "--samples", "2", "--save", str(out)]) == 2
    line = error_line(capsys)
    usable, why = get("lava").available()
    assert ("backend lava returns only spikes, and this graph's readout is the last layer's membrane" in line
            if usable else "backend lava is not usable here" in line), line
    assert not out.exists()
