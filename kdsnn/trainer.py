"""Training loop for teachers (``train-teacher``) and students (``distill``).

Deterministic per epoch (data order and random draws are seeded from ``seed`` and the epoch),
so a run resumed from its last checkpoint ends with the same weights as an uninterrupted one.
Options left unset (None) come from the run's recipe (kdsnn/recipes/: the data set's, or
``recipe``), which the checkpoint records.
Under ``torchrun`` (``WORLD_SIZE > 1``) it uses DistributedDataParallel: gloo on CPU, nccl on
CUDA, with no other change to the command.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from . import checkpoint, data, optim, recipes, run_folder
from .atomic import write_text
from .budget import fitting
from .distill import DEFAULT_METHOD, build_loss, check_method
from .distributed import Distributed
from .errors import KdsnnError
from .folder_lock import folder_lock
from .memory import keep_freed_memory
from .models import build_model, is_student
from .models.output import ModelOutput
from .models.sizing import require_fits
from .neurons import check_options
from .progress import progress

EVAL_BATCH = 256


@dataclass
class TrainConfig:
    """Every option of ``train-teacher`` and ``distill`` (CLI flags and TOML keys share names).

    The options a recipe sets (``recipes.OPTIONS``: epochs, batch size, optimizer, lr, warm-up,
    schedule, weight decay, augmentation, label smoothing; for students T, α and τ) default to
    None: the recipe's value. Anything given here overrides the recipe."""

    out: str = "runs/run"
    dataset: str = "digits"
    data_root: str | None = None
    arch: str = "mnist_cnn"
    recipe: str | None = None  # a shipped recipe's name or a .toml file; None: the data set's recipe
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    warmup_epochs: float | None = None
    label_smoothing: float | None = None
    augment: str | None = None
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    force: bool = False  # start over in an --out that holds an earlier run's checkpoint
    stop_after: int | None = None
    max_batches: int | None = None  # train on at most this many batches per epoch (a quick check that a run works)
    workers: int = 0
    validate: bool = False  # train on 80 % of the training split, report accuracy on the other 20 %
    # student only
    teacher: str | None = None
    kd: str = DEFAULT_METHOD
    timesteps: int | None = None
    width: float = 1.0
    alpha: float | None = None
    temperature: float | None = None
    encoding: str = "direct"
    readout: str = "membrane"
    threshold: float = 1.0
    reset: str = "hard"
    surrogate: str = "sigmoid"
    surrogate_param: float | None = None
    detach_reset: bool = False
    quiet: bool = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise KdsnnError(f"--device {name} asked for, but no CUDA device is available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise KdsnnError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None


class TrainStep(nn.Module):
    """Model and loss together, so DDP synchronizes the loss's connectors too."""

    def __init__(self, model: nn.Module, loss: nn.Module | None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.label_smoothing = label_smoothing

    def forward(self, x: torch.Tensor, y: torch.Tensor, teacher_out: ModelOutput | None):
        out = self.model(x)
        if self.loss is None:
            loss = nn.functional.cross_entropy(out.logits, y, label_smoothing=self.label_smoothing)
            return loss, out.logits
        loss, _ = self.loss(out, teacher_out, y)
        return loss, out.logits


@torch.no_grad()
def evaluate(model: nn.Module, dataset, device: torch.device, batch_size: int = EVAL_BATCH,
             desc: str | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` (``batch_size`` samples at a time: memory does not
    grow with the data set)."""
    model.eval()
    loader = data.loader(dataset, batch_size, shuffle=False)
    correct = total = 0
    for x, y in progress(loader, desc=desc, leave=False, enabled=desc is not None):
        logits = model(x.to(device)).logits
        correct += int((logits.argmax(1).cpu() == y).sum())
        total += len(y)
    return correct / max(total, 1)


def _model_spec(cfg: TrainConfig, ds: data.DataSpec) -> dict[str, Any]:
    spec: dict[str, Any] = {"arch": cfg.arch, "input_shape": list(ds.input_shape), "classes": ds.classes}
    if is_student(cfg.arch):
        spec.update(timesteps=cfg.timesteps, encoding=cfg.encoding, readout=cfg.readout, width=cfg.width,
                    neuron={"threshold": cfg.threshold, "reset": cfg.reset, "v_reset": 0.0, "surrogate": cfg.surrogate,
                            "surrogate_param": cfg.surrogate_param, "detach_reset": cfg.detach_reset})
    return spec


@dataclass
class _Run:
    """What the steps of one training run share (built by :func:`train`, step by step)."""

    cfg: TrainConfig
    kind: str
    ds: data.DataSpec
    device: torch.device
    ddp: Distributed
    split: str  # the split every reported accuracy is measured on: test, or val with --validate
    recipe: recipes.Recipe | None = None
    train_set: Any = None
    test_set: Any = None
    spec: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None
    teacher: nn.Module | None = None
    step_module: TrainStep | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    start_epoch: int = 0
    eval_batch: int = EVAL_BATCH  # what fits in memory at once, at most EVAL_BATCH

    @property
    def out_dir(self) -> Path:
        return Path(self.cfg.out)

    @property
    def ckpt_path(self) -> Path:
        return self.out_dir / run_folder.CHECKPOINT

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / run_folder.METRICS


def train(cfg: TrainConfig, kind: str) -> dict[str, Any]:
    """Run ``train-teacher`` (kind='teacher') or ``distill`` (kind='student'); returns the result."""
    cfg, recipe = recipes.apply(cfg, kind)
    _check_options(cfg, kind)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 writes --out
    with folder_lock(cfg.out, "training run") if main_rank else contextlib.nullcontext():
        run = _set_up(cfg, kind)
        run.recipe = recipe
        if not cfg.quiet and run.ddp.main:
            print(f"recipe {recipe.name}: {recipes.summary(vars(cfg), cfg.kd if kind == 'student' else None)}",
                  flush=True)
        _load_data(run)
        _build_model(run)
        loss_fn = _build_teacher_and_loss(run) if kind == "student" else None
        _build_optimizer(run, loss_fn)
        _resume(run)
        result = _epochs(run)
        return _finish(run, result)


def _check_options(cfg: TrainConfig, kind: str) -> None:
    """Refuse a wrong kind of architecture, bad numbers, or an --out that cannot be a folder."""
    if kind == "teacher" and is_student(cfg.arch):
        raise KdsnnError(f"{cfg.arch} is a student SNN; train it with `kdsnn distill`")
    if kind == "student" and not is_student(cfg.arch):
        from .models import STUDENTS
        raise KdsnnError(f"{cfg.arch} is not a student SNN; students: {', '.join(STUDENTS)}")
    recipes.check_values({k: v for k, v in vars(cfg).items() if k in recipes.CHECKED and v is not None}, "")
    optim.check(cfg.optimizer, cfg.schedule, cfg.warmup_epochs, cfg.epochs)
    if data.event_data.is_event_dataset(cfg.dataset) and cfg.timesteps is None:
        cfg.timesteps = 4  # a teacher's event frames, binned as the students' recipes bin them (T = 4)
    if (kind == "student" or data.event_data.is_event_dataset(cfg.dataset)) and cfg.timesteps < 1:
        raise KdsnnError(f"--timesteps must be at least 1, got {cfg.timesteps}")
    if kind == "student":
        check_options(cfg.threshold, cfg.surrogate_param)
    if kind == "student" and data.event_data.is_event_dataset(cfg.dataset):
        if cfg.encoding == "bernoulli":
            raise KdsnnError(f"{cfg.dataset} is event recordings, already spikes: drop --encoding bernoulli "
                             "(the student takes the events as they are, --encoding events)")
        cfg.encoding = "events"  # the only encoding event frames have: the first layer receives the events
    elif kind == "student" and cfg.encoding == "events":
        raise KdsnnError(f"--encoding events needs an event data set (nmnist, dvsgesture); {cfg.dataset} holds "
                         "images: use --encoding direct or bernoulli")
    run_folder.check(cfg.out, cfg.teacher if kind == "student" else None, cfg.resume, cfg.force)


def _set_up(cfg: TrainConfig, kind: str) -> _Run:
    """Data spec, device and the distributed group."""
    ds = data.spec(cfg.dataset)
    ddp = Distributed(resolve_device(cfg.device))
    if ddp.device.type == "cpu":
        keep_freed_memory()  # T-folded maps exceed glibc's mmap threshold: reuse them (kdsnn/memory.py)
    return _Run(cfg, kind, ds, ddp.device, ddp, split="val" if cfg.validate else "test")


def _load_data(run: _Run) -> None:
    cfg = run.cfg
    run.train_set = data.load(cfg.dataset, "fit" if cfg.validate else "train", cfg.data_root, timesteps=cfg.timesteps,
                              augment=cfg.augment)
    run.test_set = data.load(cfg.dataset, run.split, cfg.data_root, timesteps=cfg.timesteps)
    if cfg.max_batches is not None:  # a quick check: evaluate on as many images as it trains on per epoch
        run.test_set = Subset(run.test_set, range(min(len(run.test_set), cfg.max_batches * cfg.batch_size)))


def _build_model(run: _Run) -> None:
    """The model to train, built from the seed (the spec is what its checkpoint records)."""
    run.spec = _model_spec(run.cfg, run.ds)
    student = {k: v for k, v in run.spec.items() if k not in ("arch", "input_shape", "classes")}
    steps = run.cfg.timesteps if run.kind == "student" else 1
    size = require_fits(run.cfg.arch, run.ds.input_shape, run.ds.classes, run.cfg.batch_size, steps, True,
                        f"training on {run.cfg.dataset}", run.device, **student)
    run.eval_batch = max(1, fitting(size.bytes(1, steps, False), EVAL_BATCH, run.device))
    torch.manual_seed(run.cfg.seed)
    run.model = build_model(**{k: (tuple(v) if k == "input_shape" else v) for k, v in run.spec.items()}).to(run.device)
    if hasattr(run.model, "set_layout"):
        run.model.set_layout(run.device.type)


def _build_teacher_and_loss(run: _Run) -> nn.Module:
    """A student's frozen teacher (if any) and its distillation loss."""
    cfg, ds, device = run.cfg, run.ds, run.device
    if cfg.teacher and not check_method(cfg.kd).needs_teacher:
        if not cfg.quiet and run.ddp.main:  # a script looping over methods passes one teacher to all of them
            print(f"note: --kd {cfg.kd} trains without a teacher; --teacher {cfg.teacher} is not loaded or run",
                  flush=True)
    elif cfg.teacher:
        teacher, t_ckpt = checkpoint.load_model(cfg.teacher, device)
        t_spec = checkpoint.model_spec(t_ckpt)
        if tuple(t_spec["input_shape"]) != ds.input_shape or t_spec["classes"] != ds.classes:
            raise KdsnnError(f"teacher {cfg.teacher} was trained on {t_spec['input_shape']} inputs / "
                             f"{t_spec['classes']} classes, not {cfg.dataset}'s {list(ds.input_shape)} / {ds.classes}")
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        run.teacher = teacher
    example = next(iter(data.loader(run.train_set, 2)))[0].to(device)
    return build_loss(cfg.kd, run.model, run.teacher, example, cfg.alpha, cfg.temperature, cfg.label_smoothing)


def _build_optimizer(run: _Run, loss_fn: nn.Module | None) -> None:
    cfg = run.cfg
    run.step_module = TrainStep(run.model, loss_fn, cfg.label_smoothing).to(run.device)
    run.optimizer = optim.build_optimizer(run.step_module.parameters(), cfg.optimizer, cfg.lr, cfg.momentum,
                                          cfg.weight_decay, cfg.nesterov)
    steps = min(len(_epoch_loader(run, 0)), cfg.max_batches or sys.maxsize)
    run.scheduler = optim.build_schedule(run.optimizer, cfg.schedule, cfg.epochs, cfg.warmup_epochs, steps)


def _resume(run: _Run) -> None:
    """With --resume, continue from the last checkpoint of the same run (the metrics it recorded must be
    readable); with --force, say that an earlier run's checkpoint is being replaced."""
    cfg, ckpt_path = run.cfg, run.ckpt_path
    if cfg.resume and ckpt_path.exists():
        state = checkpoint.load(ckpt_path, run.device)
        if state.get("model_spec") != run.spec or state.get("kind") != run.kind or state.get("epochs") != cfg.epochs:
            raise KdsnnError(f"--resume: {ckpt_path} belongs to a different run (arch, shapes, kind or epochs differ); "
                             "use another --out or drop --resume")
        finished = state.get("epoch", 0) >= cfg.epochs  # nothing left to train: its optimizer state is not needed
        needed = ("train_state", "epoch") if finished else ("train_state", "optimizer", "scheduler", "epoch")
        missing = [k for k in needed if k not in state]
        if missing:
            raise KdsnnError(f"--resume: {ckpt_path} lacks {', '.join(missing)} (not written by a training run); "
                             "pass --force to start over")
        if not finished:
            recipes.check_resumable(state.get("config", {}), cfg, ckpt_path)
        run_folder.read_metrics(run.metrics_path, state["epoch"])  # a damaged line fails now, not after an epoch
        run.step_module.load_state_dict(state["train_state"])
        if not finished:
            run.optimizer.load_state_dict(state["optimizer"])
            run.scheduler.load_state_dict(state["scheduler"])
        run.start_epoch = state["epoch"]
    elif ckpt_path.exists() and cfg.force and run.ddp.main:
        print(f"note: replacing {ckpt_path} (--force)")


def _epochs(run: _Run) -> dict[str, Any]:
    """The epoch loop: train, evaluate, write metrics and checkpoint after every epoch."""
    cfg, ddp = run.cfg, run.ddp
    runner: nn.Module = run.step_module
    if ddp.world > 1:
        runner = nn.parallel.DistributedDataParallel(
            run.step_module, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    result: dict[str, Any] = {"checkpoint": str(run.ckpt_path), "epoch": run.start_epoch}
    epochs_run = 0
    for epoch in range(run.start_epoch, cfg.epochs):
        if cfg.stop_after is not None and epochs_run >= cfg.stop_after:
            break
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        total_loss, correct, seen = _train_epoch(run, runner, _epoch_loader(run, epoch), epoch)
        epochs_run += 1
        ddp.sync_buffers(run.step_module)
        acc = evaluate(run.model, run.test_set, run.device, run.eval_batch)
        record = {"epoch": epoch + 1, "train_loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1),
                  f"{run.split}_accuracy": acc, "lr": run.optimizer.param_groups[0]["lr"]}
        if ddp.main:
            _save_epoch(run, epoch, record, acc)
        result.update(accuracy=acc, epoch=epoch + 1)
        ddp.barrier()
    return result


def _epoch_loader(run: _Run, epoch: int) -> DataLoader:
    """This epoch's shuffled loader, seeded from (seed, epoch) so a resumed run sees the same order."""
    cfg, ddp = run.cfg, run.ddp
    if ddp.world > 1:
        sampler = DistributedSampler(run.train_set, ddp.world, ddp.rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
        return data.loader(run.train_set, cfg.batch_size, sampler=sampler, num_workers=cfg.workers)
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    return data.loader(run.train_set, cfg.batch_size, shuffle=True, generator=gen, num_workers=cfg.workers)


def _train_epoch(run: _Run, runner: nn.Module, loader: DataLoader, epoch: int) -> tuple[float, int, int]:
    """One pass over ``loader``; returns (summed loss, correct, seen)."""
    cfg, device, teacher = run.cfg, run.device, run.teacher
    runner.train()
    total_loss = correct = seen = 0
    bar = progress(loader, desc=f"{run.kind} {cfg.arch} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   enabled=not cfg.quiet and run.ddp.main)
    for batch, (x, y) in enumerate(bar):
        if cfg.max_batches is not None and batch >= cfg.max_batches:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        t_out = None
        if teacher is not None:
            with torch.no_grad():
                t_out = teacher(x)
        loss, logits = runner(x, y, t_out)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()  # per iteration: warm-up and schedule (kdsnn/optim.py)
        total_loss += float(loss.detach()) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}")
    return total_loss, correct, seen


def _save_epoch(run: _Run, epoch: int, record: dict[str, Any], acc: float) -> None:
    """Append the epoch's metrics (dropping lines of epochs a resume redoes) and write the checkpoint."""
    cfg, metrics_path = run.cfg, run.metrics_path
    kept = run_folder.read_metrics(metrics_path, epoch)
    write_text(metrics_path, "\n".join(kept + [json.dumps(record)]) + "\n")
    checkpoint.save(run.ckpt_path, {
        "kind": run.kind, "model_spec": run.spec, "dataset": cfg.dataset, "preprocessing": run.ds.preprocessing(),
        "model": run.model.state_dict(), "train_state": run.step_module.state_dict(),
        "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "epoch": epoch + 1, "epochs": cfg.epochs, f"{run.split}_accuracy": acc,
        "config": asdict(cfg), "recipe": run.recipe.describe(),
    })
    if not cfg.quiet:
        tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}  loss {record['train_loss']:.4f}  "
                   f"{run.split} accuracy {acc * 100:.2f} %")


def _finish(run: _Run, result: dict[str, Any]) -> dict[str, Any]:
    """The run's result: final accuracy, what was trained, and (under torchrun) replica agreement."""
    cfg, ddp = run.cfg, run.ddp
    if "accuracy" not in result:
        result["accuracy"] = evaluate(run.model, run.test_set, run.device, run.eval_batch)
    result.update(arch=cfg.arch, dataset=cfg.dataset, kind=run.kind, finished=result["epoch"] >= cfg.epochs,
                  split=run.split, recipe=run.recipe.name)
    if run.kind == "student":
        result.update(kd=cfg.kd, timesteps=cfg.timesteps)
    if ddp.world > 1:
        result.update(world_size=ddp.world, rank=ddp.rank, replicas_identical=ddp.replicas_identical(run.step_module))
    ddp.close()
    return result
