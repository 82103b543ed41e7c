"""Hardware target descriptions: data files, every number with its source.

A target is a TOML (or JSON) file, shipped in ``deploy/targets/`` or given by path::

    name = "my_chip"
    description = "..."
    kind = "cores"            # cores (Loihi-like), layers (Speck-like) or dense (Xylo-like)
    [limits.neurons_per_core]
    value = 8192
    source = "where the number comes from"
    [limits.fan_in_axons_per_core]
    value = 4096
    status = "assumed"        # published (default), derived (give `derivation`) or assumed
    source = "why this value"
    [limits.synapses_per_core]
    value = 937500
    status = "derived"
    derivation = "120M synapses per chip / 128 cores"
    source = "where the numbers it is derived from come from"

Entries live in five sections: ``neuron``, ``precision``, ``limits``, ``energy``, ``time``
(the known keys and their types are :data:`KEYS`). Every entry says how it is known (``status``):
``published`` by the vendor (the default), ``derived`` from published numbers (its ``derivation``
says how), or ``assumed`` (a stated parameter; ``published = false``, the older spelling, means
the same). An entry without ``value`` is a limit the vendor did not publish and kdsnn does not
check. Cycle counts (``time.cycles_per_*``) are turned into seconds with ``time.clock_hz`` when the
file is read.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kdsnn.errors import KdsnnError

from ..data_files import builtin_names, load_data_file

KINDS = ("cores", "layers", "dense")
_INT, _NUM, _STR, _BOOL, _INTS, _STRS = "integer", "number", "string", "boolean", "list of integers", "list of strings"
STATUSES = ("published", "derived", "assumed")

KEYS: dict[str, dict[str, str]] = {
    "neuron": {"models": _STRS, "resets": _STRS, "spike_condition": _STR, "max_spikes_per_step": _INT,
               "analog_input": _STR, "exact_if": _BOOL, "multi_spike": _BOOL, "decay": _STR},
    "precision": {"weight_min": _INT, "weight_max": _INT, "state_bits": _INT, "threshold_min": _INT,
                  "threshold_max": _INT, "bias_max": _INT, "bias_min": _INT, "fixed_point_shift": _INT,
                  "weight_exponent_max": _INT},
    "limits": {"chips": _INT, "cores_per_chip": _INT, "neurons_per_core": _INT, "synapses_per_core": _INT,
               "synaptic_memory_bits_per_core": _INT, "synapse_bits": _INT, "fan_in_axons_per_core": _INT,
               "fan_out_axons_per_core": _INT, "layers": _INT, "kernel_memory": _INTS, "neuron_memory": _INTS,
               "bias_memory": _INTS, "max_kernel_size": _INT, "strides": _INTS, "max_padding": _INT,
               "pool_sizes": _INTS, "max_channels": _INT, "max_input_size": _INT, "max_output_size": _INT,
               "max_destinations": _INT, "input_channels": _INT, "hidden_neurons": _INT, "output_neurons": _INT,
               "min_neuron_layers": _INT, "hidden_synapses": _INT, "max_fan_out": _INT, "max_input_events": _INT,
               "dvs_size": _INT, "dvs_polarities": _INT, "dvs_pooling": _INTS, "readout_classes": _INT,
               "max_synaptic_delay": _INT},
    "energy": {"synop_joules": _NUM, "neuron_update_joules": _NUM, "neuron_update_active_joules": _NUM,
               "neuron_update_inactive_joules": _NUM, "spike_message_joules": _NUM, "host_mac_joules": _NUM},
    "time": {"synop_seconds": _NUM, "neuron_update_seconds": _NUM, "neuron_update_active_seconds": _NUM,
             "neuron_update_inactive_seconds": _NUM, "spike_message_seconds": _NUM, "barrier_seconds": _NUM,
             "clock_hz": _NUM, "cycles_per_synop": _NUM, "cycles_per_input_synop": _NUM,
             "cycles_per_output_synop": _NUM, "cycles_per_neuron_update": _NUM,
             "cycles_per_output_neuron_update": _NUM, "sequential": _BOOL, "cycle_model": _STR},
}
# The least value of integer entries that count or size something (a core of -5 neurons, a 0-bit synapse
# or 0 cores per chip is a wrong file, not a chip); absent keys may take any integer (weight_min, ...).
MINIMUM: dict[str, int] = {
    **{f"limits.{k}": 1 for k, kind in KEYS["limits"].items() if kind == _INT}, "limits.max_padding": 0,
    "neuron.max_spikes_per_step": 1, "precision.state_bits": 1, "precision.bias_max": 0,
    "precision.threshold_max": 0, "precision.fixed_point_shift": 0, "precision.weight_exponent_max": 0,
}
NEURON_MODELS = ("IF", "LIF", "CubaLIF")
RESETS = ("zero", "subtract")
ANALOG_INPUT = ("host", "none", "counts", "graded")
DECAYS = ("bit_shift", "fraction12")  # neuron.decay: Xylo's v >> dash, Loihi's 12-bit dv/4096 (rules.decay_rules)
GRADED_SOURCE = ("kdsnn map --graded-input: the first connection takes the integer input as graded spikes "
                 "(Lava's Dense/Conv num_message_bits > 0: 'graded spikes', lava/proc/dense/process.py; lava-dl "
                 "netx's input_message_bits); kdsnn's Lava process-graph route runs it bit-exact")


@dataclass(frozen=True)
class Entry:
    """One figure of a target: its value (None: not published and not set), source, and how it is known
    (``status``: published, derived with its ``derivation``, or assumed)."""

    value: Any
    source: str
    published: bool = True
    status: str = "published"
    derivation: str = ""


@dataclass
class Target:
    """A hardware target: rules, limits and per-operation figures, each with its source."""

    name: str
    description: str
    kind: str
    origin: str
    entries: dict[str, dict[str, Entry]] = field(default_factory=dict)

    def get(self, section: str, key: str, default: Any = None) -> Any:
        """The value of ``section.key``, or ``default`` when the file leaves it unset."""
        e = self.entries.get(section, {}).get(key)
        return default if e is None or e.value is None else e.value

    def source(self, section: str, key: str) -> str:
        e = self.entries.get(section, {}).get(key)
        return "" if e is None else e.source

    def unpublished(self) -> list[str]:
        """``section.key`` of every entry the vendor did not publish (derived or assumed)."""
        return [f"{s}.{k}" for s, d in self.entries.items() for k, e in d.items() if not e.published]

    def provenance(self) -> dict[str, Any]:
        """Every entry by how it is known: ``published`` and ``assumed`` keys, ``derived`` key → derivation."""
        out: dict[str, Any] = {"published": [], "derived": {}, "assumed": []}
        for s, d in self.entries.items():
            for k, e in d.items():
                if e.status == "derived":
                    out["derived"][f"{s}.{k}"] = e.derivation
                else:
                    out[e.status].append(f"{s}.{k}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "kind": self.kind, "origin": self.origin,
                "entries": {s: {k: {"value": e.value, "source": e.source, "published": e.published,
                                    "status": e.status, **({"derivation": e.derivation} if e.derivation else {})}
                                for k, e in d.items()} for s, d in self.entries.items()}}


def builtin_targets() -> list[str]:
    """Names of the targets shipped with kdsnn."""
    return builtin_names("targets")


def with_graded_input(target: Target) -> Target:
    """``target`` with its analog first layer on the chip, fed graded spikes, where it would run on the host
    (``neuron.analog_input = "host"``); other targets unchanged."""
    if target.get("neuron", "analog_input") != "host":
        return target
    neuron = {**target.entries.get("neuron", {}), "analog_input": Entry("graded", GRADED_SOURCE)}
    return replace(target, entries={**target.entries, "neuron": neuron})


def load_target(spec: str | Path | Target) -> Target:
    """A built-in target by name, or a TOML/JSON target file by path (validated)."""
    if isinstance(spec, Target):
        return spec
    return load_data_file(spec, "targets", "target",
                          lambda data, origin, name: parse_target(data, origin, default_name=name))


def _check_value(v: Any, kind: str) -> bool:
    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    def is_num(x: Any) -> bool:
        return (is_int(x) or isinstance(x, float)) and math.isfinite(x) and x >= 0

    if kind == _INT:
        return is_int(v)
    if kind == _NUM:
        return is_num(v)
    if kind == _STR:
        return isinstance(v, str) and bool(v)
    if kind == _BOOL:
        return isinstance(v, bool)
    if kind == _INTS:
        return isinstance(v, list) and bool(v) and all(is_int(x) and x > 0 for x in v)
    return isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)


def parse_target(data: Mapping[str, Any], origin: str, default_name: str = "custom") -> Target:
    """Validate a target's content; every problem is a one-line :class:`KdsnnError`."""
    where = f"target {origin}"
    unknown = set(data) - {"name", "description", "kind", *KEYS}
    if unknown:
        raise KdsnnError(f"{where}: unknown top-level key(s) {', '.join(sorted(unknown))} "
                         f"(allowed: name, description, kind, {', '.join(KEYS)})")
    name, desc, kind = data.get("name", default_name), data.get("description", ""), data.get("kind")
    if not isinstance(name, str) or not name or not isinstance(desc, str):
        raise KdsnnError(f"{where}: 'name' and 'description' must be strings")
    if kind not in KINDS:
        raise KdsnnError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    t = Target(name, desc, kind, origin)
    for section, keys in KEYS.items():
        raw = data.get(section, {})
        if not isinstance(raw, Mapping):
            raise KdsnnError(f"{where}: [{section}] must be a table")
        bad = set(raw) - set(keys)
        if bad:
            raise KdsnnError(f"{where}: unknown key(s) {', '.join(f'{section}.{b}' for b in sorted(bad))} "
                             f"(known: {', '.join(keys)})")
        t.entries[section] = {}
        for key, entry in raw.items():
            t.entries[section][key] = _entry(entry, f"{section}.{key}", keys[key], where)
    _semantic_checks(t, where)
    _cycles_to_seconds(t)
    return t


def _status(entry: Mapping[str, Any], key: str, where: str) -> tuple[str, str]:
    """(status, derivation) of an entry; ``published = false`` (the older spelling) means assumed."""
    pub, status, derivation = entry.get("published"), entry.get("status"), entry.get("derivation", "")
    if pub is not None and not isinstance(pub, bool):
        raise KdsnnError(f"{where}: {key}.published must be true or false")
    if status is None:
        status = "assumed" if pub is False else "published"
    elif status not in STATUSES:
        raise KdsnnError(f"{where}: {key}.status must be one of {', '.join(STATUSES)}, got {status!r}")
    elif pub is not None and pub != (status == "published"):
        raise KdsnnError(f"{where}: {key} says published = {str(pub).lower()} but status = {status!r}; give one")
    if not isinstance(derivation, str) or (status == "derived") != bool(derivation.strip()):
        raise KdsnnError(f"{where}: {key}: a derived value needs 'derivation' (how it follows from published "
                         "numbers), and only a derived one has it")
    return status, derivation


def _entry(entry: Any, key: str, kind: str, where: str) -> Entry:
    allowed = {"value", "source", "published", "status", "derivation"}
    if not isinstance(entry, Mapping) or not set(entry) <= allowed or "source" not in entry:
        raise KdsnnError(f"{where}: {key} must be a table with 'source' and optionally 'value', 'status' "
                         "(published, derived, assumed) and 'derivation'")
    src = entry["source"]
    if not isinstance(src, str) or not src.strip():
        raise KdsnnError(f"{where}: {key}.source must say where the number comes from")
    status, derivation = _status(entry, key, where)
    pub = status == "published"
    if "value" not in entry:
        if pub:
            raise KdsnnError(f"{where}: {key} has no value; "
                             "mark it 'status = \"assumed\"' if the vendor does not publish it")
        return Entry(None, src, False, status, derivation)
    v = entry["value"]
    if not _check_value(v, kind):
        raise KdsnnError(f"{where}: {key}.value must be a {kind}" + (" ≥ 0" if kind == _NUM else "") + f", got {v!r}")
    if key in MINIMUM and v < MINIMUM[key]:
        raise KdsnnError(f"{where}: {key}.value must be at least {MINIMUM[key]}, got {v!r}")
    if key == "time.clock_hz" and v <= 0:
        raise KdsnnError(f"{where}: time.clock_hz must be above 0, got {v!r}")
    return Entry(v, src, pub, status, derivation)


def _semantic_checks(t: Target, where: str) -> None:
    for m in t.get("neuron", "models", []):
        if m not in NEURON_MODELS:
            raise KdsnnError(f"{where}: neuron.models has {m!r}; known models: {', '.join(NEURON_MODELS)}")
    for r in t.get("neuron", "resets", []):
        if r not in RESETS:
            raise KdsnnError(f"{where}: neuron.resets has {r!r}; known resets: {', '.join(RESETS)}")
    cond = t.get("neuron", "spike_condition")
    if cond not in (None, ">", ">="):
        raise KdsnnError(f"{where}: neuron.spike_condition must be '>' or '>=', got {cond!r}")
    ai = t.get("neuron", "analog_input")
    if ai not in (None, *ANALOG_INPUT):
        raise KdsnnError(f"{where}: neuron.analog_input must be one of {', '.join(ANALOG_INPUT)}, got {ai!r}")
    dec = t.get("neuron", "decay")
    if dec not in (None, *DECAYS):
        raise KdsnnError(f"{where}: neuron.decay must be one of {', '.join(DECAYS)}, got {dec!r}")
    wmin, wmax = t.get("precision", "weight_min"), t.get("precision", "weight_max")
    if wmin is not None and wmax is not None and wmin > wmax:
        raise KdsnnError(f"{where}: precision.weight_min ({wmin}) is above precision.weight_max ({wmax})")
    if t.kind == "layers":
        mems = [t.get("limits", k) for k in ("kernel_memory", "neuron_memory")]
        if any(m is None for m in mems):
            raise KdsnnError(f"{where}: a 'layers' target needs limits.kernel_memory and limits.neuron_memory "
                             "(one value per layer)")
        n = t.get("limits", "layers", len(mems[0]))
        lists = [m for m in (*mems, t.get("limits", "bias_memory")) if m is not None]
        if any(len(m) != n for m in lists):
            raise KdsnnError(f"{where}: limits.kernel_memory, neuron_memory and bias_memory "
                             f"need one value per layer ({n})")
    split = [t.get("energy", k) is not None for k in ("neuron_update_active_joules", "neuron_update_inactive_joules")]
    if any(split) and not all(split):
        raise KdsnnError(f"{where}: give both energy.neuron_update_active_joules "
                         "and energy.neuron_update_inactive_joules")
    cycles = [k for k in t.entries["time"] if k.startswith("cycles_per_") and t.get("time", k) is not None]
    if cycles and not t.get("time", "clock_hz"):
        raise KdsnnError(f"{where}: time.{cycles[0]} needs time.clock_hz (> 0) to become seconds")


_CYCLE_KEYS = {"cycles_per_synop": "synop_seconds", "cycles_per_input_synop": "input_synop_seconds",
               "cycles_per_output_synop": "output_synop_seconds", "cycles_per_neuron_update": "neuron_update_seconds",
               "cycles_per_output_neuron_update": "output_neuron_update_seconds"}


def _cycles_to_seconds(t: Target) -> None:
    clock = t.get("time", "clock_hz")
    for ck, sk in _CYCLE_KEYS.items():
        cycles = t.get("time", ck)
        if cycles is not None and t.get("time", sk) is None:
            e = t.entries["time"][ck]
            t.entries["time"][sk] = Entry(cycles / clock,
                                          f"{t.source('time', ck)}; at {clock:g} Hz ({t.source('time', 'clock_hz')})",
                                          e.published, e.status, e.derivation)
