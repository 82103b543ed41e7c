"""The schema of kdsnn's own metadata in the files it writes, validated when a file is read.

Three JSON records: ``kdsnn`` in a NIR graph's metadata (T, dt, reset, encoding, readout,
integer mode, scales, quantization, data set: :data:`NIR_FIELDS`), ``kdsnn_read`` beside it
(how a foreign file was read: :data:`READING_FIELDS`) and ``kdsnn`` in an ONNX model's
metadata (:data:`ONNX_FIELDS`). A record that is not JSON, not a JSON object, or has a field of
the wrong type or range (``"timesteps": "four"``, ``-3``) is a one-line
:class:`~kdsnn.errors.KdsnnError` naming the field, raised where the file is read.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from kdsnn import schema as sc
from kdsnn.errors import KdsnnError

ENCODINGS = ("direct", "bernoulli", "events")
READOUTS = ("spike", "membrane")

NIR_FIELDS = {
    "producer": sc.text(), "dt": sc.number(positive=True), "reset": sc.one_of("hard", "soft"),
    "v_reset": sc.number(), "timesteps": sc.integer(1), "encoding": sc.one_of(*ENCODINGS),
    "readout": sc.one_of(*READOUTS), "preprocessing": sc.table(), "integer": sc.boolean(),
    "input_scale": sc.number(positive=True, nullable=True), "output_scale": sc.number(positive=True),
    "quantization": sc.table(), "bits": sc.integer(2, 16), "arch": sc.text(), "dataset": sc.text(),
    "source": sc.text(), "decays": sc.one_of("loihi", "xylo"),
}
QUANT_FIELDS = {  # one entry per quantized node
    "feeds": sc.text(), "current_scale": sc.number(positive=True), "input_scale": sc.number(positive=True),
    "weight_scale": sc.number(positive=True), "weight_bits": sc.integer(2, 16), "max_abs_weight": sc.integer(0),
    "max_abs_bias": sc.integer(0), "threshold_int": sc.integer(0), "fits_loihi_weight": sc.boolean(),
    "fits_24bit_bias": sc.boolean(), "fits_24bit_threshold": sc.boolean(),  # files written before the 13/17-bit flags
    "fits_loihi_bias": sc.boolean(), "fits_loihi_threshold": sc.boolean(), "weight_exponent": sc.integer(0),
}
PREPROCESSING_FIELDS = {"raw_scale": sc.number(positive=True), "mean": sc.number_list(), "std": sc.number_list()}
READING_FIELDS = {
    "nir_version": sc.text(nullable=True), "file_version": sc.text(nullable=True), "dt": sc.number(positive=True),
    "dt_from": sc.text(), "legacy_if_reset": sc.one_of("zero", "subtract"), "if_reset": sc.one_of("hard", "soft"),
    "if_reset_why": sc.text(),
    "notes": sc.Field("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
}
ONNX_FIELDS = {
    "form": sc.one_of("unrolled", "step", required=True), "timesteps": sc.integer(1, required=True),
    "encoding": sc.one_of(*ENCODINGS, required=True), "integer": sc.boolean(required=True),
    "readout": sc.one_of(*READOUTS, required=True), "input_scale": sc.number(positive=True, nullable=True),
    "output_scale": sc.number(positive=True), "states": sc.Field("a table of state names", lambda v: isinstance(v, dict)
                       and all(isinstance(x, str) for x in v.values())),
    "nir_metadata": sc.table(),
}


def decode(raw: Any, where: str) -> Any:
    """A JSON record as stored (str, bytes, or a 0-d array of either) → Python data."""
    if isinstance(raw, np.ndarray):
        raw = raw.item() if raw.size == 1 else raw
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        raise KdsnnError(f"{where} is not text holding JSON (it is {type(raw).__name__}); the file is damaged")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise KdsnnError(f"{where} is not valid JSON ({str(exc).splitlines()[0][:80]}); the file is damaged "
                         "or was edited by hand") from None
    except RecursionError:
        raise KdsnnError(f"{where} nests JSON too deeply to be kdsnn's metadata; the file is damaged") from None


def nir_meta(raw: Any, where: str = "the NIR file's kdsnn metadata") -> dict[str, Any]:
    """kdsnn's metadata of a NIR graph, validated."""
    return _checked_nir(decode(raw, where), where)


def _checked_nir(data: Any, where: str) -> dict[str, Any]:
    fix = "write the file again with kdsnn (or remove its 'kdsnn' metadata to read it as another tool's)"
    meta = sc.validate(data, NIR_FIELDS, where, fix)
    if meta.get("preprocessing"):
        sc.validate(meta["preprocessing"], PREPROCESSING_FIELDS, f"{where}, preprocessing", fix)
    for node, entry in (meta.get("quantization") or {}).items():
        sc.validate(entry, QUANT_FIELDS, f"{where}, quantization of {node!r}", fix)
    return meta


def reading_record(raw: Any, where: str = "the NIR file's kdsnn_read record") -> dict[str, Any]:
    """How kdsnn read a foreign NIR file before re-exporting it, validated."""
    return sc.validate(decode(raw, where), READING_FIELDS, where, "remove the 'kdsnn_read' metadata of the file")


def onnx_info(raw: Any, where: str) -> dict[str, Any]:
    """kdsnn's metadata of an exported ONNX model, validated (its NIR part too)."""
    info = sc.validate(decode(raw, where), ONNX_FIELDS, where, "export the file again with kdsnn")
    if "nir_metadata" in info:
        _checked_nir(info["nir_metadata"], f"{where}, nir_metadata")
    return info
