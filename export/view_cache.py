"""Where :meth:`GraphView.of <kdsnn.export.graph_view.GraphView.of>` keeps the views of a graph object.

A NIR graph is a plain mutable dataclass, so a cached view must not outlive what it describes. Each
graph object carries its views (keyed by the ``timesteps`` they were asked with) together with the
:func:`fingerprint` of the graph they were built from; a view whose fingerprint no longer matches is
built again. The cache is an attribute outside the dataclass fields: NIR files, ``to_dict`` and
equality never see it, it lives and dies with the graph, and a copy of the graph starts empty.
"""
from __future__ import annotations

import zlib
from typing import Any

import nir
import numpy as np

ATTRIBUTE = "_kdsnn_views"


def _array_print(a: np.ndarray, content: bool) -> tuple:
    """An array's identity and shape, and its bytes' crc32 when ``content``."""
    if not content or a.dtype.hasobject:
        return (id(a), a.shape, a.dtype.str)
    return (id(a), a.shape, a.dtype.str, zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B")))


def _value_print(v: Any, content: bool) -> Any:
    if isinstance(v, np.ndarray):
        return _array_print(v, content)
    if isinstance(v, dict):
        return tuple((k, _value_print(x, content)) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return tuple(_value_print(x, content) for x in v)
    if isinstance(v, (str, bytes, int, float, bool, type(None))):
        return v
    return id(v)


def fingerprint(graph: nir.NIRGraph, by_identity: tuple[type, ...] = ()) -> tuple:
    """A cheap summary of everything a view reads of ``graph``: which node objects it holds and their
    fields, its edges and its metadata. Arrays of the node types ``by_identity`` (synaptic weights: a view
    reads only their shapes, consumers read the values from the nodes) count by identity and shape; every
    other array (neuron parameters, declared types) by its bytes too, so an in-place edit of a threshold
    or a time constant is seen."""
    nodes = tuple((name, id(node), tuple((k, _value_print(v, not isinstance(node, by_identity)))
                                         for k, v in vars(node).items()))
                  for name, node in graph.nodes.items())
    return nodes, tuple(tuple(e) for e in graph.edges), _value_print(dict(graph.metadata or {}), True)


class _Views(dict):
    """``timesteps → (fingerprint, view)`` for the one graph object ``owner`` (its ``id``)."""

    def __init__(self, owner: int) -> None:
        super().__init__()
        self.owner = owner

    def __deepcopy__(self, memo: dict) -> _Views:
        return _Views(-1)  # a deep copy of the graph starts empty


def cache_of(graph: nir.NIRGraph) -> dict[int | None, tuple[tuple, Any]]:
    """The views kept on ``graph``, created empty on first use. A shallow copy of a graph carries its
    original's holder along (``copy.copy`` shares ``__dict__`` values), so a holder counts only on the
    object it was made for (the original is alive while it is copied, so the two ids differ)."""
    views = graph.__dict__.get(ATTRIBUTE)
    if not isinstance(views, _Views) or views.owner != id(graph):
        views = graph.__dict__[ATTRIBUTE] = _Views(id(graph))
    return views
