"""Runs inside .venv-vendors/synsense (Sinabs 3.1.3, nir 1.0.4): what Sinabs makes of a kdsnn file.

    python sinabs_probe.py FILE.nir EVENTS.npy OUT.npz

Reads FILE.nir with nir 1.0.4, builds the network with ``sinabs.from_nir``, turns it into a
``DynapcnnNetwork`` (discretize=True, as for the chip), asks Sinabs' Speck config builder for its
layer-to-core mapping and each layer's configuration dict, tries the calls that need samna, and runs
the network's forward on EVENTS ``[T, B, C, H, W]`` with a hook on every layer's spiking module.
Prints one JSON line; writes each layer's spikes ``[T, B, ...]`` to OUT.npz (keys: layer indices).
"""
from __future__ import annotations

import json
import sys

import h5py
import nir
import numpy as np
import sinabs
import torch
from sinabs.backend.dynapcnn import DynapcnnNetwork
from sinabs.backend.dynapcnn.chip_factory import ChipFactory

path, events_path, out_path = sys.argv[1:4]
x = np.load(events_path)
T, B = x.shape[:2]
graph = nir.read(path)
with h5py.File(path, "r") as f:
    version = f["version"][()].decode()
report = {"file_version": version, "nir": nir.version, "sinabs": sinabs.__version__,
          "if_fields": sorted({k for n in graph.nodes.values() if isinstance(n, nir.IF) for k in vars(n)})}
model = sinabs.from_nir(graph, batch_size=B)
iafs = [m for m in model.modules() if isinstance(m, sinabs.layers.IAFSqueeze)]
report["neurons"] = [{"spike_fn": m.spike_fn.__name__, "reset_fn": type(m.reset_fn).__name__,
                      "min_v_mem": float(m.min_v_mem), "threshold": float(m.spike_threshold)} for m in iafs]
dn = DynapcnnNetwork(model, input_shape=tuple(x.shape[2:]), batch_size=B, discretize=True)
builder = ChipFactory("speck2fmodule").get_config_builder()
layers = dn.dynapcnn_layers
mapping = builder.map_layers_to_cores(layers)
report["mapping"] = {str(k): int(v) for k, v in mapping.items()}
report["memory"] = {kind: {str(k): int(v) for k, v in per.items()} for kind, per in dn.memory_summary().items()}
report["destinations"] = {str(k): [int(d) for d in v] for k, v in dn.layer_destination_map.items()}
configs = {}
for idx, layer in layers.items():
    c = builder.get_dynapcnn_layer_config_dict(layer, mapping, dn.layer_destination_map[idx])
    configs[str(idx)] = {"threshold_high": c["threshold_high"], "threshold_low": c["threshold_low"],
                         "return_to_zero": bool(c["return_to_zero"]), "weights": c["weights"], "biases": c["biases"],
                         "kernel_size": c["dimensions"]["kernel_size"],
                         "output_feature_count": c["dimensions"]["output_shape"]["feature_count"],
                         "destinations": [{"layer": d["layer"], "pooling": int(d["pooling"])}
                                          for d in c["destinations"]]}
report["configs"] = configs
needs = {}
for call, fn in (("DynapcnnNetwork.make_config", lambda: dn.make_config(device="speck2fmodule")),
                 ("ConfigBuilder.get_default_config", builder.get_default_config)):
    try:
        fn()
        needs[call] = None
    except Exception as exc:  # the samna stand-in names the samna call that was reached
        needs[call] = f"{type(exc).__name__}: {exc}"
report["samna_calls"] = needs
spikes: dict[str, list] = {str(k): [] for k in layers}
for idx, layer in layers.items():
    layer.spk_layer.register_forward_hook(lambda m, i, o, idx=idx: spikes[str(idx)].append(o.detach().clone()))
flat = torch.as_tensor(x, dtype=torch.float32).transpose(0, 1).reshape(B * T, *x.shape[2:])  # batch-major, as Squeeze
with torch.no_grad():
    dn(flat)
np.savez(out_path, **{k: v[0].reshape(B, T, *v[0].shape[1:]).transpose(0, 1).numpy() for k, v in spikes.items()})
print(json.dumps(report))
