"""A stand-in for ``samna`` (SynSense's chip driver) in the vendor environment's tests.

The ``samna`` on the package index is a stub that, on import, pip-installs the real package from
SynSense's own server (unreachable here). Sinabs and Rockpool import samna at module level even
where the code path never uses it (mapping, memory, layer configuration dicts, the Xylo mapper
and quantizer). This module lets those imports succeed: every ``samna.X.Y`` name resolves to a
placeholder, and *calling* one raises :class:`SamnaStandInCall` naming the call, so a test sees
exactly which vendor call needs the real samna (building a chip configuration object, validating
it, opening a device). It is put on ``sys.path`` only for the probes that need it.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

STANDIN = True


class SamnaStandInCall(RuntimeError):
    """A vendor call reached samna itself: it needs the real package (and usually the chip)."""


class _Placeholder:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> _Placeholder:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Placeholder(f"{self._name}.{attr}")

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise SamnaStandInCall(f"{self._name}() needs the real samna")

    def __mro_entries__(self, bases: tuple) -> tuple:  # ``class X(samna.Something)`` still defines X
        return (object,)


class _Module(types.ModuleType):
    def __getattr__(self, attr: str) -> _Placeholder:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Placeholder(f"{self.__name__}.{attr}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Any ``samna.a.b`` import gets a placeholder module."""

    def find_spec(self, name, path, target=None):
        if name.startswith("samna."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        return None


sys.meta_path.insert(0, _Finder())
__path__: list[str] = []


def __getattr__(attr: str) -> _Placeholder:
    if attr.startswith("__"):
        raise AttributeError(attr)
    return _Placeholder(f"samna.{attr}")
