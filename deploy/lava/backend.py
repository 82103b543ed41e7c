"""Run an integer student on Lava's Loihi 2 simulator (``Loihi2SimCfg(select_tag='fixed_pt')``).

Two routes, one result type (:class:`LavaRun`), bit-exact against ``GraphSNN(graph).run(x)``:

- **netx** (:mod:`.netx`): a sequential graph goes through its lava-dl netx file, the
  artefact Loihi users load with ``netx.hdf5.Network``.
- **process graph** (:mod:`.plan`, :mod:`.graph`): any other student (residual sums,
  shortcut branches) is built as Lava processes straight from the NIR graph, with relay
  populations aligning branches of different depth.

Both run the analog first layer (and a membrane readout) on the host (:mod:`.runtime`); with
``graded_input`` the process-graph route runs the first layer on Lava, fed graded spikes.
docs/lava.md describes the mapping, timing and refusals.
"""
from __future__ import annotations

from pathlib import Path

import nir
import torch

from kdsnn.errors import KdsnnError
from kdsnn.export.graph_view import GraphView
from kdsnn.export.netx.plan import lava_view, netx_plan
from kdsnn.progress import stage

from .estimate import estimate
from .plan import LavaGraphPlan, lava_graph_plan
from .runtime import CONV_MODELS, LavaRun, check_steps, lava_available

__all__ = ["lava_route", "lava_supports", "run_lava"]


def lava_route(graph: nir.NIRGraph | GraphView) -> str:
    """``"netx"`` for a graph its netx file can hold, ``"process-graph"`` for any other Lava runs;
    a KdsnnError saying why when neither can."""
    view = lava_view(graph)
    try:
        netx_plan(view)
        return "netx"
    except KdsnnError:
        lava_graph_plan(view)  # raises with the reason when Lava cannot run it either
        return "process-graph"


def lava_supports(graph: nir.NIRGraph | GraphView) -> tuple[bool, str]:
    """Whether Lava (either route) can run ``graph``, and why not (importability is :func:`lava_available`)."""
    try:
        lava_route(graph)
    except KdsnnError as exc:
        return False, str(exc)
    return True, ""


def run_lava(graph: nir.NIRGraph | GraphView, x: torch.Tensor, netx_path: str | Path | None = None,
             progress: bool = True, route: str | None = None, graded_input: bool = False,
             conv_model: str = "kdsnn") -> LavaRun:
    """Run ``graph`` (integer) on Lava's fixed-point Loihi 2 simulator for the batch ``x``.

    ``x`` is ``[B, ...]`` (encoded over T as GraphSNN does) or ``[T, B, ...]``. Sequential graphs
    take the netx route (``netx_path`` names a file :func:`export_netx` wrote for this same
    graph; by default one is written to a temporary folder), all others the process-graph
    route. ``route`` forces ``"netx"`` or ``"process-graph"`` (the latter runs sequential
    graphs too, which the tests use to hold both routes to the same spikes). ``graded_input`` runs the
    first layer on Lava as well, fed the integer input as graded spikes (Lava's ``num_message_bits``;
    process-graph route only). ``conv_model`` picks the process model of Lava's convolutions: ``"kdsnn"``
    (default, :mod:`.conv_model`: vectorized, bit for bit Lava's arithmetic) or ``"lava"`` (Lava's own, a Python
    loop over channel pairs).
    """
    ok, why = lava_available()
    if not ok:
        raise KdsnnError(f"Lava is not importable ({why}); "
                         "install lava-nc 0.10 and lava-dl 0.6 as docs/lava.md describes")
    if conv_model not in CONV_MODELS:
        raise KdsnnError(f"unknown Lava conv model {conv_model!r}; choose one of {', '.join(CONV_MODELS)}")
    if route not in (None, "netx", "process-graph"):
        raise KdsnnError(f"unknown Lava route {route!r}; choose 'netx' or 'process-graph'")
    view = lava_view(graph)
    if graded_input and route == "netx":
        raise KdsnnError("graded input runs on the process-graph route (kdsnn builds the first connection with "
                         "num_message_bits); drop route='netx'")
    if route is None:
        route = "process-graph" if graded_input else lava_route(view)
    if netx_path is not None and route != "netx":
        raise KdsnnError("a netx file can only be run by the netx route; this graph takes the process-graph route "
                         "(netx files hold sequential layers only)")
    if route == "netx":
        from .netx import run_netx

        plan = netx_plan(view)
        check_steps(view, torch.as_tensor(x), plan.timesteps)
        stage(estimate(plan, _samples(view, x), conv_model).line(_samples(view, x)), enabled=progress)
        return run_netx(view, plan, x, netx_path, progress, conv_model)
    from .graph import run_graph

    gplan: LavaGraphPlan = lava_graph_plan(view, graded_input)
    check_steps(view, torch.as_tensor(x), gplan.timesteps)
    stage(estimate(gplan, _samples(view, x), conv_model).line(_samples(view, x)), enabled=progress)
    return run_graph(view, gplan, x, progress, conv_model)


def _samples(view: GraphView, x: torch.Tensor) -> int:
    """The batch size of ``x`` (``[B, ...]`` or ``[T, B, ...]``)."""
    shape = torch.as_tensor(x).shape
    return int(shape[1] if len(shape) == len(view.input_shape) + 2 else shape[0])
