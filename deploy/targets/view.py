"""How mapping reads a graph: through its one :class:`~kdsnn.export.graph_view.GraphView` (rules) and
the simulator's plan with an explicit matrix per connection (placement needs every neuron's fan-in),
and with inputs encoded as the chip receives them."""
from __future__ import annotations

from typing import Any

import nir
import torch

from kdsnn.export.encoding import encode
from kdsnn.export.graph_view import GraphView

from ..simulator import Plan


def mapping_plan(graph: nir.NIRGraph | GraphView) -> Plan:
    """The simulator's plan of ``graph`` with explicit per-synapse matrices; ``plan.view`` is the graph's view.
    Built from the graph as it is: the simulator runs both resets, so every graph it plans is simulated."""
    return Plan(GraphView.of(graph), connectivity="sparse")


def encode_input(view: GraphView, x: Any, seed: int = 0) -> Any:
    """Bernoulli-encoded graphs: draw the input spikes ``[T, B, ...]`` here (seeded), so the events each core
    receives are known; other inputs (and graphs without T) are returned unchanged."""
    x = torch.as_tensor(x)
    if view.encoding != "bernoulli" or x.dim() != len(view.input_shape) + 1 or not view.timesteps:
        return x
    return encode(view, x, generator=torch.Generator().manual_seed(seed))
