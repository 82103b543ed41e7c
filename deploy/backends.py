"""The backends that run a deployable graph, by name: the one list ``verify``, ``report``,
``simulate`` and ``doctor`` iterate over.

A backend says whether it is usable on this machine (:meth:`Backend.available`), whether it
can represent a graph exactly (:meth:`Backend.supports`, naming the node and the reason), and
runs a graph on inputs, returning logits, the spikes of every population it computes
(``[T, B, ...]``, or None when it only returns logits) and, for the reference simulator, its
counters. Adding a backend is one class and one line in :data:`BACKENDS`; commands, their help
texts and the neuron conformance test read the names from there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from kdsnn.export.graph_view import GraphView


@dataclass
class BackendRun:
    """What one backend produced on one batch."""

    logits: Any
    spikes: dict[str, Any] | None = None      # population → [T, B, ...]; None: logits only
    counters: Any = None                       # the reference simulator's SimResult
    note: str = ""                             # how it ran (e.g. Lava's route and time per sample)
    extra: dict[str, Any] = field(default_factory=dict)
    output: Any = None                         # the Output's sequence [T, B, ...]; None: not returned


class Backend:
    """Base: always available, supports every graph the view accepts, compares spikes."""

    name = ""
    aliases: tuple[str, ...] = ()  # earlier names ``--backend`` still accepts
    label = ""          # as verify lists it
    title = ""          # as doctor lists it
    slow = False        # verify and report run it on the first --slow-samples inputs only
    in_report = True    # report shows its accuracy
    chunk: int | None = 256  # report feeds it this many inputs at a time (None: it batches itself)
    float_dtype = "float32"  # the precision it computes float graphs in (integer graphs are exact in any)
    sequences = True    # it returns the output sequence and spikes (simulate --save needs them)
    output_sequence = True  # it returns the Output's own sequence; if not, --save needs a spiking last layer

    def available(self) -> tuple[bool, str]:
        return True, ""

    def supports(self, view: GraphView) -> tuple[bool, str]:
        return True, ""

    def usable_for(self, view: GraphView) -> tuple[bool, str]:
        """Both checks at once, the reason phrased for a table: "unavailable: …" or "cannot run this graph: …"."""
        ok, why = self.available()
        if not ok:
            return False, f"unavailable: {why}"
        ok, why = self.supports(view)
        return ok, ("" if ok else f"cannot run this graph: {why}")

    def prepare(self, graph: nir.NIRGraph | GraphView) -> Any:
        """What :meth:`run` takes as its graph when it runs many batches of one graph: the graph itself, or
        something built from it once (the reference simulator's plan)."""
        return graph

    def run(self, graph: nir.NIRGraph | GraphView, x: torch.Tensor, progress: bool = False,
            workdir: Path | None = None, timesteps: int | None = None) -> BackendRun:  # pragma: no cover - overridden
        """Run ``graph`` (or the view a caller holds of it) on ``x``; ``timesteps`` for graphs that do not
        record T (backends that need it recorded refuse in :meth:`supports`)."""
        raise NotImplementedError

    def report_label(self, bits: int) -> str:
        """The row name in the report's accuracy table."""
        return self.label

    def detail(self) -> str:
        """What ``doctor`` prints beside a usable backend."""
        return ""


class PyTorchGraph(Backend):
    """The graph runtime (:class:`~kdsnn.export.runtime.GraphSNN`): the reference every other backend is held to."""

    name, label, title = "pytorch", "PyTorch graph runtime", "PyTorch graph runtime"

    def run(self, graph, x, progress=False, workdir=None, timesteps=None) -> BackendRun:
        from kdsnn.export.runtime import GraphSNN

        snn = GraphSNN(graph, timesteps)
        with torch.no_grad():
            run = snn.run(x)
        return BackendRun(run.logits, {n: run.outputs[n] for n in snn.view.populations}, output=run.output_seq)

    def report_label(self, bits: int) -> str:
        return f"quantized {bits}-bit (PyTorch)"

    def detail(self) -> str:
        return f"torch {torch.__version__}; CUDA {'available' if torch.cuda.is_available() else 'not available'}"


class NirFile(Backend):
    """The graph written to a NIR file and read back: what a user's file holds runs the same."""

    name, label, title = "nir-file", "NIR file → PyTorch", "NIR file round trip"
    in_report = False

    def run(self, graph, x, progress=False, workdir=None, timesteps=None) -> BackendRun:
        import tempfile

        from kdsnn.export import nir_io

        with tempfile.TemporaryDirectory(prefix="kdsnn-nir-") as tmp:
            path = nir_io.write(GraphView.of(graph).graph, Path(workdir or tmp) / "student.nir")
            return PyTorchGraph().run(nir_io.read(path), x, timesteps=timesteps)


class Simulator(Backend):
    """The event-driven reference simulator, with SynOps and neuron counters."""

    name, label, title = "simulator", "reference simulator", "reference simulator"
    aliases = ("reference",)
    chunk = None  # simulate() splits the batch itself and its counters cover all of it
    float_dtype = "float64"

    def supports(self, view: GraphView) -> tuple[bool, str]:
        return simulator_supports(view)

    def prepare(self, graph: nir.NIRGraph) -> Any:
        from .simulator import Plan

        return Plan(graph)  # its tables are built once and reused by every batch

    def run(self, graph, x, progress=False, workdir=None, timesteps=None) -> BackendRun:
        from .simulator import simulate

        res = simulate(graph, x, timesteps=timesteps, progress=progress, batch_size=256)
        return BackendRun(res.logits, res.spikes, counters=res, output=res.output_seq)

    def report_label(self, bits: int) -> str:
        return "reference simulator (integer)"

    def detail(self) -> str:
        return "built in (event-driven, numba)"


def simulator_supports(view: GraphView) -> tuple[bool, str]:
    """Whether the reference simulator runs ``view``, and why not (the plan's own rule)."""
    from .simulator.plan import unsupported

    why = unsupported(view)
    return why is None, why or ""


class _Onnx(Backend):
    form = "unrolled"
    sequences = False  # logits only

    def supports(self, view: GraphView) -> tuple[bool, str]:
        from kdsnn.export.onnx.emit import onnx_supports

        return onnx_supports(view)

    def available(self) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return False, str(exc)
        return True, ""

    def run(self, graph, x, progress=False, workdir=None, timesteps=None) -> BackendRun:
        import tempfile

        from kdsnn.export.onnx import export_onnx, run_onnx

        view = GraphView.of(graph)
        sequence = torch.as_tensor(x).dim() == len(view.input_shape) + 2  # [T, B, ...]
        if self.form == "unrolled" and view.encoding == "direct" and sequence:
            # a [T, B, ...] sequence (e.g. spikes, or a foreign graph's input over T): unroll with one input per step.
            # An integer graph's analog input is quantized per step as GraphSNN does (round(x / input_scale) in
            # float64), here, since the retyped graph below takes its input as given.
            from kdsnn.export.graph import set_meta

            if view.integer and view.input_scale:
                x = np.round(np.asarray(x, dtype=np.float64) / view.input_scale).astype(np.float32)

            g = view.graph
            g = nir.NIRGraph(nodes=dict(g.nodes), edges=list(g.edges), metadata=dict(g.metadata or {}),
                             type_check=False)
            set_meta(g, {**view.meta, "encoding": "bernoulli", "timesteps": int(torch.as_tensor(x).shape[0])})
            view = GraphView.of(g)
        feed = x
        if view.encoding == "bernoulli" and not sequence:
            from kdsnn.export.runtime import GraphSNN
            feed = GraphSNN(view).prepare_input(x).float()  # spikes are sampled outside the model
        with tempfile.TemporaryDirectory(prefix="kdsnn-onnx-") as tmp:
            stem = "student" if self.form == "unrolled" else "student_step"
            path = export_onnx(view, Path(workdir or tmp) / f"{stem}.onnx", self.form)
            return BackendRun(run_onnx(path, feed))

    def detail(self) -> str:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"


class Onnx(_Onnx):
    name, label, title = "onnx", "ONNX (onnxruntime)", "ONNX (onnxruntime)"


class OnnxStep(_Onnx):
    name, label, title, form = "onnx-step", "ONNX step (onnxruntime)", "ONNX step (onnxruntime)", "step"
    in_report = False


class Lava(Backend):
    """Lava's bit-accurate Loihi 2 simulator (fixed_pt): netx file or process graph."""

    name, label, title = "lava", "Lava (Loihi 2 sim, fixed_pt)", "Lava (Loihi 2 sim)"
    slow, chunk = True, None  # one Lava runtime streams all its samples
    output_sequence = False  # the spikes of its populations only

    def available(self) -> tuple[bool, str]:
        from .lava import lava_available

        ok, why = lava_available()
        return ok, ("" if ok else f"{why}; run scripts/setup_env.sh (installs Lava and applies its Python 3.11 fix)")

    def supports(self, view: GraphView) -> tuple[bool, str]:
        from .lava import lava_supports

        if not view.integer and all(m.kind == "IF" for m in view.models.values()):
            return False, "Lava runs integer graphs: quantize first (`kdsnn quantize` or `kdsnn export --format nir`)"
        return lava_supports(view.graph)  # a float leaky graph: the planner names the node

    def run(self, graph, x, progress=False, workdir=None, timesteps=None) -> BackendRun:
        from .lava import lava_route, run_lava

        path = None
        if workdir is not None and lava_route(graph) == "netx":
            from kdsnn.export.netx import export_netx
            path = export_netx(graph, Path(workdir) / "student.net")
        run = run_lava(graph, x, netx_path=path, progress=progress)
        return BackendRun(run.logits, {k: torch.as_tensor(v) for k, v in run.spikes.items()},
                          note=f"{getattr(run, 'route', 'netx')} route; first layer on the host; "
                               f"{run.per_sample_s * 1000:.0f} ms per sample",
                          extra={"seconds_per_sample": run.per_sample_s, "startup_seconds": run.startup_s})

    def report_label(self, bits: int) -> str:
        return "Lava (Loihi 2 sim)"

    def detail(self) -> str:
        import importlib.metadata as md

        return f"lava-nc {md.version('lava-nc')}, lava-dl {md.version('lava-dl')}"


class Norse(Backend):
    """Norse 1.1's NIR reader: an independent implementation of NIR's IF."""

    name, label, title = "norse", "Norse 1.1 (from_nir)", "Norse (independent NIR reader)"
    slow = True
    output_sequence = False  # the spikes of its populations only

    def available(self) -> tuple[bool, str]:
        from .norse_backend import norse_available

        return norse_available()

    def supports(self, view: GraphView) -> tuple[bool, str]:
        from .norse_backend import norse_supports

        return norse_supports(view)

    def run(self, graph, x, progress=False, workdir=None, timesteps=None) -> BackendRun:
        from .norse_backend import run_norse

        logits, spikes = run_norse(graph, x)
        return BackendRun(logits, spikes)

    def detail(self) -> str:
        import importlib.metadata as md

        return f"norse {md.version('norse')}"


BACKENDS: dict[str, Backend] = {b.name: b for b in (PyTorchGraph(), NirFile(), Simulator(), Onnx(), OnnxStep(),
                                                     Lava(), Norse())}
BASELINE = "pytorch"  # the graph runtime: verify compares every other backend with it


def get(name: str) -> Backend:
    """Backend ``name`` (or one of its earlier names), or a one-line error listing the known ones."""
    from kdsnn.errors import KdsnnError

    for backend in BACKENDS.values():
        if name == backend.name or name in backend.aliases:
            return backend
    raise KdsnnError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def names_text(slow_only: bool = False) -> str:
    """The backends' names for help texts (earlier names in brackets); ``slow_only``: those --slow-samples limits."""
    return ", ".join(b.name + (f" (or {', '.join(b.aliases)})" if b.aliases else "")
                     for b in BACKENDS.values() if b.slow or not slow_only)


def population_spikes(run: BackendRun) -> dict[str, np.ndarray]:
    """Spikes as numpy arrays (for comparisons and summaries)."""
    return {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
            for k, v in (run.spikes or {}).items()}
