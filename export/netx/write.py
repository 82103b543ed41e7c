"""Write the lava-dl netx ``.net`` file (HDF5) of an integer graph, as :func:`netx_plan` splits it.

``/layer/0`` is an ``input`` entry (the host layer's spike shape), then ``conv``, ``flatten`` and
``dense`` entries, each with a CUBA ``neuron`` group; the root attribute ``kdsnn`` (JSON)
records T, the reset settings, the host's nodes, the readout and a digest of the graph
(docs/lava.md, "The file"). Files are written atomically.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import nir
import numpy as np

from kdsnn.atomic import atomic_path

from ..graph_view import GraphView
from ..loihi import I_DECAY, V_DECAY
from .plan import RESET_OFFSET, NetxLayer, lava_view, netx_plan

FORMAT_VERSION = 1


def graph_digest(graph: nir.NIRGraph) -> str:
    """SHA-256 over the graph's edges and numeric parameters: ties a netx file to its graph."""
    h = hashlib.sha256()
    for s, d in sorted(graph.edges):
        h.update(f"{s}>{d};".encode())
    for name in sorted(graph.nodes):
        node = graph.nodes[name]
        h.update(f"{name}:{type(node).__name__};".encode())
        for attr in ("weight", "bias", "scale", "v_threshold", "v_reset", "r", "kernel_size", "stride", "padding"):
            if hasattr(node, attr) and not isinstance(getattr(node, attr), str):
                h.update(attr.encode()
                         + np.ascontiguousarray(np.asarray(getattr(node, attr), dtype=np.float64)).tobytes())
    return h.hexdigest()


def _ascii(group: h5py.Group, key: str, text: str) -> None:
    group.create_dataset(key, (1,), f"S{max(len(text), 1)}", [text.encode("ascii")])


def _write_layer(group: h5py.Group, layer: NetxLayer) -> None:
    _ascii(group, "type", layer.kind)
    group.create_dataset("shape", data=np.asarray(layer.out_shape, dtype=np.int64))
    group.create_dataset("weight", data=layer.weight.astype(np.int64))
    group.create_dataset("bias", data=layer.bias.astype(np.int64))
    if layer.kind == "conv":
        group.create_dataset("stride", data=np.asarray(layer.stride, dtype=np.int64))
        group.create_dataset("padding", data=np.asarray(layer.padding, dtype=np.int64))
        group.create_dataset("dilation", data=np.asarray((1, 1), dtype=np.int64))
        group.create_dataset("groups", data=np.int64(1))
    else:
        group.create_dataset("inFeatures", data=np.int64(layer.weight.shape[1]))
        group.create_dataset("outFeatures", data=np.int64(layer.weight.shape[0]))
    neuron = group.create_group("neuron")
    _ascii(neuron, "type", "CUBA")
    for key, value in (("iDecay", I_DECAY), ("vDecay", V_DECAY), ("vThMant", layer.threshold), ("refDelay", 1)):
        neuron.create_dataset(key, data=np.int64(value))
    neuron.create_dataset("gradedSpike", data=False)


def export_netx(graph: nir.NIRGraph | GraphView, path: str | Path) -> Path:
    """Write the netx ``.net`` file of an integer graph (layers 2..L; see the module docstring)."""
    view = lava_view(graph)
    plan = netx_plan(view)
    info = {"producer": "kdsnn", "format_version": FORMAT_VERSION, "timesteps": plan.timesteps,
            "reset_interval": plan.timesteps, "reset_offset": RESET_OFFSET,
            "host_nodes": plan.host_nodes, "host_neuron": plan.host_neuron,
            "layers": [{"neuron": layer.neuron, "sources": layer.sources, "in_shape": list(layer.in_shape),
                        "warnings": layer.warnings} for layer in plan.layers],
            "readout_nodes": plan.readout_nodes, "readout": "host" if plan.readout_nodes else "spike",
            "input_scale": view.input_scale, "output_scale": view.output_scale,
            "graph_digest": graph_digest(view.graph)}
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["kdsnn"] = json.dumps(info)
            layers = f.create_group("layer")
            first = layers.create_group("0")
            _ascii(first, "type", "input")
            first.create_dataset("shape", data=np.asarray(plan.layers[0].in_shape, dtype=np.int64))
            index = 1
            for layer in plan.layers:
                if layer.flatten_before:
                    flat = layers.create_group(str(index))
                    _ascii(flat, "type", "flatten")
                    flat.create_dataset("shape", data=np.asarray(layer.in_shape, dtype=np.int64))
                    index += 1
                _write_layer(layers.create_group(str(index)), layer)
                index += 1
    return path
