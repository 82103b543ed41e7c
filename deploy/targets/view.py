"""What mapping a graph onto a hardware target reads of it: the graph view plus the simulator's
plan (composed connections from population to population), and inputs encoded as the chip gets them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir

from kdsnn.errors import KdsnnError

# ----------------------------------------------------------------------------- graph access

@dataclass
class View:
    """What mapping needs from a graph: order, neighbours, shapes, populations, metadata, and
    the simulator's plan (composed connections from population to population)."""

    nodes: dict[str, Any]
    order: list[str]
    preds: dict[str, list[str]]
    succs: dict[str, list[str]]
    shape: dict[str, tuple[int, ...]]
    input: str
    output: str
    populations: list[str]
    meta: dict[str, Any]
    integer: bool
    timesteps: int | None
    plan: Any
    simulable: bool = True  # False: the reference simulator does not run this graph's reset


def graph_view(graph: nir.NIRGraph) -> View:
    """The one place mapping reads a graph: :class:`kdsnn.export.graph_view.GraphView` for its
    structure, the simulator's plan (explicit per-synapse matrices) for its connections."""
    from kdsnn.export.graph_view import GraphView

    from ..simulator import Plan

    gv = GraphView(graph)
    simulable = True
    if gv.meta.get("reset", "hard") != "hard":  # connectivity does not depend on the reset; the simulator refuses it
        import copy

        from kdsnn.export.graph import set_meta
        graph = copy.copy(graph)
        set_meta(graph, {**gv.meta, "reset": "hard"})
        simulable = False
    try:  # explicit per-synapse matrices: placement needs every neuron's fan-in
        plan = Plan(graph, connectivity="sparse")
    except TypeError:  # a simulator whose Plan always stores explicit matrices
        plan = Plan(graph)
    if any(not hasattr(c, "wt") for c in plan.connections):
        raise KdsnnError("the simulator's plan has no per-synapse matrices; mapping needs them")
    return View(dict(gv.nodes), list(gv.order), {k: list(v) for k, v in gv.preds.items()},
                {k: list(v) for k, v in gv.succs.items()}, dict(gv.shape), gv.input, gv.output, list(gv.populations),
                dict(gv.meta), bool(gv.integer), gv.timesteps, plan, simulable)


def encode_input(view: View, x: Any, seed: int = 0) -> Any:
    """Bernoulli-encoded graphs: draw the input spikes ``[T, B, ...]`` here (seeded), so the events each
    core receives are known; other inputs are returned unchanged."""
    import torch

    x = torch.as_tensor(x)
    shape = view.shape[view.input]
    if view.meta.get("encoding") != "bernoulli" or x.dim() != len(shape) + 1 or not view.timesteps:
        return x
    gen = torch.Generator().manual_seed(seed)
    p = x.to(torch.float64).clamp(0, 1).unsqueeze(0).expand(int(view.timesteps), *x.shape).contiguous()
    return torch.bernoulli(p, generator=gen)
