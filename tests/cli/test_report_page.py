"""The report as a person meets it (issue 17): the demo's report, read structurally.

The page is parsed, not rendered: what a browser shows is the text outside <style>/<script> and attribute values,
and the order of elements is the order of the HTML (the page has no CSS positioning or scripts), so a parser sees
what Chromium shows without needing a browser in CI. The screenshots under docs/ are made with headless Chromium.
"""
import json
import re
from html.parser import HTMLParser

import pytest

from kdsnn.cli import main
from kdsnn.trainer import TrainConfig, train

EXPONENT = re.compile(r"\d(\.\d+)?[eE][+-]?\d")
SAMPLES = re.compile(r"\b\d[\d,]* samples?\b")


class Page(HTMLParser):
    """Visible text, the element order, and each figure's caption."""

    def __init__(self):
        super().__init__()
        self.order: list[str] = []
        self.text: list[str] = []
        self.captions: list[str] = []
        self.images = 0
        self._skip = 0
        self._caption: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        ident = dict(attrs).get("id")
        self.order.append(f"{tag}#{ident}" if ident else tag)
        if tag in ("style", "script", "title"):
            self._skip += 1
        if tag == "img":
            self.images += 1
        if tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag):
        if tag in ("style", "script", "title"):
            self._skip -= 1
        if tag == "figcaption" and self._caption is not None:
            self.captions.append("".join(self._caption))
            self._caption = None

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)
            if self._caption is not None:
                self._caption.append(data)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's road in small: a teacher, a distilled snn_2conv student, its report and its map."""
    root = tmp_path_factory.mktemp("demo")
    teacher = train(TrainConfig(arch="mnist_cnn", epochs=2, out=str(root / "teacher"), quiet=True), "teacher")
    student = train(TrainConfig(arch="snn_2conv", kd="response", teacher=teacher["checkpoint"], epochs=2,
                                out=str(root / "student"), quiet=True), "student")
    return {"student": student["checkpoint"], "root": root}


def _report(demo, capsys) -> tuple[dict, Page, str]:
    out = demo["root"] / "report"
    if not (out / "report.json").exists():
        assert main(["report", demo["student"], "--out", str(out), "--slow-samples", "4"]) == 0
        demo["terminal"] = capsys.readouterr().out
    page = Page()
    page.feed((out / "report.html").read_text())
    return json.loads((out / "report.json").read_text()), page, demo["terminal"]


def test_the_summary_comes_before_every_table(demo, capsys):
    rep, page, _ = _report(demo, capsys)
    assert "section#summary" in page.order and "table" in page.order
    assert page.order.index("section#summary") < page.order.index("table")
    text = " ".join(page.text)
    summary = text[text.index("Summary"):text.index("Accuracy on every backend")]
    assert "T = 4" in summary and "8-bit" in summary and "digits" in summary
    assert "float (PyTorch student)" in summary and "→" in summary and " %" in summary
    assert "the same prediction as the reference simulator" in summary
    assert "cmos45_fp32" in summary and "student as ANN" in summary
    for t in rep["targets"]:  # one verdict line per target, with its first broken rule when it does not fit
        assert f"{t['target']}: {'fits' if t['fits'] else 'does NOT fit'}" in summary
        if t["violations"]:
            assert t["violations"][0]["message"] in summary


def test_no_visible_number_is_in_exponent_notation(demo, capsys):
    _, page, terminal = _report(demo, capsys)
    visible = " ".join(page.text)
    assert not EXPONENT.search(visible), EXPONENT.search(visible)
    assert not EXPONENT.search(terminal), EXPONENT.search(terminal)


def test_every_figure_names_its_sample_count(demo, capsys):
    rep, page, _ = _report(demo, capsys)
    assert page.images == len(page.captions) == 4 + sum(1 for t in rep["targets"] if t.get("load"))
    for caption in page.captions:
        assert SAMPLES.search(caption), caption
    text = " ".join(page.text)
    body = text[text.index("Accuracy on every backend"):]  # the sections after the summary
    for part in (text, body):
        for heading in ("Operations per inference", "Energy per inference", "Hardware targets"):
            if heading in part:
                line = part[part.index(heading):][:90]
                assert SAMPLES.search(line), line


def test_report_and_map_give_the_same_numbers_on_the_same_samples(demo, capsys):
    rep, _, terminal = _report(demo, capsys)
    assert main(["map", demo["student"], "--json"]) == (0 if all(t["fits"] for t in rep["targets"]) else 1)
    mapped = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert mapped["samples"] == rep["map_samples"] == 64  # the same default, the same first 64 test samples
    for r, m in zip(rep["targets"], mapped["targets"], strict=True):
        assert r["target"] == m["target"]
        assert r["placement"]["cores_used"] == m["placement"]["cores_used"]
        assert r["energy"]["joules"] == m["energy"]["joules"]
        assert r["latency"].get("step_seconds") == m["latency"].get("step_seconds")
        assert r["latency"].get("inference_seconds") == m["latency"].get("inference_seconds")
        assert r["violations"] == m["violations"]
    assert terminal.strip().splitlines()[-2] == _closing(mapped["targets"])  # the terminal summary ends the same way


def _closing(targets) -> str:
    from kdsnn.deploy.targets.command import closing_line

    return "  " + closing_line(targets)
