"""Will it fit, on how many cores, at what energy and latency: a graph mapped onto a target.

``map_graph(graph, target, x)`` checks every rule of the target (``target_rules``), places
every population on cores, counts each core's neurons, synapses and memory, and, from a
simulation on real inputs, each core's SynOps, spikes and spike messages; then prices them
with the target's per-operation figures (``deploy/targets/*.toml``).

Placement (``place``), per target kind:

- ``cores`` (Loihi): greedy, populations in topological order, neurons in their flat order
  (channel-major); a new core opens when the next neuron would exceed the neurons, synaptic
  memory (its fan-in synapses × ``synapse_bits``) or input axons (distinct source neurons)
  of a core. A core holds one population (as Lava's compiler does); a population larger than
  a core is split into contiguous slices. Cores fill chips in order.
- ``layers`` (Speck): one chip layer per population; populations are matched to layers
  whose kernel and neuron memory hold them (augmenting paths, as Sinabs does with max-flow).
- ``dense`` (Xylo): every hidden population in the one hidden core, the readout in the
  output core.

Latency per time step: each core's work (SynOps it receives, neuron updates, spike messages
it sends) × the target's time per operation; the step ends when the busiest core is done,
plus one barrier (targets that compute sequentially, ``time.sequential``, sum their cores).
Routing congestion and memory traffic beyond the per-operation figures are not modelled.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp

from kdsnn.errors import KdsnnError

from . import target_rules as rules
from .target_spec import Target, load_target


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

    from .simulator import Plan

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


@dataclass
class Placement:
    cores: list[Core]
    chips: int
    algorithm: str
    core_of: dict[str, np.ndarray]  # population → core index per neuron
    violations: list[rules.Violation]


def _incoming(view: View, pop: str) -> list[Any]:
    return [c for c in view.plan.connections if c.target == pop]


def _structure(conn: Any) -> sp.csr_matrix:
    """Structural synapses of a connection as a 0/1 ``[n_src, n_tgt]`` matrix."""
    wt = conn.wt
    return sp.csr_matrix((np.ones(wt.nnz), wt.indices, wt.indptr), shape=wt.shape)


def placed_populations(view: View) -> list[str]:
    """IF populations, and the Output when a readout layer integrates into it (membrane readout)."""
    out = list(view.populations)
    if any(c.target == view.output for c in view.plan.connections):
        out.append(view.output)
    return out


def _fan_in(view: View, pop: str) -> sp.csr_matrix:
    """``[n_neurons, Σ sources]``: each neuron's input synapses, sources numbered across connections."""
    mats = [_structure(c).T.tocsr() for c in _incoming(view, pop)]
    n = int(np.prod(view.shape[pop]))
    return sp.hstack(mats, format="csr") if mats else sp.csr_matrix((n, 0))


def place(view: View, target: Target) -> Placement:
    """Place every population on the target's cores (module docstring: the algorithms)."""
    if target.kind == "cores":
        return _place_cores(view, target)
    if target.kind == "layers":
        return _place_layers(view, target)
    return _place_dense(view, target)


def _dest_cores(view: View, pop: str, core_of: dict[str, np.ndarray]) -> np.ndarray:
    """Per neuron of ``pop``: distinct cores its outgoing synapses reach (its fan-out axons)."""
    n = int(np.prod(view.shape[pop]))
    out = np.zeros(n)
    for c in view.plan.connections:
        if c.source == pop and c.target in core_of:
            owner = core_of[c.target]
            onehot = sp.csr_matrix((np.ones(len(owner)), (np.arange(len(owner)), owner)), shape=(len(owner), int(owner.max()) + 1))
            reach = _structure(c) @ onehot
            reach.data[:] = 1
            out += np.asarray(reach.sum(axis=1)).ravel()
    return out


def _place_cores(view: View, target: Target) -> Placement:
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
    for pop in reversed(placed_populations(view)):
        g = _fan_in(view, pop)
        fan_out = _dest_cores(view, pop, core_of)
        n = g.shape[0]
        owner = np.zeros(n, dtype=np.int64)
        stamp = np.full(g.shape[1], -1, dtype=np.int64)
        mine: list[Core] = []
        cur: Core | None = None
        worst_in = worst_out = 0
        for j in range(n):
            src = g.indices[g.indptr[j]:g.indptr[j + 1]]
            syn, fo = len(src), int(fan_out[j])
            new = int(np.count_nonzero(stamp[src] != len(mine) - 1)) if cur else syn
            full = cur is None or (nmax is not None and cur.neurons + 1 > nmax) \
                or (mem is not None and (cur.synapses + syn) * bits > mem) \
                or (smax is not None and cur.synapses + syn > smax) \
                or (axmax is not None and cur.fan_in_axons + new > axmax) \
                or (fomax is not None and cur.fan_out_axons + fo > fomax)
            if full:
                cur = Core(0, 0, "", [(pop, j, j)])
                mine.append(cur)
                new = syn
                if (mem is not None and syn * bits > mem) or (smax is not None and syn > smax) or (axmax is not None and syn > axmax):
                    worst_in = max(worst_in, syn)
                if fomax is not None and fo > fomax:
                    worst_out = max(worst_out, fo)
            stamp[src] = len(mine) - 1
            p, lo, _ = cur.segments[-1]
            cur.segments[-1] = (p, lo, j + 1)
            cur.neurons += 1
            cur.synapses += syn
            cur.fan_in_axons += new
            cur.fan_out_axons += fo
            owner[j] = len(mine) - 1
        if worst_in:
            limit = " and ".join(s for s in (f"{mem} bits of synaptic memory ({mem // bits} synapses of {bits} bits)" if mem else "",
                                              f"{axmax} input axons" if axmax else "") if s)
            violations.append(rules.Violation(pop, "fan_in", f"one neuron has {worst_in} input synapses; a {target.name} core "
                                              f"holds {limit}: reduce the fan-in (fewer channels or smaller kernels)"))
        if worst_out:
            violations.append(rules.Violation(pop, "fan_out", f"one neuron reaches {worst_out} cores; a {target.name} core "
                                              f"sends to at most {fomax}: reduce the fan-out"))
        slices[pop] = mine
        core_of[pop] = owner  # local slice numbers until the cores are numbered below
    cores: list[Core] = []
    for pop in placed_populations(view):  # number the cores in topological order
        base = len(cores)
        for c in slices[pop]:
            c.index, c.label = len(cores), f"core {len(cores)}"
            c.memory_bits = c.synapses * bits
            c.chip = c.index // per_chip if per_chip else 0
            c.fan_out_axons = 0  # recounted by map_graph from the final numbering
            cores.append(c)
        core_of[pop] = core_of[pop] + base
    chips = (cores[-1].chip + 1) if cores else 0
    algo = ("greedy, downstream populations first: a population's neurons fill a core in flat (channel-major) order "
            "until the next would exceed the neurons, synaptic memory, input axons or output axons of a core; one "
            "population per core")
    return Placement(cores, chips, algo, core_of, violations)


def _place_layers(view: View, target: Target) -> Placement:
    specs, _ = rules.layer_rules(view, target)
    lim = target.get
    kmem, nmem = lim("limits", "kernel_memory"), lim("limits", "neuron_memory")
    bmem = lim("limits", "bias_memory") or [math.inf] * len(kmem)
    pops = [p for p in view.populations if p in specs]
    fits = {p: [k for k in range(len(kmem)) if specs[p]["kernel_memory"] <= kmem[k] and specs[p]["neuron_memory"] <= nmem[k]
                and specs[p]["bias_memory"] <= bmem[k]] for p in pops}
    match: dict[int, str] = {}

    def augment(p: str, seen: set[int]) -> bool:  # Kuhn's augmenting paths
        for k in fits[p]:
            if k not in seen:
                seen.add(k)
                if k not in match or augment(match[k], seen):
                    match[k] = p
                    return True
        return False

    violations = []
    for p in pops:
        if not augment(p, set()):
            s = specs[p]
            violations.append(rules.Violation(p, "layer_memory", f"needs {s['kernel_memory']} kernel and {s['neuron_memory']} "
                                              f"neuron memory entries; no free {target.name} layer holds that "
                                              f"(kernel ≤ {max(kmem)}, neuron ≤ {max(nmem)}): reduce channels or map size"))
    layer_of = {p: k for k, p in match.items()}
    cores, core_of = [], {}
    for p in pops:
        n = int(np.prod(view.shape[p]))
        s = specs[p]
        k = layer_of.get(p)
        syn = int(_fan_in(view, p).nnz)
        c = Core(len(cores), 0, f"layer {k}" if k is not None else "unplaced", [(p, 0, n)], n, syn,
                 memory={"kernel": s["kernel_memory"], "neuron": s["neuron_memory"], "bias": s["bias_memory"],
                         **({"kernel_limit": kmem[k], "neuron_limit": nmem[k]} if k is not None else {})})
        cores.append(c)
        core_of[p] = np.full(n, c.index, dtype=np.int64)
    algo = ("one chip layer per population; populations matched to layers whose kernel and neuron memory hold "
            "them (augmenting paths, as Sinabs' max-flow mapping)")
    return Placement(cores, 1 if cores else 0, algo, core_of, violations)


def _place_dense(view: View, target: Target) -> Placement:
    pops = placed_populations(view)
    out_pops = pops[-1:]
    hidden = pops[:-1]
    cores, core_of = [], {}
    for label, group in (("hidden", hidden), ("output", out_pops)):
        c = Core(len(cores), 0, label, [])
        for p in group:
            n = int(np.prod(view.shape[p]))
            c.segments.append((p, 0, n))
            c.neurons += n
            c.synapses += int(_fan_in(view, p).nnz)
            core_of[p] = np.full(n, c.index, dtype=np.int64)
        cores.append(c)
    violations = rules.dense_rules(view, target, hidden, out_pops)
    hs = target.get("limits", "hidden_synapses")
    if hs and cores[0].synapses > hs:
        violations.append(rules.Violation(hidden[0], "hidden_synapses", f"{cores[0].synapses} hidden synapses; "
                                          f"{target.name} holds {hs}"))
    algo = "every hidden population in the hidden core, the last population as output neurons"
    return Placement(cores, 1, algo, core_of, violations)


def _fan_out_axons(view: View, placement: Placement) -> dict[int, np.ndarray]:
    """Per connection: distinct destination cores of each source neuron (the messages one spike sends)."""
    out = {}
    for ci, c in enumerate(view.plan.connections):
        if c.target not in placement.core_of:
            continue
        owner = placement.core_of[c.target]
        onehot = sp.csr_matrix((np.ones(len(owner)), (np.arange(len(owner)), owner)),
                               shape=(len(owner), int(owner.max()) + 1 if len(owner) else 1))
        reach = (_structure(c) @ onehot)
        reach.data[:] = 1
        out[ci] = np.asarray(reach.sum(axis=1)).ravel()
    return out


# ----------------------------------------------------------------------------- the whole answer

def _max_membrane(sim: Any) -> dict[str, float] | None:
    return None if sim is None else {p: float(st.max_abs_membrane) for p, st in sim.neurons.items()}


def target_compatibility(graph: nir.NIRGraph | View, target: Target | str, sim: Any = None) -> list[str]:
    """How the integer graph kdsnn checked differs from what ``target`` would run (empty: it is the same).

    Ranges (weights, biases, thresholds, and the membranes a simulation ``sim`` reached), reset,
    neuron model, spike condition, spikes per step and input encoding. ``verify`` and ``report``
    print it per target.
    """
    view = graph if isinstance(graph, View) else graph_view(graph)
    return rules.compatibility(view, load_target(target), _max_membrane(sim))


def _ann(graph: nir.NIRGraph) -> dict[str, Any]:
    from .energy import load_profile
    from .synops import graph_ann_macs

    macs = graph_ann_macs(graph)
    out = {"macs": macs}
    for name in ("cmos45_fp32", "cmos45_int8"):
        p = load_profile(name)
        out[name] = {"joules": macs * p.ops["mac"].joules, "source": p.ops["mac"].source}
    return out


def map_graph(graph: nir.NIRGraph, target: Target | str, x: Any = None, sim: Any = None,
              view: View | None = None, ann_graph: nir.NIRGraph | None = None) -> dict[str, Any]:
    """Rules, placement, per-core load, energy and latency of ``graph`` on ``target`` (JSON-ready).

    ``x``: inputs to simulate (or ``sim``, a finished simulation of ``x`` on this graph);
    without them the answer has rules and placement only. ``ann_graph`` (default ``graph``):
    the graph whose dense MACs price the student as an ANN.
    """
    from .core_load import comparison_sentence, core_load, estimate, human_joules, human_seconds

    t = load_target(target)
    view = view or graph_view(graph)
    violations = rules.common_rules(view, t, _max_membrane(sim))
    if t.kind == "layers":
        violations += rules.layer_rules(view, t)[1]
    placement = place(view, t)
    violations += placement.violations
    dcount = _fan_out_axons(view, placement)
    for ci, c in enumerate(view.plan.connections):
        if c.source in placement.core_of and ci in dcount:
            fo = np.bincount(placement.core_of[c.source], weights=dcount[ci], minlength=len(placement.cores))
            for k in np.nonzero(fo)[0]:
                placement.cores[k].fan_out_axons += int(fo[k])
    fmax = t.get("limits", "fan_out_axons_per_core")
    for core in placement.cores:
        if fmax and core.fan_out_axons > fmax:
            p, lo, hi = core.segments[0]
            violations.append(rules.Violation(p, "fan_out", f"{core.label} ({p}[{lo}:{hi}]) sends to {core.fan_out_axons} "
                                              f"core-to-core axons; {t.name} allows {fmax} per core: reduce the fan-out"))
    cpc, chips = t.get("limits", "cores_per_chip"), t.get("limits", "chips")
    if chips and placement.chips > chips:
        violations.append(rules.Violation("graph", "chips", f"needs {placement.chips} chips; {t.name} maps onto {chips}"))
    result: dict[str, Any] = {
        "target": t.name, "description": t.description, "kind": t.kind, "origin": t.origin,
        "fits": not violations, "violations": [asdict(v) for v in violations],
        "compatibility": rules.compatibility(view, t, _max_membrane(sim)),
        "placement": {"algorithm": placement.algorithm, "cores_used": len(placement.cores), "chips": placement.chips,
                      "cores_per_chip": cpc, "cores": [asdict(c) for c in placement.cores]},
        "unpublished": t.unpublished(),
        "sources": {f"{s}.{k}": e.source for s, d in t.entries.items() for k, e in d.items()},
    }
    if not view.simulable:
        x = sim = None
        result["note"] = "the reference simulator runs reset to v_reset only: no per-core load, energy or latency"
    if sim is None and x is not None:
        x = encode_input(view, x)
        from .simulator import simulate
        sim = simulate(view.plan, x)
    if sim is None:
        result["load"] = None
        return result
    load = core_load(view, placement, sim, x)
    est = estimate(t, placement, load)
    T = load.timesteps
    for k, c in enumerate(result["placement"]["cores"]):
        c["per_step"] = {"synops": load.synops[k] / T, "spikes": load.spikes[k] / T, "messages": load.messages[k] / T,
                         "active_updates": load.active_updates[k] / T, "updates": load.updates[k] / T,
                         "seconds": est["latency"]["per_core_step_seconds"][k]}
    ann = _ann(ann_graph if ann_graph is not None else graph)
    snn_j = est["energy"]["joules"]
    result.update({
        "load": {"samples": load.samples, "timesteps": T, "host_macs": load.host_macs, "host_messages": load.host_messages,
                 "synops": sum(load.synops), "spikes": sum(load.spikes), "messages": sum(load.messages),
                 "notes": load.notes},
        "energy": est["energy"], "latency": est["latency"], "ann": ann,
        "sentence": comparison_sentence(snn_j, ann["cmos45_fp32"]["joules"], t.name, "45 nm fp32")
                    + f"; as an int8 ANN {human_joules(ann['cmos45_int8']['joules'])}",
        "human": {"energy": human_joules(snn_j), "step_latency": human_seconds(est["latency"].get("step_seconds")),
                  "inference_latency": human_seconds(est["latency"].get("inference_seconds"))},
    })
    return result
