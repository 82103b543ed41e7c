"""The output-path guard: inputs never overwritten, outputs checked for kind, parents and writability,
earlier results replaced only with force."""
import os
import tempfile
from pathlib import Path

import pytest

from kdsnn.errors import KdsnnError
from kdsnn.outputs import check_file, check_folder


def test_an_input_is_never_an_output(tmp_path):
    ckpt = tmp_path / "s.pt"
    ckpt.write_bytes(b"weights")
    with pytest.raises(KdsnnError, match=r"--out .*s\.pt is also the input --checkpoint"):
        check_file(ckpt, "--out", {"--checkpoint": str(ckpt)}, force=True)
    # the same file under another name: a relative path, a symlink, a hard link
    link = tmp_path / "link.pt"
    link.symlink_to(ckpt)
    hard = tmp_path / "hard.pt"
    os.link(ckpt, hard)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for other in ("s.pt", "./s.pt", str(link), str(hard)):
            with pytest.raises(KdsnnError, match="is also the input"):
                check_file(other, "--out", {"--checkpoint": str(ckpt)}, force=True)
    finally:
        os.chdir(cwd)
    assert ckpt.read_bytes() == b"weights"


def test_a_folder_output_checks_the_files_it_writes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"teacher")
    with pytest.raises(KdsnnError, match="is also the input --teacher"):
        check_folder(run, "--out", ["checkpoint.pt"], {"--teacher": str(run / "checkpoint.pt")}, force=True)
    # an input elsewhere in the folder is not written over: allowed
    (run / "other.pt").write_bytes(b"x")
    check_folder(run, "--out", ["report.html"], {"--checkpoint": str(run / "other.pt")})


def test_earlier_results_need_force(tmp_path):
    out = tmp_path / "a.nir"
    out.write_bytes(b"old")
    with pytest.raises(KdsnnError, match="already exists .*pass --force"):
        check_file(out, "--out")
    assert check_file(out, "--out", force=True) == out
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(KdsnnError, match="already holds report.json .*--force"):
        check_folder(tmp_path, "--out", ["report.html", "report.json"])


def test_kind_and_parents(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(KdsnnError, match="is a folder"):
        check_file(tmp_path, "--save")
    with pytest.raises(KdsnnError, match="is an existing file, but it must be a folder"):
        check_folder(tmp_path / "f.txt", "--out", [])
    with pytest.raises(KdsnnError, match="its parent .*f.txt is an existing file"):
        check_file(tmp_path / "f.txt" / "deeper" / "x.nir", "--out")
    check_file(tmp_path / "new" / "deeper" / "x.nir", "--out")  # missing folders are fine (made when written)
    assert not (tmp_path / "new").exists()  # ... and not made by the check


def test_an_unwritable_folder_is_found_by_trying(tmp_path, monkeypatch):
    real = tempfile.mkstemp

    def refusing(*args, **kwargs):
        if Path(kwargs.get("dir") or "") == tmp_path:
            raise OSError(30, "Read-only file system")
        return real(*args, **kwargs)
    monkeypatch.setattr(tempfile, "mkstemp", refusing)
    with pytest.raises(KdsnnError, match=f"cannot write in {tmp_path} \\(Read-only file system\\)"):
        check_file(tmp_path / "sub" / "x.onnx", "--out")
    assert list(tmp_path.iterdir()) == []
