"""Nothing a user made is lost: no command writes over its own input, a training folder is locked while a
run writes it, an earlier result is replaced only with --force, an output that cannot be written is refused
before the work (one line, exit 2, nothing left), and Ctrl-C leaves no partial output."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kdsnn.cli import main
from tests.helpers import REPO, error_line, snapshot


def test_distill_refuses_to_write_over_its_teacher(teacher_ckpt, tmp_path, capsys):
    folder = tmp_path / "X"
    shutil.copytree(teacher_ckpt.parent, folder)
    before = snapshot(folder / "checkpoint.pt")
    assert main(["distill", "--teacher", str(folder / "checkpoint.pt"), "--out", str(folder), "--epochs", "1",
                 "--quiet"]) == 2
    line = error_line(capsys)
    assert "is also the input --teacher" in line and "choose another output path" in line
    assert snapshot(folder / "checkpoint.pt") == before
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"]
    # even with --force: an input is never an output
    assert main(["distill", "--teacher", str(folder / "checkpoint.pt"), "--out", str(folder), "--force",
                 "--epochs", "1", "--quiet"]) == 2
    assert "is also the input --teacher" in error_line(capsys)
    assert snapshot(folder / "checkpoint.pt") == before


def test_export_refuses_to_write_over_its_checkpoint(student_ckpt, tmp_path, capsys):
    ckpt = tmp_path / "s.pt"
    shutil.copy(student_ckpt, ckpt)
    before = snapshot(ckpt)
    for command in (["export", "--format", "nir"], ["quantize"]):
        assert main([*command, "--checkpoint", str(ckpt), "--out", str(ckpt), "--force"]) == 2
        assert f"--out {ckpt} is also the input --checkpoint" in error_line(capsys)
        assert snapshot(ckpt) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt"]


def test_an_earlier_result_is_replaced_only_with_force(student_ckpt, tmp_path, capsys):
    out = tmp_path / "student.nir"
    out.write_bytes(b"an earlier export")
    assert main(["export", "--checkpoint", str(student_ckpt), "--format", "nir", "--out", str(out), "--no-check"]) == 2
    assert "already exists" in (line := error_line(capsys)) and "--force" in line
    assert out.read_bytes() == b"an earlier export"
    assert main(["export", "--checkpoint", str(student_ckpt), "--format", "nir", "--out", str(out), "--no-check",
                 "--force"]) == 0
    assert out.read_bytes()[:4] == b"\x89HDF"


def test_training_into_an_earlier_run_needs_resume_or_force(teacher_ckpt, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(teacher_ckpt.parent, run)
    before = snapshot(run / "checkpoint.pt")
    assert main(["train-teacher", "--out", str(run), "--epochs", "1", "--quiet"]) == 2
    line = error_line(capsys)
    assert "already holds checkpoint.pt" in line and "--resume" in line and "--force" in line
    assert snapshot(run / "checkpoint.pt") == before


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.time() + seconds
    while not path.exists():
        if proc.poll() is not None or time.time() > end:
            raise AssertionError(f"the first run never took its lock: {proc.communicate()}")
        time.sleep(0.1)


def test_a_second_run_on_the_same_out_refuses_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "kdsnn", "train-teacher", "--epochs", "50", "--out", str(out),
                              "--quiet"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(out / ".kdsnn.lock", first)
        assert main(["train-teacher", "--epochs", "1", "--out", str(out), "--quiet"]) == 2
        line = error_line(capsys)
        assert f"is being written by another kdsnn training run (pid {first.pid})" in line
    finally:
        first.kill()
        first.communicate()


def test_output_onto_a_folder_is_refused(student_ckpt, student_int_nir, tmp_path, capsys):
    folder = tmp_path / "out.npz"
    folder.mkdir()
    assert main(["simulate", str(student_int_nir), "--samples", "2", "--save", str(folder)]) == 2
    assert f"--save {folder} is a folder" in error_line(capsys)
    assert main(["export", "--checkpoint", str(student_ckpt), "--out", str(folder), "--force"]) == 2
    assert f"--out {folder} is a folder" in error_line(capsys)
    assert list(folder.iterdir()) == []


def test_output_under_a_file_is_refused(student_ckpt, student_int_nir, tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me\n")
    assert main(["export", "--checkpoint", str(student_ckpt), "--out", str(blocker / "s.nir")]) == 2
    assert f"its parent {blocker} is an existing file" in error_line(capsys)
    assert main(["report", str(student_int_nir), "--out", str(blocker / "rep")]) == 2
    assert "is an existing file" in error_line(capsys)
    assert main(["simulate", str(student_int_nir), "--samples", "2", "--save", str(blocker / "a" / "run.npz")]) == 2
    error_line(capsys)
    assert blocker.read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _unwritable(tmp_path: Path, monkeypatch) -> Path:
    """A folder this process cannot write into: read-only by its mode, or (root ignores modes) by the
    file system refusing new files there, as a read-only mount does."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root: simulate the read-only file system's answer
        real = tempfile.mkstemp

        def refusing(*args, **kwargs):
            if Path(kwargs.get("dir") or "").resolve() == folder.resolve():
                raise PermissionError(13, "Read-only file system")
            return real(*args, **kwargs)
        monkeypatch.setattr(tempfile, "mkstemp", refusing)
    return folder


def test_output_in_a_read_only_folder_is_refused_before_the_work(student_ckpt, student_int_nir, tmp_path,
                                                                   monkeypatch, capsys):
    folder = _unwritable(tmp_path, monkeypatch)
    try:
        assert main(["export", "--checkpoint", str(student_ckpt), "--format", "onnx",
                     "--out", str(folder / "s.onnx")]) == 2
        assert f"cannot write in {folder}" in error_line(capsys)
        assert main(["simulate", str(student_int_nir), "--samples", "2", "--save", str(folder / "r.npz")]) == 2
        assert f"cannot write in {folder}" in error_line(capsys)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_interrupted_report_leaves_nothing(student_int_nir, tmp_path, monkeypatch, capsys):
    from kdsnn.deploy.report import plots

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(plots, "energy", interrupt)  # after the firing-rate plot is written
    out = tmp_path / "report"
    assert main(["report", str(student_int_nir), "--out", str(out), "--limit", "4", "--lava-samples", "1"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" not in err and "no partial output" in err
    assert list(tmp_path.iterdir()) == []  # no firing_rates.png, no report folder, no staging folder


def test_interrupted_simulate_does_not_offer_resume(student_int_nir, tmp_path, monkeypatch, capsys):
    from kdsnn.deploy.backends import Simulator

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(Simulator, "run", interrupt)
    assert main(["simulate", str(student_int_nir), "--samples", "2", "--save", str(tmp_path / "r.npz")]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "kdsnn: interrupted; no partial output was left behind"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["train-teacher"], ["distill", "--kd", "none", "--width", "0.25"]])
def test_interrupted_training_offers_resume(command, tmp_path, monkeypatch, capsys):
    from kdsnn import trainer

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer, "_epochs", interrupt)
    assert main([*command, "--out", str(tmp_path / "r"), "--quiet"]) == 130
    assert "--resume continues from the last checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # no checkpoint yet: the run's folder is not left behind


@pytest.mark.parametrize("argv, says", [
    # Path("") is the current folder: train-teacher and report wrote checkpoint.pt / report.html where the user stood
    (["train-teacher", "--epochs", "1", "--quiet", "--out", ""], "--out is empty; give the path of the folder"),
    (["distill", "--kd", "none", "--epochs", "1", "--quiet", "--out", " "], "--out is empty"),
    (["report", "{nir}", "--out", ""], "--out is empty; give the path of the folder"),
    (["demo", "--out", ""], "--out is empty; give the path of the folder"),
    # --save "" ran without saving; --inputs "" and --config "" were ignored (the data set and no options were used)
    (["simulate", "{nir}", "--samples", "2", "--save", ""], "--save is empty; give the path of the .npz file"),
    (["simulate", "{nir}", "--samples", "2", "--config", ""], "--config is empty"),
    (["export", "--checkpoint", "{ckpt}", "--inputs", "", "--out", "{tmp}/s.nir"], "--inputs is empty"),
    (["verify", "{ckpt}", "--samples", "2", "--inputs", ""], "--inputs is empty"),
    (["map", "{nir}", "--inputs", ""], "--inputs is empty"),
    # a file named like another format: a netx file called .nir is refused by every NIR reader afterwards
    (["export", "--checkpoint", "{ckpt}", "--format", "netx", "--out", "{tmp}/s.nir"],
     "is named like a nir file, but netx is written; name it .net or pass --format nir"),
    (["export", "--checkpoint", "{ckpt}", "--format", "nir", "--out", "{tmp}/s.onnx"],
     "is named like an onnx file, but nir is written; name it .nir or pass --format onnx"),
    (["quantize", "--checkpoint", "{ckpt}", "--out", "{tmp}/s.onnx"],
     "is named like an onnx file, but nir is written; name it .nir or write onnx with kdsnn export --format onnx"),
])
def test_empty_or_misnamed_paths_are_refused(student_ckpt, student_int_nir, tmp_path, monkeypatch, capsys, argv, says):
    work = tmp_path / "cwd"  # where the user stands: nothing may appear here
    work.mkdir()
    monkeypatch.chdir(work)
    argv = [a.format(nir=student_int_nir, ckpt=student_ckpt, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    assert says in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd"] and list(work.iterdir()) == []


def test_a_name_no_format_claims_is_the_users_choice(student_ckpt, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(student_ckpt), "--out", str(tmp_path / "s.h5"), "--no-check"]) == 0
    assert main(["export", "--checkpoint", str(student_ckpt), "--out", str(tmp_path / "S.NIR"), "--no-check"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S.NIR", "s.h5"]


def test_export_for_a_chip_guards_its_output_like_export(student_ckpt, tmp_path, capsys):
    """export --for wrote over an existing file without --force (and over its own checkpoint's name), and put
    Loihi 2's netx file under a .nir name."""
    earlier = tmp_path / "student.net"
    earlier.write_bytes(b"an earlier hand-off")
    assert main(["export", "--checkpoint", str(student_ckpt), "--for", "loihi2", "--out", str(earlier),
                 "--no-check"]) == 2
    assert f"--out {earlier} already exists" in error_line(capsys)
    assert earlier.read_bytes() == b"an earlier hand-off"
    ckpt = tmp_path / "s.pt"
    shutil.copy(student_ckpt, ckpt)
    before = snapshot(ckpt)
    assert main(["export", "--checkpoint", str(ckpt), "--for", "loihi2", "--out", str(ckpt), "--force"]) == 2
    assert f"--out {ckpt} is also the input --checkpoint" in error_line(capsys)
    assert snapshot(ckpt) == before
    assert main(["export", "--checkpoint", str(student_ckpt), "--for", "loihi2", "--out", str(tmp_path / "s.nir"),
                 "--no-check"]) == 2  # snn_2conv is sequential: Lava's netx route
    assert "is named like a nir file, but netx is written; name it .net" in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt", "student.net"]
    assert main(["export", "--checkpoint", str(student_ckpt), "--for", "loihi2", "--out", str(earlier), "--force",
                 "--no-check"]) == 0  # the control: replaced when asked
    assert earlier.read_bytes()[:4] == b"\x89HDF"
