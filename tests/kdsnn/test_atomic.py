"""Atomic writes: the data reaches the disk before the rename, and the rename before we return."""
import os

import pytest

from kdsnn import atomic


def _record(monkeypatch) -> list[tuple]:
    """Log every fsync (which path, a file or a folder, and the file's bytes at that moment) and every rename."""
    events: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        is_dir = os.path.isdir(path)
        events.append(("fsync", path, is_dir, None if is_dir else os.pread(fd, 1 << 16, 0)))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    return events


def test_temp_file_synced_before_rename_and_folder_after(tmp_path, monkeypatch):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name a file descriptor")
    events = _record(monkeypatch)
    target = tmp_path / "out" / "metrics.jsonl"
    atomic.write_text(target, "line 1\nline 2\n")
    assert target.read_text() == "line 1\nline 2\n"
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    (_, synced, synced_dir, content), (_, src, dst), (_, folder, folder_is_dir, _) = events
    assert synced == src and not synced_dir and content == b"line 1\nline 2\n"  # the full data, then the rename
    assert dst == str(target)
    assert folder == str(target.parent) and folder_is_dir


def test_writer_by_name_is_synced_too(tmp_path, monkeypatch):
    # torch.save, h5py and nir.write open the temporary path themselves: the sync reopens it afterwards
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name a file descriptor")
    events = _record(monkeypatch)
    atomic.write_with(tmp_path / "blob.bin", lambda p: p.write_bytes(b"\x00\x01\x02"))
    assert events[0][0] == "fsync" and events[0][3] == b"\x00\x01\x02"
    assert events[1][0] == "replace" and events[2][1:3] == (str(tmp_path), True)


def test_failed_write_leaves_nothing_and_syncs_nothing(tmp_path, monkeypatch):
    events = _record(monkeypatch)
    target = tmp_path / "model.nir"

    def broken(path):
        path.write_bytes(b"half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        atomic.write_with(target, broken)
    assert list(tmp_path.iterdir()) == [] and events == []


def test_destination_checked_before_anything_is_made(tmp_path):
    from kdsnn.errors import KdsnnError

    (tmp_path / "file.txt").write_text("keep")
    with pytest.raises(KdsnnError, match="it is a folder"):
        atomic.write_text(tmp_path, "x")
    with pytest.raises(KdsnnError, match="file.txt is a file, not a folder"):
        atomic.write_text(tmp_path / "file.txt" / "a" / "b.json", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_a_failed_write_removes_the_folders_it_made(tmp_path):
    with pytest.raises(RuntimeError), atomic.atomic_path(tmp_path / "new" / "deeper" / "x.bin"):
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []


def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    out = tmp_path / "report"
    with pytest.raises(KeyboardInterrupt), atomic.staged_folder(out) as stage:
        (stage / "firing_rates.png").write_bytes(b"png")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic.staged_folder(out) as stage:
        (stage / "a.png").write_bytes(b"1")
        atomic.write_text(stage / "report.json", "{}")
        assert not out.exists()  # nothing under the final name until the end
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "report.json"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~atomic._umask())
    # into an existing folder (a replaced report): its other files stay
    (out / "notes.md").write_text("mine")
    with atomic.staged_folder(out) as stage:
        (stage / "a.png").write_bytes(b"2")
    assert (out / "a.png").read_bytes() == b"2" and (out / "notes.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
