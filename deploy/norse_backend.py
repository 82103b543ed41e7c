"""Norse 1.1 as an independent runner of our NIR graphs (``norse.torch.from_nir``).

Norse maps ``nir.IF`` to its IAF neuron (``v > θ``, reset to 0, no extra delay): step-exact
with our contract. ``nir.LIF`` becomes its ``LIFBoxCell`` and ``nir.CubaLIF`` an ``LIBoxCell``
current feeding a ``LIFBoxCell``, both forward Euler with the ``dt`` it is given (the graph's
dt here): an independent check of kdsnn's leaky models. It ignores ``r`` on IF and LIF and
resets LIF to 0, so such populations are refused (:func:`norse_supports` names them). Its reader
has two limits, measured in tests/export/test_nir_export.py: it has
no mapping for ``nir.Scale`` (our identity shortcuts, so residual students are refused here),
and it builds ``Flatten(start_dim=0)`` literally, which would flatten a batch axis too, so
samples are fed one at a time, unbatched, step by step.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

import nir
import numpy as np
import torch

from kdsnn.errors import KdsnnError
from kdsnn.export.graph_view import GraphView
from kdsnn.export.runtime import GraphSNN


def norse_available() -> tuple[bool, str]:
    # Norse imports torch.utils.cpp_extension, which logs a CUDA_HOME warning on CPU machines.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            import norse.torch  # noqa: F401
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc} (pip install -e .[interop])"
    return True, ""


def norse_supports(graph: nir.NIRGraph | GraphView) -> tuple[bool, str]:
    """Whether Norse's reader runs ``graph`` as kdsnn reads it, naming the first node it cannot and why."""
    view = GraphView.of(graph)
    for name, node in view.nodes.items():
        if isinstance(node, nir.Scale):
            return False, f"Norse's NIR reader has no mapping for Scale nodes ({name!r}: identity shortcut)"
        if isinstance(node, nir.AvgPool2d):
            return False, f"Norse's NIR reader drops AvgPool2d nodes ({name!r})"
        if isinstance(node, nir.Conv1d):
            return False, f"Conv1d node {name!r}: not checked against Norse's reader"
        if isinstance(node, nir.Delay):  # norse 1.1's from_nir maps no Delay (nirtorch fails on the unmapped node)
            return False, f"Norse's NIR reader has no mapping for Delay nodes ({name!r})"
    for name, m in view.models.items():
        if m.kind not in ("IF", "LIF", "CubaLIF"):
            return False, f"{m.kind} node {name!r}: not checked against Norse's reader (IF, LIF and CubaLIF are)"
        if m.kind != "IF" and view.integer:
            rule = "Xylo's bit-shift" if getattr(m, "decays", "loihi") == "xylo" else "Loihi's fixed-point"
            return False, f"{m.kind} node {name!r}: {rule} decays (integer mode) are not Norse's float ones"
        if m.reset != "hard" or np.any(m.v_reset != 0):
            return False, f"{m.kind} node {name!r}: Norse resets to 0 (this node: {m.summary()})"
        if m.kind == "IF" and not m.unit_gain:
            return False, f"IF node {name!r}: Norse ignores r, and r·dt = {float(m.gain.max()):g} here"
        if m.kind == "LIF" and np.any(m.r != 1):
            return False, f"LIF node {name!r}: Norse ignores r, and r = {float(m.r.max()):g} here"
        if m.kind == "CubaLIF" and np.any(m.v_leak != 0):
            return False, (f"{m.kind} node {name!r}: "
                           "Norse's CubaLIF leaks its current towards v_leak too; v_leak ≠ 0 here")
    return True, ""


def step_per_sample(module: torch.nn.Module, seq: torch.Tensor, record: list[str] | None = None
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run a Norse/nirtorch module step by step on each unbatched sample of ``seq`` ``[T, B, ...]``.

    Returns the output sequence ``[T, B, ...]`` and the per-step outputs of the nodes in
    ``record`` (``from_nir``'s GraphExecutor caches every node's output in its state).
    """
    outs, nodes = [], {n: [] for n in record or []}
    with torch.no_grad():
        for b in range(seq.shape[1]):
            state, per, per_node = None, [], {n: [] for n in nodes}
            for t in range(seq.shape[0]):
                out, state = module(seq[t, b], state)
                per.append(out)
                for n in per_node:
                    per_node[n].append(state.cache[n])
            outs.append(torch.stack(per))
            for n in nodes:
                nodes[n].append(torch.stack(per_node[n]))
    return torch.stack(outs, 1), {n: torch.stack(v, 1) for n, v in nodes.items()}


def run_norse(graph: nir.NIRGraph | GraphView, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and per-IF-node spikes ``[T, B, ...]`` of ``graph`` run by Norse on ``x``."""
    ok, why = norse_available()
    if not ok:
        raise KdsnnError(f"Norse is not importable: {why}")
    ok, why = norse_supports(graph)
    if not ok:
        raise KdsnnError(why)
    import norse.torch as norse

    snn = GraphSNN(graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = norse.from_nir(snn.view.graph, dt=snn.view.dt)
    if_nodes = [n for n in snn.view.populations if snn.view.models[n].spiking]
    out_seq, spikes = step_per_sample(module, snn.prepare_input(x).float(), if_nodes)
    return snn.view.logits(out_seq.double()), {n: v.double() for n, v in spikes.items()}
