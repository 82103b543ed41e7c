"""Xylo Audio 2: a graph lowered to the dense matrices Rockpool's Xylo mapper produces, and its cycles.

Xylo runs one hidden population of up to 1000 neurons and up to 8 output neurons, with int8 weight
matrices ``W_in`` (inputs → hidden), ``W_rec`` (hidden → hidden) and ``W_out`` (hidden → output)
(Rockpool ``devices/xylo/syns61201/xylo_mapper.py``, ``docs/devices/xylo-overview.ipynb``). Every
connection of a graph is composed (pooling and flatten included, as the simulator composes them)
into those matrices: the first population(s) fed by the Input get ``W_in``, the last population is
the output, every other connection between populations lands in ``W_rec``. A synapse is a nonzero
weight (a zero weight is not stored: Rockpool's counts).

Integers follow Rockpool's ``global_quantize`` (``transform/quantize_methods.py``): one factor for
``W_in``, ``W_rec`` and the hidden biases, ``127/max|·|``, another for ``W_out`` and the output
biases, thresholds scaled with their weights (and everything scaled down again where a threshold
would pass 2^15 − 1), then rounded (Rockpool scales the output biases by the hidden factor; kdsnn by
the output one, which is the same on the fixed point). The matrices kdsnn writes are a fixed point of that rule, so
Rockpool's quantizer keeps them as they are.

Neurons: Xylo's LIF has a synaptic current and a membrane, each decaying by a bit shift (``dash``).
kdsnn's IF maps to ``dash_mem = 15`` (the longest decay) and ``dash_syn = 1`` (Rockpool's mapper
needs τ_syn > dt, so the current lingers one halving per step): IF is approximate on Xylo. The NIR
file Rockpool's ``from_nir`` reads holds them as ``CubaLIF`` with τ = 2^dash·dt, ``r = τ_mem/dt − 1``
(Rockpool reads ``dt = τ_mem/(1 + r)``) and the bias as ``v_leak`` (Rockpool's reading), and the
weights as bias-free ``Linear`` nodes (Rockpool does not transfer weight biases to Xylo).

:func:`cycles` is Rockpool's cycle model (``power_cycles_model.py``) for one step, from the spike
counts: ``Nin·(1 + 3.5·Nhid·p_in) + Nhid·(3 + 7·fan_out·p_hid) + Nhid·p_hid·(1 + 8·Nout) +
Nhid·(19 + 3·p_hid) + 12·Nout`` with ``p`` the share of channels/neurons active per step and
``fan_out`` the mean nonzero recurrent weights per hidden neuron (no aliases, one synapse).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp

DASH_MEM, DASH_SYN = 15, 1
Problem = tuple[str, str, str]


@dataclass
class XyloNet:
    """The matrices (sparse: a graph far larger than Xylo is still counted without dense matrices) and
    per-neuron parameters; ``hidden`` lists (population, first, stop) slices of the hidden neurons."""

    w_in: sp.csr_matrix
    w_rec: sp.csr_matrix
    w_out: sp.csr_matrix
    threshold: np.ndarray
    threshold_out: np.ndarray
    bias: np.ndarray
    bias_out: np.ndarray
    hidden: list[tuple[str, int, int]]
    output: str
    input_shape: tuple[int, ...]
    problems: list[Problem] = field(default_factory=list)

    def fan_out(self) -> np.ndarray:
        """Per hidden neuron: the neurons it reaches (nonzero weights in ``W_rec`` and ``W_out``)."""
        return self.w_rec.getnnz(axis=1) + self.w_out.getnnz(axis=1)

    @property
    def counts(self) -> dict[str, int]:
        """What Rockpool's mapper allocates and stores: channels, neurons, nonzero weights, max fan-out."""
        fan = self.fan_out()
        return {"input_channels": int(self.w_in.shape[0]), "hidden_neurons": int(self.w_rec.shape[0]),
                "output_neurons": int(self.w_out.shape[1]), "synapses_in": int(self.w_in.nnz),
                "synapses_rec": int(self.w_rec.nnz), "synapses_out": int(self.w_out.nnz),
                "max_fan_out": int(fan.max()) if fan.size else 0}


def _weights(conn: Any) -> sp.csr_matrix:
    """A composed connection's weights ``[n_src, n_tgt]`` (the plan stores ``w + 1j`` on every synapse)."""
    w = sp.csr_matrix(conn.wt.real, dtype=np.float64, copy=True)  # never a view of the plan's own weights
    w.eliminate_zeros()
    return w


def _scale(m: sp.csr_matrix, f: float) -> sp.csr_matrix:
    m = m.copy()
    m.data = np.round(m.data * f)
    m.eliminate_zeros()
    return m


def _peak(m: sp.csr_matrix | np.ndarray) -> float:
    data = m.data if sp.issparse(m) else np.asarray(m)
    return float(np.abs(data).max()) if data.size else 0.0


def quantize(net: XyloNet) -> XyloNet:
    """Rockpool's ``global_quantize`` on the matrices (module docstring), in place."""
    qmax, tmax = 2 ** 7 - 1, 2 ** 15 - 1

    def factor(*arrays: Any) -> float:
        peak = max(_peak(a) for a in arrays)
        return qmax / peak if peak else 1.0

    s, s_out = factor(net.w_in, net.w_rec, net.bias), factor(net.w_out, net.bias_out)
    net.w_in, net.w_rec, net.w_out = _scale(net.w_in, s), _scale(net.w_rec, s), _scale(net.w_out, s_out)
    net.threshold, net.threshold_out = np.round(net.threshold * s), np.round(net.threshold_out * s_out)
    # Rockpool scales the output bias by the hidden factor; kdsnn scales it with its own weights (the output
    # neurons' dynamics stay the float ones). The result is a fixed point of Rockpool's rule either way: both
    # factors are 1 when it runs again on these integers.
    net.bias, net.bias_out = np.round(net.bias * s), np.round(net.bias_out * s_out)
    if net.threshold.size and net.threshold.max() > tmax:
        f = tmax / net.threshold.max()
        net.threshold, net.w_in, net.w_rec = np.round(net.threshold * f), _scale(net.w_in, f), _scale(net.w_rec, f)
    if net.threshold_out.size and net.threshold_out.max() > tmax:
        f = tmax / net.threshold_out.max()
        net.threshold_out, net.w_out, net.w_rec = (np.round(net.threshold_out * f), _scale(net.w_out, f),
                                                   _scale(net.w_rec, f))
    return net


def lower(view: Any, plan: Any, quantized: bool = True) -> XyloNet:
    """The Xylo matrices of a graph (``view``: the map view; ``plan``: its simulator plan, sparse form), with
    Rockpool's integers when ``quantized``."""
    problems: list[Problem] = []
    pops = list(view.populations)
    if not pops:
        problems.append(("graph", "neuron_layers", "no neuron population"))
    out_pop = pops[-1] if pops else view.output
    hidden = pops[:-1]
    offset, slices = 0, []
    for p in hidden:
        n = int(np.prod(view.shape[p]))
        slices.append((p, offset, offset + n))
        offset += n
    at = {p: (lo, hi) for p, lo, hi in slices}
    n_in, n_out = int(np.prod(view.shape[view.input])), int(np.prod(view.shape[out_pop])) if pops else 0
    blocks: dict[str, list[tuple[sp.csr_matrix, int, int]]] = {"in": [], "rec": [], "out": []}
    for c in plan.connections:
        if c.target == out_pop and c.source in at:
            blocks["out"].append((_weights(c), at[c.source][0], 0))
        elif c.target in at and c.source == view.input:
            blocks["in"].append((_weights(c), 0, at[c.target][0]))
        elif c.target in at and c.source in at:
            blocks["rec"].append((_weights(c), at[c.source][0], at[c.target][0]))
        elif c.source == view.input and c.target == out_pop:
            problems.append((c.name, "input_to_output", "the input feeds the output neurons directly; on Xylo the "
                                                        "input reaches only hidden neurons (W_in)"))
        elif c.target == view.output:
            problems.append((c.name, "readout", "a membrane readout; Xylo's output neurons spike: "
                                                "train with --readout spike"))
    theta = np.zeros(offset)
    bias = np.zeros(offset)
    for p, lo, hi in slices:
        theta[lo:hi] = np.broadcast_to(np.asarray(view.nodes[p].v_threshold, dtype=np.float64).ravel(), (hi - lo,))
        b = plan.target_bias.get(p)
        if b is not None:
            bias[lo:hi] = np.broadcast_to(np.asarray(b, dtype=np.float64).ravel(), (hi - lo,))
    th_out = np.broadcast_to(np.asarray(getattr(view.nodes[out_pop], "v_threshold", 0.0), dtype=np.float64).ravel(),
                             (n_out,)).copy()
    b_out = plan.target_bias.get(out_pop)
    b_out = np.zeros(n_out) if b_out is None else np.broadcast_to(b_out, (n_out,)).copy()
    def assemble(part: str, shape: tuple[int, int]) -> sp.csr_matrix:
        coo = [(w.tocoo(), r0, c0) for w, r0, c0 in blocks[part]]
        rows = np.concatenate([m.row + r0 for m, r0, _ in coo] or [np.zeros(0, int)])
        cols = np.concatenate([m.col + c0 for m, _, c0 in coo] or [np.zeros(0, int)])
        vals = np.concatenate([m.data for m, _, _ in coo] or [np.zeros(0)])
        out = sp.csr_matrix((vals, (rows, cols)), shape=shape)  # duplicates (summed branches) add up
        out.eliminate_zeros()
        return out

    w_in, w_rec, w_out = assemble("in", (n_in, offset)), assemble("rec", (offset, offset)), \
        assemble("out", (offset, n_out))
    net = XyloNet(w_in, w_rec, w_out, theta, th_out, bias, b_out, slices, out_pop,
                  tuple(int(v) for v in view.shape[view.input]), problems)
    return quantize(net) if quantized else net


def to_nir(net: XyloNet, dt: float = 1.0) -> nir.NIRGraph:
    """The graph Rockpool's ``from_nir`` → ``as_graph()`` → Xylo ``mapper`` takes (module docstring)."""
    def neurons(theta: np.ndarray, bias: np.ndarray) -> nir.CubaLIF:
        n = theta.size
        tau_mem, tau_syn = np.full(n, 2.0 ** DASH_MEM * dt), np.full(n, 2.0 ** DASH_SYN * dt)
        return nir.CubaLIF(tau_mem=tau_mem, tau_syn=tau_syn, r=tau_mem / dt - 1.0, v_leak=bias.copy(),
                           v_threshold=theta.copy(), w_in=np.ones(n))

    w_in, w_rec, w_out = (m.toarray() for m in (net.w_in, net.w_rec, net.w_out))  # Xylo-sized: ≤ 1000 hidden
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([net.w_in.shape[0]])})}
    edges: list[tuple[str, str]] = []
    for p, lo, hi in net.hidden:
        nodes[p] = neurons(net.threshold[lo:hi], net.bias[lo:hi])
        if np.any(w_in[:, lo:hi]):
            nodes[f"w_in_{p}"] = nir.Linear(weight=w_in[:, lo:hi].T.copy())
            edges += [("input", f"w_in_{p}"), (f"w_in_{p}", p)]
        for q, qlo, qhi in net.hidden:
            if np.any(w_rec[qlo:qhi, lo:hi]):
                nodes[f"w_{q}_{p}"] = nir.Linear(weight=w_rec[qlo:qhi, lo:hi].T.copy())
                edges += [(q, f"w_{q}_{p}"), (f"w_{q}_{p}", p)]
    nodes[net.output] = neurons(net.threshold_out, net.bias_out)
    for q, qlo, qhi in net.hidden:
        if np.any(w_out[qlo:qhi]):
            nodes[f"w_{q}_out"] = nir.Linear(weight=w_out[qlo:qhi].T.copy())
            edges += [(q, f"w_{q}_out"), (f"w_{q}_out", net.output)]
    nodes["output"] = nir.Output(output_type={"output": np.array([net.w_out.shape[1]])})
    edges.append((net.output, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def cycles(net: XyloNet, p_in: float, p_hid: float) -> float:
    """Clock cycles of one step by Rockpool's cycle model (module docstring); ``p_in``, ``p_hid``: the
    share of input channels and hidden neurons with at least one event per step."""
    n_in, n_hid, n_out = net.w_in.shape[0], net.w_rec.shape[0], net.w_out.shape[1]
    fan_out = float(net.w_rec.getnnz(axis=1).mean()) if n_hid else 0.0
    return (n_in * (1 + 3.5 * n_hid * p_in) + n_hid * (3 + 7 * fan_out * p_hid)
            + n_hid * p_hid * (1 + 8 * n_out) + n_hid * (19 + 3 * p_hid) + 12 * n_out)
