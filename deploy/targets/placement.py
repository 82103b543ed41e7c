"""Placing a graph's populations onto a target's cores or layers (the algorithms are described
in :mod:`kdsnn.deploy.targets.mapping` and docs/targets.md), and the spike messages between cores."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..simulator import Plan
from . import rules, speck, xylo
from .spec import Target

# ----------------------------------------------------------------------------- placement

@dataclass
class Core:
    """One core (or chip layer): the population slices it holds and what they need."""

    index: int
    chip: int
    label: str
    segments: list[tuple[str, int, int]]  # (population, first neuron, one past the last)
    neurons: int = 0
    synapses: int = 0
    memory_bits: int = 0
    fan_in_axons: int = 0
    fan_out_axons: int = 0
    memory: dict[str, int] = field(default_factory=dict)  # layer targets: kernel/neuron/bias entries
    weights: int = 0  # weights the core stores: a convolution's kernels once per output channel it holds


@dataclass
class Placement:
    cores: list[Core]
    chips: int
    algorithm: str
    core_of: dict[str, np.ndarray]  # population → core index per neuron
    violations: list[rules.Violation]


def _incoming(plan: Plan, pop: str) -> list[Any]:
    return [c for c in plan.connections if c.target == pop]


def structure(conn: Any) -> sp.csr_matrix:
    """Structural synapses of a connection as a 0/1 ``[n_src, n_tgt]`` matrix."""
    wt = conn.wt
    return sp.csr_matrix((np.ones(wt.nnz), wt.indices, wt.indptr), shape=wt.shape)


def placed_populations(plan: Plan) -> list[str]:
    """IF populations, and the Output when a readout layer integrates into it (membrane readout)."""
    out = list(plan.view.populations)
    if any(c.target == plan.output for c in plan.connections):
        out.append(plan.output)
    return out


def _fan_in(plan: Plan, pop: str) -> sp.csr_matrix:
    """``[n_neurons, Σ sources]``: each neuron's input synapses, sources numbered across connections."""
    mats = [structure(c).T.tocsr() for c in _incoming(plan, pop)]
    n = int(np.prod(plan.shape[pop]))
    return sp.hstack(mats, format="csr") if mats else sp.csr_matrix((n, 0))


def _shared(plan: Plan, pop: str) -> tuple[set[str], int, int]:
    """The convolutions feeding ``pop`` (their weights shared: Lava's ``Conv`` process), the weights one output
    channel of them stores (``c_in · (k·kh) · (k·kw)``, a k×k sum pool before a conv composed in, as Lava's
    process-graph route does), and the neurons per channel."""
    import nir

    convs, per_channel = set(), 0
    for c in plan.connections:
        node = plan.view.nodes.get(c.name)
        if c.target != pop or not isinstance(node, nir.Conv2d):
            continue
        k, cur = 1, plan.view.preds[c.name][0]
        while cur not in plan.view.populations and cur != plan.view.input:
            if isinstance(plan.view.nodes[cur], (nir.SumPool2d, nir.AvgPool2d)):
                k *= int(np.atleast_1d(plan.view.nodes[cur].kernel_size)[0])
            cur = plan.view.preds[cur][0]
        w = np.asarray(node.weight)
        convs.add(c.name)
        per_channel += int(w.shape[1]) * int(w.shape[2]) * k * int(w.shape[3]) * k
    shape = plan.shape[pop]
    return convs, per_channel, int(np.prod(shape[1:])) if len(shape) == 3 else 1


def place(plan: Plan, target: Target) -> Placement:
    """Place every population on the target's cores (module docstring: the algorithms)."""
    if target.kind == "cores":
        return _place_cores(plan, target)
    if target.kind == "layers":
        return _place_layers(plan, target)
    return _place_dense(plan, target)


def _dest_cores(plan: Plan, pop: str, core_of: dict[str, np.ndarray]) -> np.ndarray:
    """Per neuron of ``pop``: distinct cores its outgoing synapses reach (its fan-out axons)."""
    n = int(np.prod(plan.shape[pop]))
    out = np.zeros(n)
    for c in plan.connections:
        if c.source == pop and c.target in core_of:
            owner = core_of[c.target]
            onehot = sp.csr_matrix((np.ones(len(owner)), (np.arange(len(owner)), owner)),
                                   shape=(len(owner), int(owner.max()) + 1))
            reach = structure(c) @ onehot
            reach.data[:] = 1
            out += np.asarray(reach.sum(axis=1)).ravel()
    return out


def _place_cores(plan: Plan, target: Target) -> Placement:
    lim = target.get
    nmax = lim("limits", "neurons_per_core")
    mem, bits = lim("limits", "synaptic_memory_bits_per_core"), lim("limits", "synapse_bits", 1)
    axmax, smax = lim("limits", "fan_in_axons_per_core"), lim("limits", "synapses_per_core")
    fomax = lim("limits", "fan_out_axons_per_core")
    per_chip = lim("limits", "cores_per_chip")
    slices: dict[str, list[Core]] = {}
    core_of: dict[str, np.ndarray] = {}
    violations: list[rules.Violation] = []
    # Downstream first: a population's fan-out axons depend on how its targets were split.
    for pop in reversed(placed_populations(plan)):
        g = _fan_in(plan, pop)
        convs, per_channel, plane = _shared(plan, pop)
        dense = [structure(c).T.tocsr() for c in _incoming(plan, pop) if c.name not in convs]
        dense_syn = (np.asarray(sp.hstack(dense, format="csr").getnnz(axis=1)) if dense
                     else np.zeros(g.shape[0], dtype=np.int64))
        fan_out = _dest_cores(plan, pop, core_of)
        n = g.shape[0]
        owner = np.zeros(n, dtype=np.int64)
        stamp = np.full(g.shape[1], -1, dtype=np.int64)
        mine: list[Core] = []
        cur: Core | None = None
        worst_in = worst_out = 0
        channel = -1  # the last output channel whose shared kernels the current core stores
        for j in range(n):
            src = g.indices[g.indptr[j]:g.indptr[j + 1]]
            syn, fo = len(src), int(fan_out[j])
            own = int(dense_syn[j]) + per_channel  # what the neuron stores on a fresh core
            inc = int(dense_syn[j]) + (per_channel if j // plane != channel else 0)
            new = int(np.count_nonzero(stamp[src] != len(mine) - 1)) if cur else syn
            full = cur is None or (nmax is not None and cur.neurons + 1 > nmax) \
                or (mem is not None and (cur.weights + inc) * bits > mem) \
                or (smax is not None and cur.weights + inc > smax) \
                or (axmax is not None and cur.fan_in_axons + new > axmax) \
                or (fomax is not None and cur.fan_out_axons + fo > fomax)
            if full:
                cur = Core(0, 0, "", [(pop, j, j)])
                mine.append(cur)
                new, inc = syn, own
                if ((mem is not None and own * bits > mem) or (smax is not None and own > smax)
                        or (axmax is not None and syn > axmax)):
                    worst_in = max(worst_in, own)
                if fomax is not None and fo > fomax:
                    worst_out = max(worst_out, fo)
            stamp[src] = len(mine) - 1
            p, lo, _ = cur.segments[-1]
            cur.segments[-1] = (p, lo, j + 1)
            cur.neurons += 1
            cur.synapses += syn
            cur.weights += inc
            channel = j // plane
            cur.fan_in_axons += new
            cur.fan_out_axons += fo
            owner[j] = len(mine) - 1
        if worst_in:
            limit = " and ".join(s for s in (f"{mem} bits of synaptic memory ({mem // bits} synapses of {bits} bits)"
                                              if mem else "", f"{smax} stored weights" if smax else "",
                                              f"{axmax} input axons" if axmax else "") if s)
            violations.append(rules.Violation(pop, "fan_in",
                                              f"one neuron needs {worst_in} stored weights or input synapses; a "
                                              f"{target.name} core holds {limit}: reduce the fan-in (fewer channels "
                                              "or smaller kernels)"))
        if worst_out:
            violations.append(rules.Violation(pop, "fan_out",
                                              f"one neuron reaches {worst_out} cores; a {target.name} core "
                                              f"sends to at most {fomax}: reduce the fan-out"))
        slices[pop] = mine
        core_of[pop] = owner  # local slice numbers until the cores are numbered below
    cores: list[Core] = []
    for pop in placed_populations(plan):  # number the cores in topological order
        base = len(cores)
        for c in slices[pop]:
            c.index, c.label = len(cores), f"core {len(cores)}"
            c.memory_bits = c.weights * bits
            c.chip = c.index // per_chip if per_chip else 0
            c.fan_out_axons = 0  # recounted by map_graph from the final numbering
            cores.append(c)
        core_of[pop] = core_of[pop] + base
    chips = (cores[-1].chip + 1) if cores else 0
    algo = ("greedy, downstream populations first: a population's neurons fill a core in flat (channel-major) order "
            "until the next would exceed the neurons, stored weights (a convolution's kernels once per output channel "
            "held, as Lava's Conv process shares them; other synapses one each), input axons or output axons of a "
            "core; one population per core")
    return Placement(cores, chips, algo, core_of, violations)


def _place_layers(plan: Plan, target: Target) -> Placement:
    specs, _ = rules.layer_rules(plan.view, target)
    lim = target.get
    kmem, nmem = lim("limits", "kernel_memory"), lim("limits", "neuron_memory")
    bmem = lim("limits", "bias_memory") or [2 ** 62] * len(kmem)
    net = speck.lower(plan.view, discretized=False)
    lowered = [lay for lay in net.layers if lay.population in specs]
    layer_of = speck.core_mapping(lowered, kmem, nmem, bmem)
    violations = []
    for lay in lowered:
        if lay.population not in layer_of:
            m = lay.memory
            violations.append(rules.Violation(lay.population, "layer_memory",
                                              f"needs {m['kernel_memory']} kernel and {m['neuron_memory']} "
                                              f"neuron memory entries; no free {target.name} layer holds that "
                                              f"(kernel ≤ {max(kmem)}, neuron ≤ {max(nmem)}): "
                                              "reduce channels or map size"))
    cores, core_of = [], {}
    for lay in lowered:
        p = lay.population
        n = int(np.prod(plan.shape[p]))
        s = lay.memory
        k = layer_of.get(p)
        syn = int(_fan_in(plan, p).nnz)
        c = Core(len(cores), 0, f"layer {k}" if k is not None else "unplaced", [(p, 0, n)], n, syn,
                 memory={"kernel": s["kernel_memory"], "neuron": s["neuron_memory"], "bias": s["bias_memory"],
                         **({"kernel_limit": kmem[k], "neuron_limit": nmem[k]} if k is not None else {})})
        cores.append(c)
        core_of[p] = np.full(n, c.index, dtype=np.int64)
    algo = ("one chip layer per population; layers matched to chip layers whose kernel, neuron and bias memory hold "
            "them by Sinabs' max-flow (Edmonds–Karp, layers in order, chip layers by index: the same assignment)")
    return Placement(cores, 1 if cores else 0, algo, core_of, violations)


def _place_dense(plan: Plan, target: Target) -> Placement:
    """Xylo-like targets: the Xylo lowering (:mod:`kdsnn.deploy.targets.xylo`), its counts checked."""
    net = xylo.lower(plan.view, plan)
    counts = net.counts
    hidden, out_pops = [p for p, _, _ in net.hidden], [net.output]
    cores = [Core(0, 0, "hidden", [(p, 0, hi - lo) for p, lo, hi in net.hidden], counts["hidden_neurons"],
                  counts["synapses_in"] + counts["synapses_rec"]),
             Core(1, 0, "output", [(net.output, 0, counts["output_neurons"])], counts["output_neurons"],
                  counts["synapses_out"])]
    core_of = {p: np.full(hi - lo, 0, dtype=np.int64) for p, lo, hi in net.hidden}
    core_of[net.output] = np.full(counts["output_neurons"], 1, dtype=np.int64)
    violations = [rules.Violation(n, r, m) for n, r, m in net.problems]
    violations += rules.dense_rules(plan.view, target, hidden, out_pops)
    hs = target.get("limits", "hidden_synapses")
    if hs and cores[0].synapses > hs:
        violations.append(rules.Violation(hidden[0], "hidden_synapses", f"{cores[0].synapses} hidden synapses; "
                                          f"{target.name} holds {hs}"))
    fo = target.get("limits", "max_fan_out")
    if fo and counts["max_fan_out"] > fo:
        fan = net.fan_out()
        worst = next(p for p, lo, hi in net.hidden if fan[lo:hi].max() == counts["max_fan_out"])
        violations.append(rules.Violation(worst, "fan_out", f"a hidden neuron reaches {counts['max_fan_out']} neurons "
                                          f"(nonzero weights); a {target.name} hidden neuron reaches at most {fo}: "
                                          "reduce the width or prune the weights"))
    algo = ("the Xylo lowering (Rockpool's mapper): every hidden population in the hidden core (W_in, W_rec), the "
            "last population as output neurons (W_out); a synapse is a nonzero weight")
    return Placement(cores, 1, algo, core_of, violations)


def fan_out_axons(plan: Plan, placement: Placement) -> dict[int, np.ndarray]:
    """Per connection: distinct destination cores of each source neuron (the messages one spike sends)."""
    out = {}
    for ci, c in enumerate(plan.connections):
        if c.target not in placement.core_of:
            continue
        owner = placement.core_of[c.target]
        onehot = sp.csr_matrix((np.ones(len(owner)), (np.arange(len(owner)), owner)),
                               shape=(len(owner), int(owner.max()) + 1 if len(owner) else 1))
        reach = (structure(c) @ onehot)
        reach.data[:] = 1
        out[ci] = np.asarray(reach.sum(axis=1)).ravel()
    return out


# ----------------------------------------------------------------------------- the whole answer
