"""One command line (issue 17): --version, defaults on every help line, examples for every command, registry
choices in the help, --samples everywhere (old spellings still accepted), models given the same way."""
import argparse

import pytest

from kdsnn.cli import EXAMPLES, build_parser, main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    import importlib.metadata as md

    assert capsys.readouterr().out.strip() == f"kdsnn {md.version('kdsnn')}"


def _options(sub: argparse.ArgumentParser):
    return [a for a in sub._actions if a.option_strings and a.help != argparse.SUPPRESS
            and not isinstance(a, argparse._HelpAction)]


def test_every_option_has_help_and_shows_its_default():
    _, subs = build_parser()
    for name, sub in subs.items():
        help_text = " ".join(sub.format_help().split())
        for action in _options(sub):
            assert action.help is not None, (name, action.option_strings)
            has_default = action.default not in (None, False) and not isinstance(action.default, bool)
            if has_default:
                shown = sub._get_formatter()._get_help_string(action) % {"default": action.default}
                assert "default" in shown, (name, action.option_strings, shown)
        assert "examples:" in help_text, name
        for example in EXAMPLES[name]:
            assert " ".join(example.split()) in help_text
        assert 2 <= len(EXAMPLES[name]) <= 3, name


def test_choices_come_from_the_registries():
    from kdsnn.deploy.targets.spec import builtin_targets
    from kdsnn.models.students import STUDENTS
    from kdsnn.models.teachers import TEACHERS

    _, subs = build_parser()
    text = {n: " ".join(s.format_help().split()) for n, s in subs.items()}
    assert all(arch in text["distill"] for arch in STUDENTS)
    assert all(arch in text["train-teacher"] for arch in TEACHERS)
    for command in ("map", "verify", "report"):
        assert all(t in text[command] for t in builtin_targets()), command
        assert "(default: every built-in target)" in text[command]


def test_samples_is_the_spelling_everywhere_and_old_ones_still_parse():
    parser, subs = build_parser()
    for command in ("simulate", "verify", "report", "map"):
        assert "--samples" in subs[command]._option_string_actions, command
    a = parser.parse_args(["report", "m.nir", "--out", "r", "--limit", "5"])
    assert a.samples == 5  # report's earlier --limit
    assert "--limit" not in subs["report"].format_help()  # hidden
    a = parser.parse_args(["report", "m.nir", "--out", "r", "--lava-samples", "3"])
    assert a.slow_samples == 3


def test_a_model_is_given_the_same_way_to_every_command(student_ckpt, capsys):
    """evaluate, verify, report and map take the model as their first argument; --checkpoint still works."""
    parser, _ = build_parser()
    for argv in (["evaluate", str(student_ckpt)], ["verify", str(student_ckpt)], ["map", str(student_ckpt)],
                 ["report", str(student_ckpt), "--out", "r"]):
        assert parser.parse_args(argv).model == str(student_ckpt)
    assert main(["evaluate", str(student_ckpt), "--json"]) == 0
    positional = capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(student_ckpt), "--json"]) == 0
    assert capsys.readouterr().out == positional
    assert main(["evaluate", str(student_ckpt)]) == 0
    out = capsys.readouterr().out
    assert " %" in out and "test samples" in out  # accuracy as a percentage
    assert main(["evaluate"]) == 2 and "give a checkpoint" in capsys.readouterr().err
