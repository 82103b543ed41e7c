"""Where a recurrent NIR graph's cycles are cut: the edges that carry the previous step.

NIR states a network as differential equations, so a cycle in its graph is well defined only
when something with state (a neuron population) lies on it; in discrete time every library that
runs recurrent networks (snnTorch ``RLeaky``/``RSynaptic``, Rockpool ``LIFTorch(has_rec=True)``,
Norse's recurrent cells, Lava's process graphs) feeds a population's spikes back at the *next*
step. kdsnn's convention (docs/nir_reading.md): an edge out of a neuron population that closes a
cycle carries that population's output of the previous step (zero at the first step); every other
edge carries the current step's. A cycle of stateless nodes only (synapses, pools, Flatten) has no
such reading and is refused, naming its nodes.

Which edge closes a cycle is decided by a depth-first walk from the Input along the edges as the
file lists them: on a cycle found, the edge out of the population entered *last* on the walk
(the one farthest from the Input) is cut, so a feed-forward chain population → synapse →
population stays within one step and only the feedback waits.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from kdsnn.errors import KdsnnError

Edge = tuple[str, str]


def _find_cycle(roots: Iterable[str], succs: dict[str, list[str]], cut: set[Edge]) -> list[str] | None:
    """One cycle (its nodes in walk order, the first one entered from the Input side) of the graph without
    the ``cut`` edges, or None when there is none."""
    state: dict[str, int] = {}  # 1 on the walk's stack, 2 done
    for root in roots:
        if root in state:
            continue
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(succs[root]))]
        path = [root]
        state[root] = 1
        while stack:
            n, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[n] = 2
            elif (n, nxt) in cut:
                continue
            elif state.get(nxt) == 1:
                return path[path.index(nxt):]
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succs[nxt])))
                path.append(nxt)
    return None


def recurrent_edges(nodes: Iterable[str], first: str | None, succs: dict[str, list[str]],
                    is_population: Callable[[str], bool]) -> frozenset[Edge]:
    """The edges that carry the previous step's output, so that the rest of the graph has no cycle.

    ``first`` is where the walk starts (the Input); a cycle without a population on it is refused."""
    names = list(nodes)
    roots = ([first] if first is not None else []) + names
    cut: set[Edge] = set()
    while True:
        cycle = _find_cycle(roots, succs, cut)
        if cycle is None:
            return frozenset(cut)
        pops = [i for i, n in enumerate(cycle) if is_population(n)]
        if not pops:
            ring = " → ".join([*cycle, cycle[0]])
            raise KdsnnError(f"NIR graph has a cycle of stateless nodes {ring}: a cycle must pass through a "
                             "neuron population (whose output the feedback edge carries to the next step)")
        i = pops[-1]
        cut.add((cycle[i], cycle[(i + 1) % len(cycle)]))
