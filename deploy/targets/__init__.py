"""Hardware targets: will a graph fit Loihi 2, Speck or Xylo, on how many cores, at what cost.

Targets are data (``*.toml`` here, or the user's own file; every number with its source),
read by ``spec``. ``view`` reads a graph for mapping (its graph view and the simulator's
explicit plan) and encodes its inputs, ``rules`` checks each
target's limits node by node, ``placement`` puts populations on cores, ``core_load`` counts
per-core work from a simulation, and ``mapping`` puts these together into one verdict with
energy and latency (:func:`map_graph`). ``command`` is ``kdsnn map``.
"""
from __future__ import annotations

from .mapping import map_graph, target_compatibility
from .spec import Target, builtin_targets, load_target

__all__ = ["Target", "builtin_targets", "load_target", "map_graph", "target_compatibility"]
