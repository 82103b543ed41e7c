"""The simulator's plan: a graph reduced to populations, an Output, and composed connections.

Read through :class:`kdsnn.export.graph_view.GraphView` (order, shapes, Input/Output, neuron
models). Every path of linear nodes from a population (Input or neuron) to the next population or
the Output (the view's ``paths_into``) is one connection, named by its synaptic node; pooling and Flatten between a
population and a synaptic node are composed into it, so a spike before a pool drives the
synapses of the composed connectivity directly (DESIGN.md's SynOps contract). A ``Delay`` on a path makes its
events wait (``delays``: steps per source element, :func:`kdsnn.export.delay.path_delay`); the synapses are those of the
path without it. Connections are
kept as kernels (:mod:`kdsnn.deploy.simulator.connect`: memory O(parameters + neurons)); only chains
the kernel forms do not cover fall back to explicit sparse matrices (:mod:`kdsnn.deploy.simulator.sparse`).
"""
from __future__ import annotations

import nir
import numpy as np
import scipy.sparse as sp

from kdsnn.errors import KdsnnError
from kdsnn.export.delay import path_delay, without_delays
from kdsnn.export.graph_view import POOLS, SYNAPTIC, GraphView, SourcePath
from kdsnn.neuron_models import IFModel
from kdsnn.progress import progress as progress_bar

from .connect import DenseOp, ElementwiseOp, KernelConnection, conv_op, pool_index
from .fast import FastNet
from .sparse import SparseConnection, linear_matrix, path_matrix
from .tables import Connection, channels_last


def unsupported(view: GraphView) -> str | None:
    """Why the simulator cannot run ``view`` (None if it can): it delivers events, not graded values,
    between populations, so a non-spiking population (LI, Integrator) can only be the readout."""
    for name, model in view.models.items():
        if not model.spiking and any(q != view.output for q in view.succs[name]):
            return (f"{model.kind} node {name!r} does not spike, so the simulator runs it only as the readout "
                    "(feeding the Output directly); the PyTorch graph runtime (--backend pytorch) runs it anywhere")
    return None


class Plan:
    """The graph reduced to populations (Input, neurons), an Output, and composed connections.

    Building it is the expensive part of a simulation; build once with ``Plan(graph)`` and pass
    it to :func:`kdsnn.deploy.simulator.simulate` in place of the graph to simulate many batches.
    ``connectivity="sparse"`` stores every connection as an explicit sparse matrix (the previous
    formulation: tests hold the kernel forms to it; O(synapses) memory).
    """

    def __init__(self, graph: nir.NIRGraph | GraphView, connectivity: str = "kernel", progress: bool = False) -> None:
        if connectivity not in ("kernel", "sparse"):
            raise KdsnnError(f"connectivity must be 'kernel' or 'sparse', got {connectivity!r}")
        view = GraphView.of(graph)
        why = unsupported(view)
        if why:
            raise KdsnnError(why)
        self.view, self.graph, self.sparse = view, view.graph, connectivity == "sparse"
        self.input, self.output, self.input_shape = view.input, view.output, view.input_shape
        self.shape: dict[str, tuple[int, ...]] = dict(view.shape)
        self.connections: list[Connection] = []
        self.target_bias: dict[str, np.ndarray] = {}
        self.passthrough: list[str] = []  # populations feeding the Output directly
        self.delayed: set[str] = set()  # connections on a recurrent edge: they deliver the previous step's spikes
        # connections through Delay nodes: how many steps each source element's events wait (export/delay.py)
        self.delays: dict[str, np.ndarray] = {}
        self.populations: list[str] = []  # IF nodes and the Output, in update order
        self.cache: dict = {}  # what a simulation path derives from the plan and keeps for the next batch
        bias: dict[str, np.ndarray | None] = {}
        targets = [n for n in view.order if n in view.models or n == view.output]
        bar = progress_bar(total=len(targets) + 1, desc="plan", unit="step", enabled=progress)
        for name in view.order:
            if name == view.input:
                continue
            in_bias: np.ndarray | None = None
            for p in view.preds[name]:
                if not view.is_population(p) and bias[p] is not None:
                    in_bias = bias[p] if in_bias is None else in_bias + bias[p]
            if name in view.models or name == view.output:
                self._target(name, view.paths_into(name), in_bias)
                bar.update(1)
            else:
                bias[name] = self._bias(name, view.nodes[name], in_bias)
        # the integer fast path's tables (None: not exact); its compiled update is the IF step only, and it
        # delivers every connection within the step (recurrent graphs take the general path)
        self.fast: FastNet | None = FastNet.build(self) if all(isinstance(m, IFModel) for m in view.models.values()) \
            and not self.delayed and not self.delays else None
        bar.update(1)
        bar.close()

    # ------------------------------------------------------------------ biases
    def _bias(self, name: str, node: nir.NIRNode, in_bias: np.ndarray | None) -> np.ndarray | None:
        """The bias a linear node adds per output element: its own plus what passes through it."""
        if isinstance(node, nir.Delay):
            if in_bias is not None:
                raise KdsnnError(f"a bias passes through Delay node {name!r}: it is absent for the delay's first "
                                 "steps, which the simulator's per-step bias cannot state; the PyTorch graph runtime "
                                 "(--backend pytorch) runs it")
            return None
        b = None
        if in_bias is not None:  # a bias passes through Flatten exactly (1·b from zero); others by their matrix
            b = (in_bias + 0.0 if isinstance(node, nir.Flatten)
                 else linear_matrix(node, self.view.in_shape[name]) @ in_bias)
        own = None
        if isinstance(node, (nir.Conv2d, nir.Conv1d)):
            c, rest = self.shape[name][0], int(np.prod(self.shape[name][1:]))
            own = np.repeat(np.broadcast_to(np.asarray(node.bias, dtype=np.float64).ravel(), (c,)), rest)
        elif isinstance(node, nir.Affine):
            own = np.broadcast_to(np.asarray(node.bias, dtype=np.float64).ravel(), self.shape[name]).copy()
        if own is not None:
            b = own if b is None else b + own
        return b

    # ------------------------------------------------------------------ connections
    def _target(self, name: str, incoming: list[SourcePath], in_bias: np.ndarray | None) -> None:
        view = self.view
        n = view.size(name)
        groups: dict[tuple[str, str, bool, bytes], list[SourcePath]] = {}
        steps: dict[bytes, np.ndarray] = {}
        for t in incoming:
            if not t.nodes and name == view.output:
                self.passthrough.append(t.source)
                continue
            d = path_delay(view, t)
            t = without_delays(view, t)
            syn = [q for q in t.nodes if isinstance(view.nodes[q], SYNAPTIC)]
            key = "+".join(syn) if syn else (t.nodes[-1] if t.nodes else f"{t.source}->{name}")
            sig = b"" if d is None else d.tobytes()  # paths with different delays are different connections
            steps[sig] = d
            groups.setdefault((t.source, key, t.delayed, sig), []).append(t)
        for (src, key, delayed, sig), ts in groups.items():
            cname, k = key, 1
            while any(c.name == cname for c in self.connections):
                cname, k = f"{key}@{name}" + (f"#{k}" if k > 1 else ""), k + 1
            if delayed:
                self.delayed.add(cname)
            if sig:
                self.delays[cname] = steps[sig]
            conn = self._kernel(cname, ts[0], name) if len(ts) == 1 and not self.sparse else None
            self.connections.append(conn if conn is not None else self._sparse(cname, src, ts, name))
        self.target_bias[name] = np.zeros(n) if in_bias is None else np.asarray(in_bias, dtype=np.float64)
        self.populations.append(name)

    def _sparse(self, cname: str, src: str, ts: list[SourcePath], name: str) -> SparseConnection:
        """The fallback: the paths' explicit matrices, summed (imaginary parts > 0: no synapse lost)."""
        view = self.view
        n_src = view.size(src)
        m = sp.csc_matrix(sum((path_matrix(view.nodes, view.in_shape, t.nodes, n_src) for t in ts[1:]),
                              path_matrix(view.nodes, view.in_shape, ts[0].nodes, n_src)))
        m.sort_indices()
        wt = sp.csr_matrix((m.data.real + 1j, m.indices, m.indptr), shape=(n_src, view.size(name)))
        return SparseConnection(cname, src, name, wt, view.shape[src], view.shape[name])

    def _kernel(self, cname: str, t: SourcePath, name: str) -> KernelConnection | None:
        """The path as pool? → synaptic op? (Flatten anywhere), or None when it has another form."""
        view = self.view
        core = [q for q in t.nodes if not isinstance(view.nodes[q], nir.Flatten)]
        if any(isinstance(view.nodes[q], nir.Conv1d) for q in core):
            return None  # kept as an explicit matrix (sparse.linear_matrix)
        pool = core[0] if core and isinstance(view.nodes[core[0]], POOLS) else None
        rest = core[1:] if pool else core
        if len(rest) > 1 or (rest and not isinstance(view.nodes[rest[0]], SYNAPTIC)):
            return None
        index, factor = None, 1.0
        if pool is not None:
            got = pool_index(view.nodes[pool], pool, view.in_shape[pool], view.shape[pool])
            if got is None:
                return None
            index, factor = got
        tgt_shape = view.shape[name]
        n_op_in = view.size(pool) if pool else view.size(t.source)
        op_name = rest[0] if rest else None
        node = view.nodes[op_name] if op_name else None
        hwc_pos = channels_last(tgt_shape) if len(tgt_shape) == 3 else None
        if isinstance(node, nir.Conv2d):
            if len(tgt_shape) == 3 and tuple(tgt_shape) != tuple(view.shape[op_name]):
                return None
            op = conv_op(node, op_name, view.in_shape[op_name], view.shape[op_name], factor)
        elif isinstance(node, (nir.Affine, nir.Linear)):
            if len(tgt_shape) == 3:
                return None
            op = DenseOp(np.asarray(node.weight, dtype=np.float64) * factor)
        elif isinstance(node, nir.Scale):
            op = ElementwiseOp(np.asarray(node.scale, dtype=np.float64).ravel() * factor, n_op_in, hwc_pos)
        else:
            op = ElementwiseOp(np.array([factor]), n_op_in, hwc_pos)
        return KernelConnection(cname, t.source, name, op, index, view.shape[t.source], tgt_shape)

    def incoming(self, name: str) -> list[Connection]:
        """The connections into population ``name``, in plan order."""
        return [c for c in self.connections if c.target == name]
