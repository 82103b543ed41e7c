"""Plan a Lava process graph from any integer student's NIR graph (residual ones included).

netx files hold sequential layers only; Lava itself wires any graph of processes. Every spiking
population becomes one LIF process (``vth = θ``; the summed biases of its synapses as
``bias_mant`` with exponent 6), every synapse with the pools and flatten before it one
connection process into that population's input port (Lava sums what arrives at one port).
The decays come from the neuron model (:func:`lava_neuron`):

- IF: ``du = 4095`` (the current lives one step), ``dv = 0`` (no leak);
- integer LIF: ``du = 4095``, ``dv = 4096·dt/τ`` (Loihi's 12-bit voltage decay);
- integer CubaLIF: ``du = 4096·dt/τ_syn − 1`` (Lava adds 1), ``dv = 4096·dt/τ_mem``; Lava adds
  the bias to the voltage, the model to the decaying current, so a CubaLIF whose current
  decays (``du < 4095``) takes no bias;
- a non-spiking LI/Integrator feeding the Output runs on the host as the readout.

Connections:

- ``Conv2d`` → ``Conv``, ``Affine``/``Linear`` → ``Dense`` (sum pools composed in, as netx does),
- ``Scale`` (a residual shortcut's integer gain) → ``Sparse`` with that gain on its diagonal.

**Lags.** Every connection delivers one step later, so a population's lag is the longest path,
in connection hops, from the host's population (lag 0): ``lag(P) = max over inputs (lag(S) + 1)``.
Where branches of different depth meet (a residual sum: conv → IF → conv on one side, the
shortcut on the other), the shorter branch is delayed by **relay populations**: LIF neurons
with threshold 0 and no bias behind an identity ``Sparse`` connection, each an exact copy of
its source one step later (an input of 1 gives ``v = 1 > 0``: spike and reset; 0 gives
nothing). A connection from ``S`` into ``P`` reads relay number ``lag(P) − lag(S) − 1`` of
``S``'s relay chain (``S`` itself for 0); one chain per source is shared by all who need it.
Each population is reset every T steps at phase ``1 + lag`` (``LIFReset``), when the first
step of each sample reaches it, as the netx route does.

**Graded input** (``graded_input=True``): the first layer runs on Lava too. The host only sends
the integer input (``round(x / input_scale)``, what the graph's first synapse reads) as graded
spikes, whose payload the first connection multiplies by its weights (Lava's ``num_message_bits``
on ``Dense``/``Conv``; lava-dl's netx has the same option for its input layer,
``input_message_bits``); the Input then plays the host population's part (lag 0). Spike input
(Bernoulli, event frames) goes in as binary spikes (``num_message_bits = 0``).

**Recurrence.** The first population's feedback into itself runs on the host with it (its synapses
included in the host's part of the graph). A recurrent edge (export/recurrence.py) carries its
source's spikes of the step before, which is what a Lava connection does by itself: a population's
output wired back into its own input port arrives at the next step. A recurrent connection from
``S`` into ``P`` reads relay ``lag(P) − lag(S)`` of ``S`` (``S`` itself for 0), so it must not go
back to a population of smaller lag (that would need a negative delay: refused). The lags count the
same-step connections only. Lava's connections hold no reset, so a spike of a sample's last step
would reach the next sample's first: a recurrent graph runs one sample per Lava runtime
(:mod:`.graph`).

**Delays.** A ``Delay`` between two populations (one count for all elements of the connection) is read
from further down the source's relay chain: ``d`` steps later is relay ``k + d``. A per-element delay,
or one on the host's part, is refused in one line. Relays hold no reset either, so a graph with a delay runs
one sample per Lava runtime, as a recurrent one does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np

from kdsnn.errors import KdsnnError
from kdsnn.export.delay import path_delay
from kdsnn.export.encoding import input_bound
from kdsnn.export.graph_view import SYNAPTIC, GraphView, SourcePath
from kdsnn.export.loihi import DU, V_DECAY, VTH_MAX
from kdsnn.export.netx.plan import (
    Synapse,
    bias_map,
    check_graph,
    check_population,
    compose,
    if_threshold,
    integer,
    lava_view,
)
from kdsnn.neuron_models import LOIHI_DECAY, loihi_decay


@dataclass
class Connection:
    """One connection process: ``synapse`` from population (or relay) ``source`` into ``target``."""

    source: str
    target: str
    synapse: Synapse
    origin: str  # the population whose spikes it carries (source is origin or one of its relays)
    message_bits: int = 0  # Lava's num_message_bits: 0 for binary spikes, > 0 for graded input


@dataclass
class Population:
    """One LIF process: a spiking population of the graph, or a relay (a delayed copy of ``relay_of``)."""

    name: str
    shape: tuple[int, ...]  # ours: (C, H, W) or (N,)
    threshold: int
    bias: np.ndarray  # summed synapse biases, shaped like ``shape``
    lag: int
    relay_of: str | None = None
    warnings: list[str] = field(default_factory=list)
    du: int = DU  # Lava's 12-bit current decay (Lava adds 1)
    dv: int = V_DECAY  # Lava's 12-bit voltage decay
    kind: str = "IF"  # the neuron model it runs


@dataclass
class LavaGraphPlan:
    """A graph as host layer, Lava populations and connections, and host readout."""

    host_nodes: list[str]  # Input → … → the host population
    host_neuron: str
    populations: list[Population]  # in topological order, relays included
    connections: list[Connection]
    readout_nodes: list[str]  # between the last population and the Output (membrane readout), or []
    readout_source: str  # the population the readout (or spike count) reads
    timesteps: int
    graded_input: bool = False  # the first layer runs on Lava (host_neuron is then the Input)
    recurrent: bool = False  # a connection carries an earlier step (feedback, Delay): one sample per runtime
    host_feedback: list[list[str]] = field(default_factory=list)  # the host population's own feedback paths

    @property
    def neurons(self) -> list[Population]:
        """The graph's populations run by Lava (relays left out)."""
        return [p for p in self.populations if p.relay_of is None]

    @property
    def max_lag(self) -> int:
        return max(p.lag for p in self.populations)


def message_bits(view: GraphView) -> int:
    """Bits of a graded spike carrying the graph's integer input: its magnitude bound
    (:func:`~kdsnn.export.encoding.input_bound`) plus a sign bit where the input can be negative
    (normalization with a mean above 0); 0 for spike input (binary spikes)."""
    if view.spike_input:
        return 0
    bound = int(input_bound(view))
    pre = view.meta.get("preprocessing") or {}
    signed = any(float(m) > 0 for m in pre.get("mean") or [0.0]) or not view.input_scale
    return max(1, bound.bit_length()) + int(signed)


def relay_name(source: str, k: int) -> str:
    return f"{source}:relay{k}"


def _trace(view: GraphView, start: str) -> tuple[str, list[str]]:
    """The population (or Input) feeding ``start``, and the nodes from there to ``start`` (pools, flatten,
    the synapse, ``start`` included)."""
    path = view.source_of(start, "Lava sums only at a population's input, not before a synapse")
    return path.source, [*path.nodes, start]


def _inputs(view: GraphView, pop: str) -> list[tuple[str, list[str]]]:
    """Each synapse feeding population ``pop``: (source population or Input, composed nodes; the first node's
    edge from the source is recurrent where :meth:`GraphView.is_recurrent` says so)."""
    found = []
    for p in view.preds[pop]:
        if not isinstance(view.nodes[p], SYNAPTIC):
            raise KdsnnError(f"{type(view.nodes[pop]).__name__} node {pop!r} is fed by {p!r} "
                             f"({type(view.nodes[p]).__name__}), not a synapse; Lava populations take their input "
                             "through connection processes")
        found.append(_trace(view, p))
    return found


def lava_neuron(view: GraphView, name: str) -> tuple[int, int, int]:
    """Lava's ``(vth, du, dv)`` for spiking population ``name``, or a one-line refusal naming the node and why.

    IF keeps kdsnn's IF mapping (:func:`if_threshold`); integer LIF and CubaLIF take their 12-bit
    decays from the model, exactly as Lava's bit-accurate LIF runs them (tests/test_neuron_conformance.py).
    """
    node, model = view.nodes[name], view.models.get(name)
    if isinstance(node, nir.IF) or model is None:
        return if_threshold(view, name), DU, V_DECAY
    kind = model.kind
    if kind not in ("LIF", "CubaLIF") and model.spiking:
        raise KdsnnError(f"{kind} node {name!r}: Lava's route runs IF, LIF and CubaLIF populations")
    if kind not in ("LIF", "CubaLIF"):
        raise KdsnnError(f"{kind} node {name!r} does not spike; Lava runs spiking populations (an LI or Integrator "
                         "runs on the host only as the readout feeding the Output)")
    if not model.integer:
        raise KdsnnError(f"{kind} node {name!r} has float dynamics; Lava runs Loihi's fixed point (integer=True, "
                         "12-bit decays)")
    if getattr(model, "decays", "loihi") != "loihi":
        raise KdsnnError(f"{kind} node {name!r} decays by Xylo's bit shift (quantized with --target xylo); Lava runs "
                         "Loihi's 12-bit decays, which round differently")
    if model.reset == "soft":
        raise KdsnnError(f"{kind} node {name!r} resets by subtracting θ (the file's nir < 1.0.6 rule); Lava's LIF "
                         "resets to 0 (give --legacy-reset zero if its writer meant that)")
    if np.any(model.v_reset != 0):
        raise KdsnnError(f"{kind} node {name!r} resets to {float(model.v_reset.flat[0]):g}; Lava's LIF resets to 0")
    th = integer(model.threshold, f"{kind} node {name!r} threshold")
    if th.size == 0 or np.any(th != th.flat[0]):
        raise KdsnnError(f"{kind} node {name!r} has per-neuron thresholds; Lava's LIF holds one vth per process")
    theta = int(th.flat[0])
    if not 0 <= theta <= VTH_MAX:
        raise KdsnnError(f"{kind} node {name!r}: threshold {theta} outside Lava's vth range [0, {VTH_MAX}] (17-bit)")
    dv = loihi_decay(model.leak)
    du = loihi_decay(model.syn_leak, offset=1) if kind == "CubaLIF" else LOIHI_DECAY - 1
    if dv is None or du is None:  # the integer model refuses these already; Lava's du/dv are one value per process
        raise KdsnnError(f"{kind} node {name!r}: its decays are not one 12-bit du/dv per population (Lava's LIF "
                         "holds one du and one dv per process)")
    return theta, du, dv


def _readout_only(view: GraphView, name: str) -> bool:
    """Whether ``name`` is a non-spiking population that only feeds the Output (the host runs it)."""
    return not view.models[name].spiking and view.succs[name] == [view.output]


def lava_graph_plan(graph: nir.NIRGraph | GraphView, graded_input: bool = False) -> LavaGraphPlan:
    """Check that ``graph`` can run as a Lava process graph and plan its populations, connections and lags
    (``graded_input``: the first layer on Lava too, fed the integer input as graded spikes)."""
    view = lava_view(graph)
    for name, model in view.models.items():  # a float leaky graph: say so before the generic integer refusal
        if model.kind != "IF" and not view.integer and model.spiking:
            lava_neuron(view, name)
    T = check_graph(view)
    pops = [p for p in view.populations if not _readout_only(view, p)]
    inputs = {p: _inputs(view, p) for p in pops}
    hosts = [p for p in pops if any(src == view.input for src, _ in inputs[p])]
    if len(hosts) != 1:
        raise KdsnnError(f"{len(hosts)} populations take the analog input ({', '.join(hosts) or 'none'}); Lava's "
                         "route runs exactly one first layer on the host")
    host = hosts[0]
    feedback = [nodes for src, nodes in inputs[host] if view.is_recurrent(src, nodes[0])]
    if any(src != host for src, nodes in inputs[host] if view.is_recurrent(src, nodes[0])):
        raise KdsnnError(f"a later population feeds back into the first population {host!r}, which runs on the "
                         "host; Lava's route takes feedback of the first population into itself only")
    inputs[host] = [(src, nodes) for src, nodes in inputs[host] if not view.is_recurrent(src, nodes[0])]
    if len(inputs[host]) != 1:
        raise KdsnnError(f"the first population {host!r} sums {len(inputs[host])} inputs; the host runs one "
                         "synapse from the Input")
    lava_neuron(view, host)
    host_nodes = [view.input] + inputs[host][0][1] + [host]
    readout_source, readout_nodes = _readout(view)
    if graded_input and feedback:
        raise KdsnnError(f"graded input runs the first population {host!r} on Lava, but it feeds back into itself, "
                         "which Lava's route runs on the host only; run without graded input")
    if graded_input:
        host, host_nodes = view.input, [view.input]  # the Input's values leave the host as graded spikes
    elif readout_source == host:
        raise KdsnnError("the graph has fewer than two spiking populations: the first runs on the host, "
                         "so nothing would be left for Lava")
    lag = {host: 0}
    populations: list[Population] = []
    for name in [*host_nodes, *(q for f in feedback for q in f), *readout_nodes]:
        if name in view.delays:
            raise KdsnnError(f"Delay node {name!r} is on the host's part of the graph (the first layer, its feedback "
                             "or the readout), which Lava's route runs without delays")
    wiring: list[tuple[str, str, Synapse, bool, int]] = []  # (origin, target, synapse, recurrent, Delay steps)
    for pop in pops:
        if pop == host:
            continue
        synapses = []
        for src, nodes in inputs[pop]:
            if src == view.input and not graded_input:
                raise KdsnnError(f"{type(view.nodes[pop]).__name__} node {pop!r} takes the analog input and spikes; "
                                 "only the host's first layer may read the Input")
            rec, wait = view.is_recurrent(src, nodes[0]), _wait(view, src, nodes)
            nodes = [q for q in nodes if q not in view.delays]
            syn = compose(view, nodes, view.shape[src])
            if int(np.prod(syn.out_shape)) != view.size(pop) or len(syn.out_shape) != len(view.shape[pop]):
                raise KdsnnError(f"{nodes[-1]!r} produces {syn.out_shape} but {type(view.nodes[pop]).__name__} "
                                 f"{pop!r} has shape {view.shape[pop]}")
            synapses.append(syn)
            wiring.append((src, pop, syn, rec, wait))
        theta, du, dv = lava_neuron(view, pop)
        graded = graded_input and not view.spike_input and any(src == view.input for src, _ in inputs[pop])
        # a graded input's current is not bounded by the binary-spike worst case: run_graph checks the actual one
        warnings = (check_population(pop, synapses, theta, T, exponents=True) if not graded else
                    [f"{pop} takes graded input: its currents and membranes are checked on the actual inputs"])
        bias = sum(np.asarray(bias_map(s), dtype=np.int64) for s in synapses)
        if du != DU and np.any(bias != 0):
            raise KdsnnError(f"CubaLIF node {pop!r}: its synapses' bias enters the decaying current, but Lava adds "
                             "bias to the voltage; exact only without bias (or with dt/τ_syn = 1)")
        lag[pop] = max((lag[src] + 1 for src, nodes in inputs[pop] if not view.is_recurrent(src, nodes[0])),
                       default=None)
        if lag[pop] is None:
            raise KdsnnError(f"{type(view.nodes[pop]).__name__} node {pop!r} is fed only by recurrent connections; "
                             "Lava's route needs a same-step input to time it")
        populations.append(Population(pop, view.shape[pop], theta, np.broadcast_to(bias, view.shape[pop]).copy(),
                                      lag[pop], warnings=warnings, du=du, dv=dv, kind=view.models[pop].kind))
    relays, connections = _align(view, wiring, lag)
    if graded_input:
        for c in connections:
            if c.source == view.input:
                c.message_bits = message_bits(view)
    order = {p: i for i, p in enumerate(view.order)}
    populations = sorted(populations + relays, key=lambda p: (p.lag, order.get(p.relay_of or p.name, 0)))
    return LavaGraphPlan(host_nodes, host, populations, connections, readout_nodes, readout_source, T,
                         graded_input, recurrent=any(w[3] or w[4] for w in wiring), host_feedback=feedback)


def _wait(view: GraphView, src: str, nodes: list[str]) -> int:
    """The steps the Delay nodes on the path ``src`` → ``nodes`` hold its spikes: relays delay a whole connection,
    so one count for all elements, or a one-line refusal."""
    d = path_delay(view, SourcePath(src, tuple(nodes)))
    if d is None:
        return 0
    if not np.all(d == d[0]):
        name = next(q for q in nodes if q in view.delays)
        raise KdsnnError(f"Delay node {name!r} delays {src!r}'s elements by different amounts "
                         f"({int(d.min())} to {int(d.max())} steps); Lava's route delays a whole connection through "
                         "relay populations (Lava's Dense has no per-synapse delay in its bit-accurate model)")
    return int(d[0])


def _relays(lag: dict[str, int], src: str, dst: str, recurrent: bool, wait: int = 0) -> int:
    """How many relays ``src``'s spikes pass before the connection into ``dst``: a same-step connection arrives
    at ``dst``'s step, a recurrent one at its next step, each ``wait`` (Delay) steps later."""
    k = lag[dst] - lag[src] - (0 if recurrent else 1) + wait
    if k < 0:
        raise KdsnnError(f"the recurrent connection {src!r} → {dst!r} goes back {-k} step(s) of Lava's pipeline "
                         "(every connection delivers one step later); Lava's route runs feedback into the same "
                         "population or a later one only")
    return k


def _align(view: GraphView, wiring: list[tuple[str, str, Synapse, bool, int]],
           lag: dict[str, int]) -> tuple[list[Population], list[Connection]]:
    """Relay chains for sources that feed a population later than one hop, and every connection's source."""
    depth: dict[str, int] = {}
    for src, dst, _, rec, wait in wiring:
        depth[src] = max(depth.get(src, 0), _relays(lag, src, dst, rec, wait))
    relays, connections = [], []
    for src, d in depth.items():
        shape = view.shape[src]
        for k in range(1, d + 1):
            prev = src if k == 1 else relay_name(src, k - 1)
            identity = Synapse("scale", [], shape, shape, np.ones(shape, dtype=np.int64), np.zeros(1, dtype=np.int64))
            relays.append(Population(relay_name(src, k), shape, 0, np.zeros(shape, dtype=np.int64), lag[src] + k,
                                     relay_of=src))
            connections.append(Connection(prev, relay_name(src, k), identity, src))
    for src, dst, syn, rec, wait in wiring:
        k = _relays(lag, src, dst, rec, wait)
        connections.append(Connection(src if k == 0 else relay_name(src, k), dst, syn, src))
    return relays, connections


def _readout(view: GraphView) -> tuple[str, list[str]]:
    """The population the Output reads, and the host's readout nodes between them (membrane readout)."""
    preds = view.preds[view.output]
    if len(preds) != 1:
        raise KdsnnError(f"the Output sums {len(preds)} inputs; Lava's route reads one population or one readout "
                         "synapse")
    last = preds[0]
    if last in view.models and view.models[last].spiking:
        return last, []
    src, nodes = _trace(view, last)  # a readout synapse, or a non-spiking LI/Integrator behind one
    if src == view.input:
        raise KdsnnError("the Output reads the Input without an IF population in between; nothing runs on Lava")
    return src, nodes
