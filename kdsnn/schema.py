"""A small schema for the structured data kdsnn reads back from files: each field's type and range.

Checkpoint fields (:mod:`kdsnn.checkpoint`) and kdsnn's metadata in NIR and ONNX files
(:mod:`kdsnn.export.metadata`) are each described once by a table of :class:`Field`, and
validated once, when the file is loaded: a field of the wrong type or out of range is a
one-line :class:`~kdsnn.errors.KdsnnError` naming the file and the field, instead of a
``TypeError`` wherever the value is first used. Unknown fields are kept (newer writers may add
some); absent optional fields are left absent.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import KdsnnError


@dataclass(frozen=True)
class Field:
    """One field: ``rule`` says in words what it must be (for messages), ``ok`` checks a value."""

    rule: str
    ok: Callable[[Any], bool]
    required: bool = False
    nullable: bool = False


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return (is_int(v) or isinstance(v, float)) and math.isfinite(v)


def integer(lo: int | None = None, hi: int | None = None, **kw: Any) -> Field:
    """An integer in ``[lo, hi]``."""
    bounds = " ≥ " + str(lo) if hi is None and lo is not None else f" in {lo}..{hi}" if lo is not None else ""
    return Field(f"an integer{bounds}", lambda v: is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi),
                 **kw)


def number(positive: bool = False, **kw: Any) -> Field:
    """A finite number (``positive``: > 0)."""
    return Field("a positive number" if positive else "a finite number",
                 lambda v: is_number(v) and (not positive or v > 0), **kw)


def boolean(**kw: Any) -> Field:
    return Field("true or false", lambda v: isinstance(v, bool), **kw)


def text(**kw: Any) -> Field:
    return Field("a string", lambda v: isinstance(v, str), **kw)


def one_of(*choices: str, **kw: Any) -> Field:
    return Field(f"one of {', '.join(repr(c) for c in choices)}", lambda v: v in choices, **kw)


def table(**kw: Any) -> Field:
    return Field("a table (JSON object / dict)", lambda v: isinstance(v, Mapping), **kw)


def int_list(length: int | None = None, **kw: Any) -> Field:
    """A list of positive integers (of ``length`` items when given)."""
    rule = f"a list of {length} positive integers" if length else "a list of positive integers"
    return Field(rule, lambda v: isinstance(v, (list, tuple)) and (length is None or len(v) == length)
                 and all(is_int(x) and x > 0 for x in v), **kw)


def number_list(**kw: Any) -> Field:
    return Field("a list of finite numbers",
                 lambda v: isinstance(v, (list, tuple)) and all(is_number(x) for x in v), **kw)


def _show(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def validate(data: Any, fields: Mapping[str, Field], where: str, fix: str) -> dict[str, Any]:
    """``data`` checked against ``fields``; ``where`` names the file (and part) in messages, ``fix``
    says what to do about a bad one."""
    if not isinstance(data, Mapping):
        raise KdsnnError(f"{where} is {type(data).__name__}, not a table of fields; {fix}")
    for name, f in fields.items():
        if name not in data:
            if f.required:
                raise KdsnnError(f"{where} has no field {name!r}; {fix}")
            continue
        v = data[name]
        if v is None and f.nullable:
            continue
        if not f.ok(v):
            raise KdsnnError(f"{where}: field {name!r} must be {f.rule}, got {_show(v)}; {fix}")
    return dict(data)
