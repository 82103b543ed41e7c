"""The ``kdsnn`` command line. Every user error ends in one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from .arg_types import nonnegative_int, positive_int, seed
from .errors import KdsnnError

Handler = Callable[[argparse.Namespace], int]
RESUME = {"train-teacher": "the same command with --resume continues from the last checkpoint",
          "distill": "the same command with --resume continues from the last checkpoint",
          "demo": "running the demo again continues its training from the last checkpoints"}


EXAMPLES = {
    "train-teacher": ["kdsnn train-teacher --arch mnist_cnn --epochs 15",
                      "kdsnn train-teacher --dataset cifar10 --data-root ~/data --arch resnet18 --out runs/t-cifar"],
    "distill": ["kdsnn distill --teacher runs/teacher-mnist_cnn-digits/checkpoint.pt --kd response",
                "kdsnn distill --arch snn_resnet14 --kd none --dataset fake:3x32x32:10 --epochs 1",
                "kdsnn distill --teacher T.pt --timesteps 2 --reset soft --resume"],
    "evaluate": ["kdsnn evaluate runs/demo/student/checkpoint.pt",
                 "kdsnn evaluate runs/demo/student/checkpoint.pt --noise gaussian:0.2"],
    "quantize": ["kdsnn quantize --checkpoint runs/demo/student/checkpoint.pt --out student_int8.nir",
                 "kdsnn quantize --checkpoint CKPT --bits 4 --float --out student_fq4.nir"],
    "export": ["kdsnn export --checkpoint runs/demo/student/checkpoint.pt --format onnx --out student.onnx",
               "kdsnn export --checkpoint CKPT --for speck --out student_speck.nir"],
    "inspect": ["kdsnn inspect student_int8.nir", "kdsnn inspect other_tool.nir --dt 0.0001"],
    "simulate": ["kdsnn simulate student_int8.nir", "kdsnn simulate student_int8.nir --backend lava --samples 8",
                 "kdsnn simulate net.nir --spike-rate 0.1 --timesteps 20 --save run.npz"],
    "doctor": ["kdsnn doctor", "kdsnn doctor --json"],
    "verify": ["kdsnn verify runs/demo/student/checkpoint.pt", "kdsnn verify student_int8.nir --samples 32",
               "kdsnn verify other_tool.nir --spike-rate 0.2 --timesteps 10"],
    "report": ["kdsnn report runs/demo/student/checkpoint.pt --out runs/report",
               "kdsnn report student_int8.nir --out runs/report-nir --samples 200",
               "kdsnn report CKPT --out runs/r --target loihi2 --profile loihi --slow-samples 8"],
    "map": ["kdsnn map runs/demo/student/checkpoint.pt", "kdsnn map student_int8.nir --target loihi2 --cores",
            "kdsnn map CKPT --target my_chip.toml --samples 256 --json"],
    "demo": ["kdsnn demo", "kdsnn demo --out runs/demo2 --student-epochs 30"],
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2) like every other error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"kdsnn: error: {message} (see `{self.prog} --help`)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help line ends with its default (where it has one and does not say it already);
    the examples below keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.help == argparse.SUPPRESS:
            return text
        shown = action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action.default, bool)
        if shown and action.option_strings and "default" not in text:
            text = f"{text} (default: %(default)s)" if text else "default: %(default)s"
        return text


COMMON_HELP = {"--data-root": "folder in torchvision's layout (mnist/cifar)",
               "--bits": "weight bits of the integer deployment", "--momentum": "SGD momentum",
               "--weight-decay": "L2 weight decay", "--seed": "random seed", "--epochs": "training epochs",
               "--batch-size": "samples per training batch", "--lr": "learning rate (SGD, cosine schedule)",
               "--timesteps": "time steps T of the student", "--temperature": "distillation temperature",
               "--detach-reset": "no gradient through the reset", "--checkpoint": "a checkpoint (kdsnn distill)",
               "--dataset": "data set of the inputs (default: the one the model records)"}


def _fill_help(p: argparse.ArgumentParser) -> None:
    """Give every option without a help text the common one, so that each line shows its default."""
    for action in p._actions:
        if action.help is None and action.option_strings:
            action.help = COMMON_HELP.get(action.option_strings[0], "")


def _version() -> str:
    import importlib.metadata as md

    try:
        return f"kdsnn {md.version('kdsnn')}"
    except md.PackageNotFoundError:  # pragma: no cover - run from a source tree without installing
        return "kdsnn (not installed)"


RECIPE = " (default: the recipe's)"


def _common_train(p: argparse.ArgumentParser, family: str) -> None:
    from . import recipes
    from .augment import augment_help
    from .data import DATASETS_HELP
    from .optim import OPTIMIZERS, SCHEDULES

    p.add_argument("--dataset", default="digits", help=DATASETS_HELP)
    p.add_argument("--data-root", default=None, help="folder in torchvision's layout (mnist/cifar)")
    shipped = ", ".join(n for n in recipes.builtin_names() if recipes.builtin(n).family == family)
    p.add_argument("--recipe", default=None,
                   help=f"training recipe: a shipped one ({shipped}) or a .toml file; default by data set: "
                        f"{recipes.defaults_help(family)}. --config and flags override it; the checkpoint records it")
    p.add_argument("--epochs", type=int, default=None, help="training epochs" + RECIPE)
    p.add_argument("--batch-size", type=int, default=None, help="batch size" + RECIPE)
    p.add_argument("--optimizer", default=None, help=f"{', '.join(OPTIMIZERS)}" + RECIPE)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate" + RECIPE)
    p.add_argument("--warmup-epochs", type=float, default=None, help="linear lr warm-up, in epochs" + RECIPE)
    p.add_argument("--schedule", default=None,
                   help=f"lr schedule after warm-up, per iteration: {', '.join(SCHEDULES)}" + RECIPE)
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum, AdamW's β1" + RECIPE)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None, help="Nesterov momentum" + RECIPE)
    p.add_argument("--weight-decay", type=float, default=None, help="weight decay" + RECIPE)
    p.add_argument("--label-smoothing", type=float, default=None, help="label smoothing of the cross-entropy" + RECIPE)
    p.add_argument("--augment", default=None, help=augment_help())
    p.add_argument("--seed", type=seed, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--workers", type=nonnegative_int, default=0, help="data-loader worker processes")
    p.add_argument("--out", default=None, help="run folder (checkpoint.pt, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true",
                   help="start over in an --out that holds an earlier run (its checkpoint is replaced)")
    p.add_argument("--stop-after", type=positive_int, default=None,
                   help="stop after N epochs of this invocation (resume later)")
    p.add_argument("--max-batches", type=positive_int, default=None,
                   help="train on at most N batches per epoch and evaluate on as many images (a quick check "
                        "that a config runs end to end)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--validate", action="store_true",
                   help="train on 80%% of the training split and report accuracy on the held-out 20%% "
                        "(choose options without looking at the test split)")


def _student_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", default=None, help="teacher checkpoint (from train-teacher)")
    from .distill import DEFAULT_METHOD, methods_help

    p.add_argument("--kd", default=DEFAULT_METHOD, help=methods_help())
    p.add_argument("--timesteps", type=positive_int, default=None, help="time steps T" + RECIPE)
    p.add_argument("--width", type=float, default=1.0,
                   help="student channel multiplier (0.25: a quarter of every layer)")
    p.add_argument("--alpha", type=float, default=None,
                   help="distillation weight (default: the recipe's for the --kd method, else the method's own)")
    p.add_argument("--temperature", type=float, default=None, help="response KD temperature τ" + RECIPE)
    p.add_argument("--encoding", default="direct", help="direct (analog input every step), bernoulli, or events "
                   "(event data sets: the first layer receives the recorded events; chosen for them)")
    p.add_argument("--readout", default="membrane", help="membrane (mean of last layer) or spike (counts)")
    p.add_argument("--threshold", type=float, default=1.0)
    p.add_argument("--reset", default="hard", help="hard (to 0) or soft (subtract θ)")
    p.add_argument("--surrogate", default="sigmoid", help="sigmoid, arctan or rectangular")
    p.add_argument("--surrogate-param", type=float, default=None, help="slope α or width")
    p.add_argument("--detach-reset", action="store_true")


def _train_handler(kind: str) -> Handler:
    def run(a: argparse.Namespace) -> int:
        from .trainer import TrainConfig, train

        names = {f.name for f in fields(TrainConfig)}
        opts = {k: v for k, v in vars(a).items() if k in names and v is not None}
        if "out" not in opts:
            opts["out"] = f"runs/{kind}-{opts.get('arch')}-{opts.get('dataset', 'digits')}"
        result = train(TrainConfig(**opts), kind)
        if result.get("rank", 0) != 0:
            return 0  # under torchrun only rank 0 reports
        _print_result(a, result, f"{kind} {result['arch']}: {result['split']} accuracy "
                                 f"{result['accuracy'] * 100:.2f} %  checkpoint {result['checkpoint']}")
        return 0
    return run


def _evaluate(a: argparse.Namespace) -> int:
    import torch

    from . import checkpoint, data
    from .budget import fitting
    from .models.sizing import measure
    from .trainer import EVAL_BATCH, evaluate, resolve_device

    a.checkpoint = _one_model(a)
    device = resolve_device(a.device)
    model, ckpt = checkpoint.load_model(a.checkpoint, device)  # refuses a model one sample of which cannot fit
    dataset = checkpoint.checkpoint_dataset(ckpt, a.dataset, a.checkpoint)
    spec = checkpoint.model_spec(ckpt)
    kwargs = checkpoint.constructor_args(spec)
    size = measure(spec["arch"], tuple(spec["input_shape"]), spec["classes"], **kwargs)
    batch = max(1, fitting(size.bytes(1, kwargs.get("timesteps", 1), False), EVAL_BATCH))
    test = data.load(dataset, "test", a.data_root, noise=a.noise, noise_seed=a.seed,
                     timesteps=checkpoint.data_timesteps(ckpt))
    torch.manual_seed(a.seed)
    acc = evaluate(model.to(device), test, device, batch, desc="evaluate")
    result = {"accuracy": acc, "checkpoint": a.checkpoint, "dataset": dataset, "noise": a.noise or "none",
              "arch": spec["arch"]}
    _print_result(a, result, f"{spec['arch']} on {dataset} (noise {result['noise']}): accuracy {acc * 100:.2f} % "
                             f"({len(test):,} test samples)")
    return 0


def _one_model(a: argparse.Namespace) -> str:
    """The checkpoint given as MODEL or (its earlier spelling) --checkpoint; one-line error if neither or both."""
    if (a.model is None) == (a.checkpoint is None):
        raise KdsnnError(f"give a checkpoint (kdsnn {a.command} CHECKPOINT), "
                         + ("not both MODEL and --checkpoint" if a.model else "as MODEL"))
    return a.model or a.checkpoint


def _recipes_epilog(family: str, arch: str) -> str:
    """The shipped recipes of a family and what each sets (for the default --arch), for --help."""
    from . import recipes

    lines = [f"recipes (kdsnn/recipes/*.toml; values for --arch {arch}):"]
    for name in recipes.builtin_names():
        r = recipes.builtin(name)
        if r.family == family:
            kd = "response" if family == "student" else None
            used = ", ".join(r.datasets) if r.datasets else "data sets without their own"
            lines.append(f"  {name} ({used}): {recipes.summary(r.values(arch, kd), kd)}")
    return "\n".join(lines)


def _print_result(a: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    print(json.dumps(result) if getattr(a, "json", False) else text)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = Parser(prog="kdsnn", description="ANN-to-SNN distillation and neuromorphic deployment",
                    formatter_class=HelpFormatter,
                    epilog="examples:\n  kdsnn demo\n  kdsnn map runs/demo/student/checkpoint.pt\n"
                           "  kdsnn report runs/demo/student/checkpoint.pt --out runs/report")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    subs: dict[str, argparse.ArgumentParser] = {}

    def add(name: str, help_: str, handler: Handler) -> argparse.ArgumentParser:
        examples = "".join(f"\n  {e}" for e in EXAMPLES.get(name, []))
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=HelpFormatter,
                           epilog=f"examples:{examples}" if examples else None)
        p.add_argument("--config", default=None, help="TOML file of options (flags override it)")
        p.add_argument("--json", action="store_true", help="print one machine-readable result line")
        p.set_defaults(handler=handler)
        subs[name] = p
        return p

    from .models.students import STUDENTS
    from .models.teachers import TEACHERS

    p = add("train-teacher", "train a teacher ANN", _train_handler("teacher"))
    p.add_argument("--arch", default="mnist_cnn", help=f"teacher architecture: {', '.join(TEACHERS)}")
    _common_train(p, "teacher")
    p.epilog = _recipes_epilog("teacher", "mnist_cnn") + ("\n\n" + p.epilog if p.epilog else "")

    p = add("distill", "train a student SNN from a teacher by knowledge distillation", _train_handler("student"))
    p.add_argument("--arch", default="snn_2conv", help=f"student architecture: {', '.join(STUDENTS)}")
    _common_train(p, "student")
    _student_opts(p)
    p.epilog = _recipes_epilog("student", "snn_2conv") + ("\n\n" + p.epilog if p.epilog else "")

    p = add("evaluate", "test accuracy of a checkpoint, optionally under corruption", _evaluate)
    p.add_argument("model", nargs="?", default=None, metavar="CHECKPOINT", help="a checkpoint (teacher or student)")
    p.add_argument("--checkpoint", default=None, help="the same as giving CHECKPOINT (its earlier spelling)")
    p.add_argument("--dataset", default=None,
                   help="defaults to the checkpoint's data set (or any --dataset of train-teacher)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--noise", default=None,
                   help="gaussian:SIGMA, background, noise:FRACTION, rotation, rotation_background")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=seed, default=0, help="seed of the corruption's noise")

    from . import commands  # the export/deploy commands live beside their packages
    commands.register(add)
    for sp in subs.values():
        _fill_help(sp)
    return parser, subs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, subs = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "config", None) is not None:  # an empty path is refused, not ignored
            from . import config
            subs[args.command].set_defaults(**config.load(args.config, args.command, subs[args.command]))
            args = parser.parse_args(argv)
        return args.handler(args)
    except KdsnnError as exc:
        print(f"kdsnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        command = next((w for w in argv if not w.startswith("-")), "")
        print(f"kdsnn: interrupted; {RESUME.get(command, 'no partial output was left behind')}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
