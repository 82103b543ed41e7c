"""Numbers as a person reads them: SI prefixes, thousands separators, percentages; never exponent notation.

Everything a person reads (the report's tables and plots, the terminal output of ``map``, ``report``,
``verify`` and training) goes through these; JSON keeps the raw values.
"""
from __future__ import annotations

import math

PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"),
            (1e-12, "p"), (1e-15, "f"))


def _significant(m: float, digits: int) -> str:
    """``m`` (0 < |m| < 1000) to ``digits`` significant figures in plain decimal notation."""
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(m))))
    text = f"{m:.{decimals}f}"
    if decimals and abs(float(text)) >= 10 ** (digits - decimals):  # 9.996 rounds up to 10.00: one decimal less
        text = f"{m:.{decimals - 1}f}"
    return text


def si(value: float | None, unit: str = "", digits: int = 3, trim: bool = True) -> str:
    """A value with the SI prefix that leaves 1 to 999 in front of the unit, never exponent notation.

    ``si(6.66e-5, "J") == "66.6 µJ"``, ``si(2725000, "SynOps") == "2.73 M SynOps"`` (a unit that is a word keeps a
    space after the prefix), ``si(0, "J") == "0 J"``, ``si(1234) == "1.23 k"``; None reads "not available"."""
    if value is None or math.isnan(value):
        return "not available"
    word = len(unit) > 2  # "SynOps", "MACs": "2.73 M SynOps"; "J", "s": "66.6 µJ"
    if value == 0:
        return f"0 {unit}".rstrip()
    i = next((k for k, (scale, _) in enumerate(PREFIXES) if abs(value) >= scale), len(PREFIXES) - 1)
    text = _significant(value / PREFIXES[i][0], digits)
    if abs(float(text)) >= 1000 and i > 0:  # 999.96 rounds up to 1000: the next prefix
        i -= 1
        text = _significant(value / PREFIXES[i][0], digits)
    prefix = PREFIXES[i][1]
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {prefix}{' ' if word and prefix else ''}{unit}".rstrip()


def count(value: float | None) -> str:
    """Counts: thousands separators below a million (``69,213``), SI above (``2.73 M``); small fractions
    with three significant figures (``0.125``)."""
    if value is None:
        return "not available"
    if abs(value) >= 1e6:
        return si(value)
    if abs(value) >= 100 or float(value).is_integer():
        return f"{round(value):,}"
    if value == 0:
        return "0"
    return _significant(value, 3)


def plain(value: float, digits: int | None = None) -> str:
    """A value in positional notation (``0.0001``, not ``1e-04``): parameters such as dt and tolerances;
    ``digits``: that many significant figures (``plain(3.21e-7, 3) == "0.000000321"``)."""
    import numpy as np

    if digits is None:
        return np.format_float_positional(float(value), trim="-")
    return np.format_float_positional(float(value), precision=digits, unique=False, fractional=False, trim="-")


def percent(fraction: float | None, decimals: int = 2) -> str:
    """An accuracy or rate (0..1) as ``93.80 %``."""
    return "not available" if fraction is None else f"{fraction * 100:.{decimals}f} %"


def joules(j: float | None) -> str:
    """Energy in the unit a person reads: pJ, nJ, µJ, mJ or J (three significant figures)."""
    return si(j, "J")


def seconds(s: float | None) -> str:
    """Time in ns, µs, ms or s (three significant figures)."""
    return si(s, "s")


def duration(s: float) -> str:
    """A wait in the unit a person plans by: 40 s, 12 min, 2.5 h (estimates: whole seconds and minutes)."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def ratio(r: float) -> str:
    """2.0, 25, 130, 12,000: one decimal below 10, none above."""
    return f"{r:.1f}" if r < 10 else f"{r:,.0f}"


__all__ = ["count", "duration", "joules", "percent", "plain", "ratio", "seconds", "si"]
