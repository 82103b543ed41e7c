"""Numbers as a person reads them (kdsnn/human.py): values worked out by hand, never exponent notation."""
import re

import pytest

from kdsnn import human

EXPONENT = re.compile(r"\d[eE][+-]?\d")


@pytest.mark.parametrize(("value", "unit", "text"), [
    (6.66e-5, "J", "66.6 µJ"),          # 66.6 × 10⁻⁶
    (2.725e6, "SynOps", "2.73 M SynOps"),  # a word keeps a space after the prefix
    (0, "J", "0 J"),
    (1234, "", "1.23 k"),
    (999.96, "J", "1 kJ"),               # rounds up past 999: the next prefix
    (9.9996e-7, "J", "1 µJ"),
    (7.8e-4, "s", "780 µs"),
    (1.95e-4, "s", "195 µs"),
    (-3.2e-9, "s", "-3.2 ns"),
    (2.8e-6, "J", "2.8 µJ"),
    (0.1, "s", "100 ms"),
])
def test_si_prefixes(value, unit, text):
    assert human.si(value, unit) == text


def test_trailing_zeros_are_dropped_unless_asked_for():
    assert human.si(1e4) == "10 k" and human.si(5e-5, "s") == "50 µs"
    assert human.si(2.8e-6, "J", trim=False) == "2.80 µJ" and human.si(1e4, trim=False) == "10.0 k"


def test_counts_use_thousands_separators_then_prefixes():
    assert human.count(69213.4) == "69,213"
    assert human.count(5) == "5"
    assert human.count(0.125) == "0.125"
    assert human.count(123456789) == "123 M"
    assert human.count(2725000.0) == "2.73 M"


def test_percent_ratio_and_plain():
    assert human.percent(0.0938) == "9.38 %"
    assert human.ratio(2.04) == "2.0" and human.ratio(12000.4) == "12,000"
    assert human.plain(1e-4) == "0.0001" and human.plain(1.0) == "1"


def test_no_exponent_notation_anywhere_in_the_range():
    for exp in range(-16, 16):
        for mantissa in (1.0, 2.5, 9.999, 9.9996):
            for unit in ("J", "s", ""):
                assert not EXPONENT.search(human.si(mantissa * 10.0 ** exp, unit))
            assert not EXPONENT.search(human.count(mantissa * 10.0 ** exp))


@pytest.mark.parametrize("s, text", [(0.4, "0 s"), (89.4, "89 s"), (90, "2 min"), (725, "12 min"),
                                     (5399, "90 min"), (5400, "1.5 h"), (9000, "2.5 h")])
def test_durations_in_the_unit_a_person_plans_by(s, text):
    assert human.duration(s) == text
