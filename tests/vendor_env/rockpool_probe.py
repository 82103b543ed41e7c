"""Runs inside .venv-vendors/synsense (Rockpool 3.1.0, nir 1.0.4): what Rockpool's Xylo tools make of a file.

    python rockpool_probe.py FILE.nir P_IN P_HID

Reads FILE.nir with ``rockpool.nn.modules.from_nir``, maps ``as_graph()`` with the Xylo Audio 2 (SYNS61201)
``mapper`` (its design-rule check and allocation), quantizes with ``global_quantize``, runs
``config_from_specification`` as far as it goes without samna, and Rockpool's ``cycles_model`` on a
configuration stand-in holding the quantized matrices (the model reads only those attributes), with
input and hidden activity P_IN, P_HID. Prints one JSON line.
"""
from __future__ import annotations

import json
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import rockpool
from rockpool.devices.xylo.syns61201 import power_cycles_model, xylo_mapper, xylo_samna
from rockpool.nn.modules.torch.nir import from_nir
from rockpool.transform.quantize_methods import global_quantize

path, p_in, p_hid = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
net = from_nir(path)
report: dict = {"rockpool": rockpool.__version__}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        spec = xylo_mapper.mapper(net.as_graph(), weight_dtype="float", threshold_dtype="float", dash_dtype="float")
        report["drc"] = "passed"
    except xylo_mapper.DRCError as exc:
        report["drc"] = f"DRCError: {str(exc).splitlines()[0]}"
        spec = None
report["drc_warnings"] = sorted({str(w.message).splitlines()[0] for w in caught
                                 if issubclass(w.category, xylo_mapper.DRCWarning)})
if spec is not None:
    spec.update(global_quantize(**spec))
    w_in, w_rec, w_out = (np.asarray(spec[k]) for k in ("weights_in", "weights_rec", "weights_out"))
    report["spec"] = {k: np.asarray(spec[k]).tolist() for k in ("weights_in", "weights_rec", "weights_out", "threshold",
                                                                "threshold_out", "dash_mem", "dash_syn",
                                                                "dash_mem_out", "dash_syn_out", "bias", "bias_out")
                      if spec.get(k) is not None}
    report["shapes"] = {"weights_in": list(w_in.shape), "weights_rec": list(w_rec.shape),
                        "weights_out": list(w_out.shape)}
    try:
        xylo_samna.config_from_specification(**{**spec, "bias_hidden": spec.get("bias")})
        report["config_from_specification"] = None
    except Exception as exc:  # the samna stand-in names the samna call it reached
        report["config_from_specification"] = f"{type(exc).__name__}: {exc}"
    config = SimpleNamespace(input=SimpleNamespace(weights=w_in[:, :, 0]),
                             reservoir=SimpleNamespace(weights=w_rec[:, :, 0],
                                                       neurons=[SimpleNamespace(alias_target=None)] * w_rec.shape[0]),
                             readout=SimpleNamespace(weights=w_out), synapse2_enable=False)
    report["cycles"] = float(power_cycles_model.cycles_model(config, p_in, p_hid, 1.0)[0])
print(json.dumps(report))
