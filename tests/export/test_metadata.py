"""kdsnn's metadata in NIR and ONNX files: validated at load, one line naming the field."""
import json

import numpy as np
import pytest

from kdsnn.errors import KdsnnError
from kdsnn.export import metadata
from kdsnn.export.graph import student_to_graph
from tests.helpers import calibrated_student


@pytest.fixture(scope="module")
def meta(digits_preprocessing) -> dict:
    from kdsnn.export.graph import get_meta
    from kdsnn.export.quantize import quantize_graph

    g = student_to_graph(calibrated_student("snn_2conv", width=0.25), digits_preprocessing,
                         extra={"arch": "snn_2conv", "dataset": "digits"})
    return get_meta(quantize_graph(g, bits=8))


def test_what_kdsnn_writes_passes(meta):
    assert metadata.nir_meta(json.dumps(meta)) == meta
    # as nir stores it: bytes, or a 0-d array of bytes
    assert metadata.nir_meta(np.array(json.dumps(meta).encode())) == meta


@pytest.mark.parametrize("change, says", [
    ({"timesteps": 0}, "'timesteps' must be an integer ≥ 1, got 0"),
    ({"timesteps": 2.5}, "'timesteps' must be an integer ≥ 1, got 2.5"),
    ({"timesteps": True}, "'timesteps' must be an integer ≥ 1, got True"),
    ({"dt": float("nan")}, "'dt' must be a positive number"),
    ({"integer": "yes"}, "'integer' must be true or false"),
    ({"readout": "rate"}, "'readout' must be one of 'spike', 'membrane'"),
    ({"bits": 40}, "'bits' must be an integer in 2..16, got 40"),
    ({"input_scale": -1.0}, "'input_scale' must be a positive number"),
    ({"preprocessing": {"mean": "0.5"}}, "preprocessing: field 'mean' must be a list of finite numbers"),
    ({"quantization": {"conv1": "big"}}, "quantization of 'conv1' is str, not a table of fields"),
])
def test_a_wrong_field_is_named(meta, change, says):
    with pytest.raises(KdsnnError) as exc:
        metadata.nir_meta(json.dumps({**meta, **change}))
    assert says in str(exc.value)


def test_null_input_scale_and_unknown_fields_are_kept(meta):
    got = metadata.nir_meta(json.dumps({**meta, "input_scale": None, "future_field": [1]}))
    assert got["input_scale"] is None and got["future_field"] == [1]


@pytest.mark.parametrize("raw, says", [(b"\xff\xfe{", "is not valid JSON"), ("[]", "is list"), ("3", "is int"),
                                       ("[" * 100000 + "]" * 100000, "nests JSON too deeply")])
def test_not_a_record(raw, says):
    with pytest.raises(KdsnnError, match=says):
        metadata.nir_meta(raw)


def test_onnx_info_requires_its_fields(meta):
    info = {"form": "unrolled", "timesteps": 4, "encoding": "direct", "integer": True, "readout": "membrane",
            "input_scale": 0.1, "output_scale": 0.5, "states": {"if1": "v_if1"}, "nir_metadata": meta}
    assert metadata.onnx_info(json.dumps(info), "f.onnx") == info
    with pytest.raises(KdsnnError, match="f.onnx has no field 'form'"):
        metadata.onnx_info(json.dumps({k: v for k, v in info.items() if k != "form"}), "f.onnx")
    with pytest.raises(KdsnnError, match="nir_metadata: field 'timesteps'"):
        metadata.onnx_info(json.dumps({**info, "nir_metadata": {**meta, "timesteps": "four"}}), "f.onnx")
