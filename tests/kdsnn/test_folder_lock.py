"""The run-folder lock: held while the body runs, refused to a second holder (naming its pid), taken over
from a holder that died, released (file removed) after."""
import os
import subprocess
import sys

import pytest

from kdsnn.errors import KdsnnError
from kdsnn.folder_lock import LOCK_NAME, folder_lock
from tests.helpers import REPO

HOLD = ("import sys, time\nfrom kdsnn.folder_lock import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n")


def test_a_live_holder_is_named(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(KdsnnError, match=f"being written by another kdsnn run \\(pid {holder.pid}\\)"):
            with folder_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(tmp_path):  # the kernel released the dead holder's lock
        assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(os.getpid())
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_stale_lock_is_taken_over_in_one_line(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid} kdsnn distill\n")  # left by a run killed with -9
    with folder_lock(tmp_path):
        pass
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: took over the lock of {tmp_path} left by kdsnn process {dead.pid}, which is no longer "
                   "running"]


def test_a_folder_made_for_a_failed_run_is_removed(tmp_path):
    run = tmp_path / "a" / "run"
    with pytest.raises(ValueError), folder_lock(run):
        assert run.is_dir()
        raise ValueError("the run failed before writing anything")
    assert not (tmp_path / "a").exists()
    with folder_lock(run):
        (run / "checkpoint.pt").write_text("x")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]


def test_the_lock_is_exclusive_within_a_process(tmp_path):
    with folder_lock(tmp_path):  # a second holder is refused at once (never waits)
        with pytest.raises(KdsnnError, match=f"pid {os.getpid()}"):
            with folder_lock(tmp_path):
                pass
