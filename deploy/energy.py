"""Energy per inference: operation counts × per-operation energies of a hardware profile.

Profiles are data files (``deploy/profiles/*.toml``, or a user's TOML/JSON file), one entry
per operation, each with its energy in joules and the ``source`` it comes from::

    name = "my_chip"
    [ops.synop]                      # one synaptic operation (spike × synapse)
    joules = 1e-12
    source = "where this number comes from"
    [ops.mac]                        # one multiply-accumulate (analog first layer, ANNs)
    ...
    [ops.neuron_update]              # one neuron update per step (or the pair below)
    ...
    # [ops.neuron_update_active] / [ops.neuron_update_inactive]
    [ops.decay]                      # optional: one leaky state variable's decay per update
    ...

A neuron update is *active* when the neuron received at least one event (spike or nonzero
analog input through a synapse) in that step or spiked; otherwise it is inactive. Only
profiles that price the two differently (Loihi) use the split.

A leaky neuron's update (LIF, CubaLIF, LI) costs the IF update plus one ``decay`` per state
variable that decays (``0 < dt/τ < 1``: a LIF's membrane, a CubaLIF's current and membrane):
forward Euler's leak term, one multiply and one add. The counts carry ``decays`` (and
``leaky_neuron_updates``, the updates of neurons with at least one decay) where the graph has
leaky populations (:func:`kdsnn.deploy.synops.leaky_counts`); a profile without ``ops.decay``
is refused for such counts, never priced as IF.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdsnn.errors import KdsnnError

from .data_files import builtin_names, load_data_file

OPS = ("synop", "mac", "neuron_update", "neuron_update_active", "neuron_update_inactive", "decay")


@dataclass(frozen=True)
class Op:
    """Energy of one operation and where the number comes from."""

    joules: float
    source: str


@dataclass(frozen=True)
class Profile:
    """A hardware profile: per-operation energies with sources."""

    name: str
    description: str
    ops: dict[str, Op]
    origin: str

    @property
    def split_updates(self) -> bool:
        """Whether active and inactive neuron updates are priced separately."""
        return "neuron_update_active" in self.ops


def builtin_profiles() -> list[str]:
    """Names of the energy profiles shipped with kdsnn."""
    return builtin_names("profiles")


def load_profile(spec: str | Path | Profile) -> Profile:
    """A built-in profile by name, or a TOML/JSON profile file by path (validated)."""
    if isinstance(spec, Profile):
        return spec
    return load_data_file(spec, "profiles", "energy profile",
                          lambda data, origin, name: parse_profile(data, origin, default_name=name))


def parse_profile(data: Mapping[str, Any], origin: str, default_name: str = "custom") -> Profile:
    """Validate a profile's content; every problem is a one-line :class:`KdsnnError`."""
    unknown = set(data) - {"name", "description", "ops"}
    if unknown:
        raise KdsnnError(f"energy profile {origin}: unknown top-level key(s) {', '.join(sorted(unknown))} "
                         "(allowed: name, description, ops)")
    name, desc = data.get("name", default_name), data.get("description", "")
    if not isinstance(name, str) or not name or not isinstance(desc, str):
        raise KdsnnError(f"energy profile {origin}: 'name' and 'description' must be strings")
    ops_raw = data.get("ops")
    if not isinstance(ops_raw, Mapping):
        raise KdsnnError(f"energy profile {origin}: needs an [ops] table with synop, mac and neuron_update entries")
    bad = set(ops_raw) - set(OPS)
    if bad:
        raise KdsnnError(f"energy profile {origin}: unknown operation(s) {', '.join(sorted(bad))} "
                         f"(known: {', '.join(OPS)})")
    ops: dict[str, Op] = {}
    for key, entry in ops_raw.items():
        if not isinstance(entry, Mapping) or set(entry) != {"joules", "source"}:
            raise KdsnnError(f"energy profile {origin}: ops.{key} must have exactly 'joules' and 'source'")
        j, src = entry["joules"], entry["source"]
        if isinstance(j, bool) or not isinstance(j, (int, float)) or not math.isfinite(j) or j < 0:
            raise KdsnnError(f"energy profile {origin}: ops.{key}.joules must be a finite number ≥ 0, got {j!r}")
        if not isinstance(src, str) or not src.strip():
            raise KdsnnError(f"energy profile {origin}: ops.{key}.source must say where the number comes from")
        ops[key] = Op(float(j), src)
    for need in ("synop", "mac"):
        if need not in ops:
            raise KdsnnError(f"energy profile {origin}: ops.{need} is missing")
    split = {"neuron_update_active", "neuron_update_inactive"} & set(ops)
    if ("neuron_update" in ops) == bool(split) or len(split) == 1:
        raise KdsnnError(f"energy profile {origin}: give either ops.neuron_update or both "
                         "ops.neuron_update_active and ops.neuron_update_inactive")
    return Profile(name, desc, ops, origin)


def _count(stats: Mapping[str, Any], key: str) -> float:
    if key not in stats:
        raise KdsnnError(f"simulation statistics lack {key!r} (pass SimResult.per_sample())")
    v = stats[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise KdsnnError(f"simulation statistic {key!r} must be a count ≥ 0, got {v!r}")
    return float(v)


def _line(count: float, op: Op) -> dict[str, float]:
    return {"count": count, "joules_each": op.joules, "joules": count * op.joules}


def energy_report(stats: Any, ann_macs: Mapping[str, int | float], profile: Profile | str | Path) -> dict[str, Any]:
    """Joules per inference of the SNN (breakdown) against ANNs given by their dense MACs.

    ``stats``: a :class:`~kdsnn.deploy.simulator.SimResult` or its ``per_sample()`` dict
    (synops, macs_effective, neuron_updates, and active_neuron_updates for split profiles;
    ``decays`` where the graph has leaky neurons, absent or 0 for IF-only graphs).
    ``ann_macs``: e.g. ``{"teacher": ..., "student_ann": ...}``, dense MACs per inference.
    """
    prof = load_profile(profile)
    per = stats.per_sample() if hasattr(stats, "per_sample") else stats
    if not isinstance(per, Mapping):
        raise KdsnnError("energy_report needs a SimResult or a mapping of per-inference counts")
    ops = prof.ops
    snn: dict[str, Any] = {"synops": _line(_count(per, "synops"), ops["synop"]),
                           "first_layer_macs": _line(_count(per, "macs_effective"), ops["mac"])}
    updates = _count(per, "neuron_updates")
    if prof.split_updates:
        active = _count(per, "active_neuron_updates")
        if active > updates:
            raise KdsnnError(f"active neuron updates ({active}) exceed all neuron updates ({updates})")
        snn["neuron_updates_active"] = _line(active, ops["neuron_update_active"])
        snn["neuron_updates_inactive"] = _line(updates - active, ops["neuron_update_inactive"])
    else:
        snn["neuron_updates"] = _line(updates, ops["neuron_update"])
    decays = _count(per, "decays") if "decays" in per else 0.0
    if decays > 0:
        if "decay" not in ops:
            raise KdsnnError(f"energy profile {prof.name} does not price a leaky neuron's decay (ops.decay), and the "
                             f"graph has {decays:.0f} decays per inference; add [ops.decay] with its source")
        snn["decays"] = _line(decays, ops["decay"])
    snn_total = sum(v["joules"] for v in snn.values())
    snn["total_joules"] = snn_total
    anns: dict[str, Any] = {}
    for name, macs in ann_macs.items():
        if isinstance(macs, bool) or not isinstance(macs, (int, float)) or not math.isfinite(macs) or macs < 0:
            raise KdsnnError(f"ANN MAC count for {name!r} must be a number ≥ 0, got {macs!r}")
        line = _line(float(macs), ops["mac"])
        line["snn_saving"] = line["joules"] / snn_total if snn_total > 0 else math.inf
        anns[name] = line
    return {"profile": prof.name, "description": prof.description, "origin": prof.origin, "unit": "J per inference",
            "snn": snn, "ann": anns, "sources": {k: v.source for k, v in ops.items()}}
