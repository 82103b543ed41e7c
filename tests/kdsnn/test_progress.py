"""Stage lines (kdsnn/progress.py): one line per stage on stderr, in a log as on a terminal; KDSNN_PROGRESS=0
silences them."""
import re

from kdsnn.progress import restart_clock, stage


def test_a_stage_is_one_line_on_stderr_with_the_elapsed_seconds(capsys, monkeypatch):
    monkeypatch.delenv("KDSNN_PROGRESS", raising=False)
    restart_clock()
    stage("report: mapping onto loihi2")
    stage("Lava: shutting the runtime down")
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and len(lines) == 2
    assert re.fullmatch(r"\[\s*\d+ s\] report: mapping onto loihi2", lines[0])
    assert lines[1].endswith("] Lava: shutting the runtime down")


def test_stages_can_be_turned_off(capsys, monkeypatch):
    stage("hidden", enabled=False)
    monkeypatch.setenv("KDSNN_PROGRESS", "0")
    stage("hidden too")
    assert capsys.readouterr().err == ""
