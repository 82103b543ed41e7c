"""Training recipes as data: one TOML file per data set and model family (teacher ANN or
student SNN), shipped in this package (``kdsnn/recipes/*.toml``), chosen by the data set.

A recipe sets the options of ``train-teacher`` / ``distill`` that make a run good on its data
(optimizer, lr and warm-up, schedule, weight decay, batch size, epochs, augmentation, label
smoothing, student T, KD temperature and weights), and says where each value comes from
(``source``). Resolution, lowest first: ``default-<family>`` (the built-in defaults) < the
recipe (``[options]``, then ``[arch.NAME]`` for the architecture trained, then ``[kd.METHOD]``
for the distillation method) < ``--config`` < flags. ``--recipe NAME|FILE`` picks another
recipe than the data set's; a user's file may set only some options.

File layout::

    family = "student"          # teacher (train-teacher) or student (distill)
    datasets = ["mnist"]        # data sets it is the default for
    source = "what chose these values"
    [options]                   # option = value, as in --config files
    [arch.resnet18]             # overrides for one architecture
    [kd.response]               # alpha, temperature for one distillation method (students)
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import KdsnnError

FAMILIES = {"teacher": "train-teacher", "student": "distill"}

# options a recipe may set, with their types; the student-only ones are refused in teacher recipes
OPTIONS: dict[str, type] = {"epochs": int, "batch_size": int, "lr": float, "momentum": float, "weight_decay": float,
                            "optimizer": str, "nesterov": bool, "schedule": str, "warmup_epochs": float,
                            "label_smoothing": float, "augment": str}
STUDENT_OPTIONS: dict[str, type] = {"timesteps": int, "temperature": float}
KD_OPTIONS: dict[str, type] = {"alpha": float, "temperature": float}
CHECKED = {*OPTIONS, *STUDENT_OPTIONS, *KD_OPTIONS}  # what check_values looks at
TOP_KEYS = {"family", "datasets", "source", "options", "arch", "kd"}


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe file: its name, origin, family, data sets, source and option tables."""

    name: str
    origin: str  # "built-in" or the user's file path
    family: str
    datasets: tuple[str, ...]
    source: str
    options: dict[str, Any] = field(default_factory=dict)
    arch: dict[str, dict[str, Any]] = field(default_factory=dict)
    kd: dict[str, dict[str, Any]] = field(default_factory=dict)

    def values(self, arch: str, kd: str | None = None) -> dict[str, Any]:
        """Every option this recipe gives for ``arch`` (and method ``kd``), over the built-in defaults."""
        out = {} if self.name == f"default-{self.family}" else default(self.family).values(arch, kd)
        out.update(self.options)
        out.update(self.arch.get(arch, {}))
        if kd is not None:
            out.update(self.kd.get(kd, {}))
        return out

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about the recipe (its values are in the checkpoint's config)."""
        return {"name": self.name, "origin": self.origin, "family": self.family, "source": self.source}


def builtin_names() -> list[str]:
    """Names of the recipes shipped in ``kdsnn/recipes/``."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".toml"))


@cache
def builtin(name: str) -> Recipe:
    """A shipped recipe by name (read once)."""
    text = (resources.files(__name__) / f"{name}.toml").read_text(encoding="utf-8")
    return parse(_decode(text, f"built-in recipe {name}"), name, "built-in")


def default(family: str) -> Recipe:
    return builtin(f"default-{family}")


def for_dataset(family: str, dataset: str) -> Recipe:
    """The shipped recipe of ``family`` whose ``datasets`` lists ``dataset``, else the built-in defaults."""
    for name in builtin_names():
        r = builtin(name)
        if r.family == family and dataset in r.datasets:
            return r
    return default(family)


def load(spec: str | None, family: str, dataset: str) -> Recipe:
    """The recipe a run uses: ``spec`` (a shipped name or a ``.toml`` path) or the data set's default."""
    if spec is None:
        return for_dataset(family, dataset)
    path = Path(spec)
    if path.suffix.lower() == ".toml" or "/" in spec:
        if not path.is_file():
            raise KdsnnError(f"recipe file {spec} does not exist; pass a .toml recipe or one of: "
                             f"{', '.join(builtin_names())}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KdsnnError(f"recipe file {spec} could not be read ({type(exc).__name__}); it must be UTF-8 TOML") \
                from None
        recipe = parse(_decode(text, f"recipe file {spec}"), path.stem, str(path.resolve()))
    elif spec in builtin_names():
        recipe = builtin(spec)
    else:
        raise KdsnnError(f"unknown recipe {spec!r}; choose one of {', '.join(builtin_names())} "
                         "or pass the path of a .toml recipe file")
    if recipe.family != family:
        raise KdsnnError(f"recipe {spec} is a {recipe.family} recipe (for `kdsnn {FAMILIES[recipe.family]}`), "
                         f"not for `kdsnn {FAMILIES[family]}`; pick a {family} recipe")
    return recipe


def _decode(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KdsnnError(f"{where} is not valid TOML: {str(exc).splitlines()[0]}") from None


def parse(raw: dict[str, Any], name: str, origin: str) -> Recipe:
    """Check a decoded recipe file and return it; every problem is one line naming the file and key."""
    where = f"recipe {origin if origin != 'built-in' else name}"
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise KdsnnError(f"{where}: unknown key {unknown[0]!r}; a recipe holds {', '.join(sorted(TOP_KEYS))}")
    family = raw.get("family")
    if family not in FAMILIES:
        raise KdsnnError(f"{where}: family must be one of {', '.join(FAMILIES)}, got {family!r}")
    datasets = raw.get("datasets", [])
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise KdsnnError(f"{where}: datasets must be a list of data set names")
    source = raw.get("source", "")
    if not isinstance(source, str) or not source.strip():
        raise KdsnnError(f"{where}: source must say where its values come from (a paper, METHODS.md, a sweep)")
    allowed = {**OPTIONS, **(STUDENT_OPTIONS if family == "student" else {})}
    options = _options(raw.get("options", {}), allowed, f"{where} [options]")
    arch = {a: _options(t, allowed, f"{where} [arch.{a}]") for a, t in _tables(raw.get("arch", {}), where, "arch")}
    kd = {}
    if raw.get("kd") and family != "student":
        raise KdsnnError(f"{where}: [kd.METHOD] tables belong in student recipes")
    from ..distill import METHODS

    for method, table in _tables(raw.get("kd", {}), where, "kd"):
        if method not in METHODS:
            raise KdsnnError(f"{where}: [kd.{method}] names no distillation method; choose among {', '.join(METHODS)}")
        kd[method] = _options(table, KD_OPTIONS, f"{where} [kd.{method}]")
    return Recipe(name, origin, family, tuple(datasets), source.strip(), options, arch, kd)


def _tables(value: Any, where: str, key: str) -> list[tuple[str, dict]]:
    if not isinstance(value, dict) or not all(isinstance(t, dict) for t in value.values()):
        raise KdsnnError(f"{where}: {key} must hold tables, [{key}.NAME]")
    return list(value.items())


def _options(table: Any, allowed: dict[str, type], where: str) -> dict[str, Any]:
    """``{option: value}`` with dashes read as underscores, each value of its option's type and range."""
    if not isinstance(table, dict):
        raise KdsnnError(f"{where} must be a table of option = value")
    out: dict[str, Any] = {}
    for key, value in table.items():
        dest = key.replace("-", "_")
        if dest not in allowed:
            raise KdsnnError(f"{where}: {key!r} is not an option a recipe sets here; allowed: "
                             f"{', '.join(k.replace('_', '-') for k in allowed)}")
        kind = allowed[dest]
        if not _is(value, kind):
            raise KdsnnError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
        out[dest] = float(value) if kind is float else value
    check_values(out, where)
    return out


def _is(value: Any, kind: type) -> bool:
    """Whether a TOML value has an option's type (an integer counts as a float, a boolean as neither)."""
    if isinstance(value, bool) or kind is bool:
        return isinstance(value, bool) and kind is bool
    return isinstance(value, (int, float) if kind is float else kind)


def check_values(values: dict[str, Any], where: str) -> None:
    """Refuse values no run can use (names, ranges), naming the option; shared with the trainer's
    checks (``where`` empty: the option is named as its flag)."""
    from .. import augment, optim

    def name(key: str) -> str:
        return f"{where}: {key.replace('_', '-')}" if where else f"--{key.replace('_', '-')}"

    positive = ("epochs", "batch_size", "lr", "timesteps", "temperature")
    for key in positive:  # NaN fails every comparison; infinity is no step size, weight or temperature either
        if key in values and not 0 < values[key] < math.inf:
            raise KdsnnError(f"{name(key)} must be > 0, got {values[key]}" + _finite_hint(values[key]))
    for key in ("momentum", "label_smoothing"):
        if key in values and not 0 <= values[key] < 1:
            raise KdsnnError(f"{name(key)} must be in [0, 1), got {values[key]}")
    for key in ("weight_decay", "warmup_epochs", "alpha"):
        if key in values and not 0 <= values[key] < math.inf:
            raise KdsnnError(f"{name(key)} must be >= 0, got {values[key]}" + _finite_hint(values[key]))
    if "optimizer" in values and values["optimizer"] not in optim.OPTIMIZERS:
        raise KdsnnError(f"{name('optimizer')}: unknown optimizer {values['optimizer']!r}; choose one of "
                         f"{', '.join(optim.OPTIMIZERS)}")
    if "schedule" in values and values["schedule"] not in optim.SCHEDULES:
        raise KdsnnError(f"{name('schedule')}: unknown schedule {values['schedule']!r}; choose one of "
                         f"{', '.join(optim.SCHEDULES)}")
    if "augment" in values:
        try:
            augment.parse(values["augment"])
        except KdsnnError as exc:
            raise KdsnnError(f"{name('augment')}: {exc}") from None


def _finite_hint(value: Any) -> str:
    """The end of a range refusal for a value that is no finite number (NaN, infinity)."""
    return " (a finite number)" if isinstance(value, float) and not math.isfinite(value) else ""


def defaults_help(family: str) -> str:
    """Which recipe applies to which data set, for ``--help``."""
    rows = [f"{', '.join(r.datasets)} → {r.name}" for r in map(builtin, builtin_names())
            if r.family == family and r.datasets]
    return "; ".join(rows) + f"; any other data set → default-{family} (the built-in defaults)"


def apply(cfg: Any, kind: str) -> tuple[Any, Recipe]:
    """A training config (dataclass) with every unset (None) option taken from its recipe
    (``cfg.recipe``, or the data set's), and that recipe. The method's own α fills a gap the recipe leaves."""
    from ..distill import METHODS

    recipe = load(cfg.recipe, kind, cfg.dataset)
    values = recipe.values(cfg.arch, cfg.kd if kind == "student" else None)
    names = {f.name for f in fields(cfg)}
    taken = {k: v for k, v in values.items() if k in names and getattr(cfg, k) is None}
    epochs = taken.get("epochs", cfg.epochs)
    if "warmup_epochs" in taken and epochs is not None and taken["warmup_epochs"] >= epochs:
        taken["warmup_epochs"] = 0.0  # the recipe's warm-up does not fit a run shortened by --epochs: none
    cfg = replace(cfg, **taken)
    if kind == "student" and cfg.alpha is None and cfg.kd in METHODS:
        cfg = replace(cfg, alpha=METHODS[cfg.kd].default_alpha)
    return cfg, recipe


def check_resumable(saved: dict[str, Any], cfg: Any, ckpt_path: Path) -> None:
    """Refuse to continue a run with other training options than it started with (its lr curve would break)."""
    if "schedule" not in saved:
        raise KdsnnError(f"--resume: {ckpt_path} was written by a kdsnn without recipes (per-epoch schedule state); "
                         "it cannot be continued: start it again without --resume, or use another --out")
    # the data (set, split, seeded order) and the KD method too: a run continued on other data of the same shape or
    # with another loss would mix two trainings under one checkpoint, and lose the resumed-equals-uninterrupted rule
    keys = [k for k in (*OPTIONS, *STUDENT_OPTIONS, "alpha", "dataset", "validate", "seed", "kd") if k != "epochs"]
    differ = [k for k in keys if k in saved and saved[k] != getattr(cfg, k)]
    if differ:
        k = differ[0]
        raise KdsnnError(f"--resume: {ckpt_path} was trained with {k.replace('_', '-')} = {saved[k]!r}, this run asks "
                         f"for {getattr(cfg, k)!r}; resume with the same options, or use another --out")


def summary(v: dict[str, Any], kd: str | None = None) -> str:
    """One line of a recipe's (or a resolved run's) main values: the ``--help`` epilog, a run's first line."""
    warm = f" (warm-up {v['warmup_epochs']:g} ep)" if v.get("warmup_epochs") else ""
    parts = [f"{v['optimizer']} lr {v['lr']:g}{warm}", v["schedule"], f"wd {v['weight_decay']:g}",
             f"batch {v['batch_size']}", f"{v['epochs']} epochs", f"augment {v['augment']}"]
    if v.get("label_smoothing"):
        parts.append(f"label smoothing {v['label_smoothing']:g}")
    if v.get("timesteps"):
        parts.append(f"T = {v['timesteps']}")
    if kd and kd != "none" and v.get("alpha") is not None:
        tau = f", τ = {v['temperature']:g}" if kd == "response" and v.get("temperature") else ""
        parts.append(f"{kd} α = {v['alpha']:g}{tau}")
    return ", ".join(parts)
