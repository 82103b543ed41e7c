"""What the graph commands (simulate, verify FILE.nir, report FILE.nir) share: how a NIR file is
read (``--dt``, ``--legacy-reset``), which inputs it is fed (a data set, ``--inputs FILE.npy``
with ``--labels``, or Bernoulli spikes ``--spike-rate R``), and ``simulate --save``.

Inputs reach every backend as the graph's Input receives them. Images feed a flat Input when
the sizes match (a ``[64]`` Input from 1×8×8 digits). A graph that records no T (another
tool's) is fed ``[T, B, ...]``: the analog batch repeated ``--timesteps`` times, or the
``[T, B, ...]`` array the user gave, so every backend runs the same T.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import nir
import numpy as np
import torch

from kdsnn.arg_types import seed
from kdsnn.errors import KdsnnError
from kdsnn.export.graph_view import GraphView


def add_reading_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dt", type=float, default=None,
                   help="time step the file's neurons are meant with (default: the file's metadata, else 1)")
    p.add_argument("--legacy-reset", "--legacy-if-reset", dest="legacy_if_reset", default=None,
                   choices=("zero", "subtract"),
                   help="IF, LIF and CubaLIF reset of a file written by nir < 1.0.6 (default: subtract, that "
                        "version's spec); 'zero' for writers that meant reset to zero (Norse 1.1, zero-reset Sinabs); "
                        "--legacy-if-reset is the earlier name")


def add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", default=None, help="your own inputs: .npy [N, ...] (analog) or [T, N, ...] (spikes)")
    p.add_argument("--labels", default=None, help=".npy of N integer labels for --inputs (accuracy)")
    p.add_argument("--spike-rate", type=float, default=None,
                   help="feed Bernoulli spikes at this rate per input and step (needs --timesteps for foreign graphs)")
    p.add_argument("--seed", type=seed, default=0, help="seed of --spike-rate's spikes")


def read_graph(a: argparse.Namespace, path: str | None = None) -> nir.NIRGraph:
    """The NIR file of the command, read with its reading options."""
    from kdsnn.export import nir_io

    return nir_io.read(path or a.model, getattr(a, "dt", None), getattr(a, "legacy_if_reset", None))


def _timesteps(view: GraphView, a: argparse.Namespace) -> int:
    t = getattr(a, "timesteps", None) or view.timesteps
    if not t:
        raise KdsnnError("the graph does not record its number of time steps (written by another tool): "
                         "give --timesteps T, or [T, N, ...] --inputs")
    if t < 1:
        raise KdsnnError(f"--timesteps must be at least 1, got {t}")
    return int(t)


def _fit_steps(x: torch.Tensor, view: GraphView, what: str) -> torch.Tensor:
    """``[T, B, ...]`` with each sample reshaped as :func:`_fit` does."""
    return _fit(x.reshape(-1, *x.shape[2:]), view, what).reshape(*x.shape[:2], *view.input_shape)


def _fit(x: torch.Tensor, view: GraphView, what: str) -> torch.Tensor:
    """``[B, ...]`` reshaped to the graph's Input where only the layout differs (images into a flat Input)."""
    shape = view.input_shape
    if tuple(x.shape[1:]) == shape:
        return x
    if int(np.prod(x.shape[1:])) == int(np.prod(shape)):
        return x.reshape(x.shape[0], *shape)
    raise KdsnnError(f"{what} have shape {list(x.shape[1:])} per sample ({int(np.prod(x.shape[1:]))} values); "
                     f"the graph's Input takes {list(shape)}")


def graph_batch(view: GraphView, a: argparse.Namespace, samples: int) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """The inputs (``[B, ...]``, or ``[T, B, ...]`` for graphs without T), their labels (or None),
    and where they come from, in words."""
    from kdsnn import data

    if sum(v is not None for v in (a.inputs, a.spike_rate)) > 1:
        raise KdsnnError("give either --inputs or --spike-rate, not both")
    if a.labels is not None and a.inputs is None:
        raise KdsnnError("--labels goes with --inputs")
    if a.inputs is not None:
        x, y, what = _user_inputs(view, a)
    elif a.spike_rate is not None:
        if not 0 <= a.spike_rate <= 1:
            raise KdsnnError(f"--spike-rate must be a probability in [0, 1], got {a.spike_rate}")
        if samples < 1:
            raise KdsnnError(f"need at least 1 input sample, got {samples} (--samples must be >= 1)")
        t = _timesteps(view, a)
        _require_inputs(t * samples * int(np.prod(view.input_shape)), f"{samples} spike inputs over {t} steps")
        gen = torch.Generator().manual_seed(int(a.seed))
        x = torch.bernoulli(torch.full((t, samples, *view.input_shape), float(a.spike_rate)), generator=gen)
        return x, None, f"{samples} Bernoulli spike inputs at rate {a.spike_rate:g} (seed {a.seed})"
    else:
        dataset = getattr(a, "dataset", None) or view.meta.get("dataset")
        if not dataset:
            raise KdsnnError(f"{a.model} does not record its data set (written by another tool?): pass --dataset, "
                             "--inputs FILE.npy or --spike-rate R")
        x, y = data.sample_batch(dataset, samples, getattr(a, "data_root", None),
                                 timesteps=view.timesteps or getattr(a, "timesteps", None))
        if data.event_data.is_event_dataset(dataset):  # [T, B, 2, H, W] event frames, binned to the graph's T
            x, what = _fit_steps(x, view, f"{dataset} event frames"), f"{x.shape[1]} {dataset} test recordings"
        else:
            x, what = _fit(x, view, f"{dataset} images"), f"{len(x)} {dataset} test samples"
        classes, outputs = data.spec(dataset).classes, view.size(view.output)
        if classes > outputs:
            raise KdsnnError(f"{dataset} has {classes} classes but the graph has {outputs} outputs: labels "
                             f"{outputs}..{classes - 1} could never be predicted; pass the data set it was trained on")
    if x.dim() == len(view.input_shape) + 1 and not view.timesteps:
        t = _timesteps(view, a)
        _require_inputs(t * x.numel(), f"{len(x)} inputs repeated over {t} steps")
        x = x.unsqueeze(0).expand(t, *x.shape).contiguous()
    return x, y, what


def _require_inputs(values: int, what: str) -> None:
    """The budget for an input array of ``values`` float32 values (before it is made)."""
    from kdsnn.budget import require

    require(4 * values, what, "use fewer --samples or time steps")


def _user_inputs(view: GraphView, a: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    from kdsnn import data

    classes = view.size(view.output)
    x, _ = data.load_inputs(a.inputs)
    shape = view.input_shape
    if x.dim() == len(shape) + 2 and x.shape[0] > 0 and int(np.prod(x.shape[2:])) == int(np.prod(shape)):
        if x.shape[1] == 0:
            raise KdsnnError(f"--inputs {a.inputs} holds no samples (shape {list(x.shape)}: [T, N, ...] with N = 0)")
        x = x.reshape(x.shape[0], x.shape[1], *shape)  # [T, N, ...]: a sequence (e.g. spikes)
        t = getattr(a, "timesteps", None)
        if t and t != x.shape[0]:
            raise KdsnnError(f"--inputs {a.inputs} holds {x.shape[0]} steps but --timesteps {t} was given")
        y = _labels(a.labels, x.shape[1], classes) if a.labels else None
        return x, y, f"{x.shape[1]} input sequences of {x.shape[0]} steps from {a.inputs}"
    x = _fit(x, view, f"--inputs {a.inputs}")
    y = _labels(a.labels, len(x), classes) if a.labels else None
    return x, y, f"{len(x)} inputs from {a.inputs}"


def _labels(path: str, n: int, classes: int) -> torch.Tensor:
    """Labels of ``n`` inputs from ``path``: one integer class index below ``classes`` each."""
    from kdsnn.npy_files import read_npy

    lab = read_npy(path, "--labels")
    if lab.ndim != 1 or len(lab) != n:
        raise KdsnnError(f"--labels {path} has shape {list(lab.shape)}; it must hold one label per input: [{n}]")
    if lab.dtype.kind == "f" and not (np.isfinite(lab).all() and (lab == np.round(lab)).all()):
        raise KdsnnError(f"--labels {path} must hold integer class indices, not {lab.dtype} values like {lab[0]!r}")
    ints = lab.astype(np.int64)
    if ints.min() < 0 or ints.max() >= classes:
        raise KdsnnError(f"--labels {path} holds labels from {ints.min()} to {ints.max()}; the graph has {classes} "
                         f"outputs (class indices 0..{classes - 1})")
    return torch.from_numpy(ints)


def accuracy(logits: torch.Tensor, y: torch.Tensor | None) -> float | None:
    if y is None:
        return None
    return float((torch.as_tensor(logits).argmax(1) == y).double().mean())


def check_save(a: argparse.Namespace, backend, view: GraphView | None = None, x: torch.Tensor | None = None,
               steps: int | None = None) -> None:
    """``simulate --save``: before reading the graph, the path (a new .npz, none of the inputs, writable; an
    existing file only with --force) and the backend (it must return sequences); once the inputs are known,
    the memory of keeping every input's spikes and Output sequence until they are written."""
    from kdsnn.budget import require
    from kdsnn.outputs import check_file, require_path

    if view is None:
        if require_path(a.save, "--save", ".npz file to write").suffix != ".npz":
            raise KdsnnError(f"--save {a.save}: give a file name ending in .npz")
        if not backend.sequences:
            raise KdsnnError(f"--save needs the output sequence and spikes, which backend {a.backend} does not "
                             "return (use --backend pytorch or simulator)")
        check_file(a.save, "--save", {"the model": a.model, "--inputs": a.inputs, "--labels": a.labels,
                                      "--config": a.config}, a.force)
        return
    from .batched import count

    if not backend.output_sequence and not view.spiking_output:
        raise KdsnnError(f"--save needs the output sequence; backend {a.backend} returns only spikes, and this graph's "
                         f"readout is the last layer's {view.readout} (use --backend pytorch or simulator)")
    values = sum(view.size(p) for p, m in view.models.items() if m.spiking) + view.size(view.output)
    require(2 * 8 * values * int(steps or 1) * count(x, view), f"keeping the spikes and outputs of {count(x, view)} "
            "inputs for --save", "use fewer --samples, or drop --save")


def save_run(path: str | Path, output: torch.Tensor | np.ndarray, spikes: dict[str, np.ndarray]) -> Path:
    """``simulate --save``: the output sequence under ``output`` ([T, B, ...]) and every population's
    spikes under its node name, written atomically."""
    from kdsnn.atomic import atomic_path

    path = Path(path)
    if path.suffix != ".npz":
        raise KdsnnError(f"--save {path}: give a file name ending in .npz")
    if "output" in spikes:
        raise KdsnnError("a population is named 'output', which --save keeps for the output sequence")
    arrays = {"output": np.asarray(output.detach().cpu().numpy() if isinstance(output, torch.Tensor) else output),
              **{k: np.asarray(v) for k, v in spikes.items()}}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path
