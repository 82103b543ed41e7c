"""Nested NIR graphs flattened into one: a subgraph node's nodes under prefixed names.

NIR lets a graph hold another ``NIRGraph`` as a node (NIR's own tests; snnTorch's and Rockpool's
recurrent layers as they read and write them). kdsnn runs the flat graph: a subgraph ``g`` with
nodes ``a``, ``b`` becomes nodes ``g.a``, ``g.b``; an edge into ``g`` (or ``g.<its Input>``) goes
to what the subgraph's Input feeds, an edge out of ``g`` (or ``g.<its Output>``) leaves from what
feeds the subgraph's Output (the Input and Output of a subgraph pass values through unchanged, so
they are spliced out, and every path through them is kept). Names that already hold a dot (snnTorch
writes ``1.lif`` into a flat graph) stay as they are.
"""
from __future__ import annotations

import nir

from kdsnn.errors import KdsnnError


def has_subgraphs(graph: nir.NIRGraph) -> bool:
    """Whether any node of ``graph`` is itself a graph."""
    return any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values())


def _ends(sub: nir.NIRGraph, name: str, kind: type) -> list[str]:
    found = [k for k, n in sub.nodes.items() if isinstance(n, kind)]
    if len(found) != 1:
        raise KdsnnError(f"NIR subgraph {name!r} has {len(found)} {kind.__name__} nodes; kdsnn flattens subgraphs "
                         f"with exactly one Input and one Output")
    return found


def flatten(graph: nir.NIRGraph) -> nir.NIRGraph:
    """``graph`` without subgraph nodes (a new graph, metadata kept), or ``graph`` itself when it has none."""
    if not has_subgraphs(graph):
        return graph
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, str] = {}  # outer name of a subgraph (and "<sub>.<its Input>") → its spliced Input
    exit_: dict[str, str] = {}  # outer name of a subgraph (and "<sub>.<its Output>") → its spliced Output
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        sub = flatten(node)
        (i,), (o,) = _ends(sub, name, nir.Input), _ends(sub, name, nir.Output)
        for k, n in sub.nodes.items():
            if f"{name}.{k}" in graph.nodes:
                raise KdsnnError(f"NIR graph holds both a node {name}.{k!s} and a subgraph {name!r} with a node {k!r}; "
                                 "flattened, their names would clash")
            nodes[f"{name}.{k}"] = n  # Input and Output too, spliced out below
        edges += [(f"{name}.{s}", f"{name}.{d}") for s, d in sub.edges]
        entry[name] = entry[f"{name}.{i}"] = f"{name}.{i}"
        exit_[name] = exit_[f"{name}.{o}"] = f"{name}.{o}"
    for s, d in graph.edges:
        src, dst = exit_.get(s, s), entry.get(d, d)
        if src not in nodes or dst not in nodes:
            raise KdsnnError(f"NIR graph has an edge {s} → {d} to a node that does not exist")
        edges.append((src, dst))
    for passing in [*entry.values(), *exit_.values()]:
        if passing not in nodes:
            continue
        ins = [s for s, d in edges if d == passing]
        outs = [d for s, d in edges if s == passing]
        edges = [e for e in edges if passing not in e] + [(s, d) for s in ins for d in outs]
        del nodes[passing]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata or {}), type_check=False)
