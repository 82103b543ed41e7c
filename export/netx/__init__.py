"""lava-dl netx export: the HDF5 network description ``lava.lib.dl.netx.hdf5.Network`` loads.

``plan`` turns a sequential integer graph into netx layers (pools composed into the next
synapse, thresholds and biases in Lava's fixed point, ranges checked against Loihi's, which
live in :mod:`kdsnn.export.loihi`), ``write`` writes the file atomically with the graph's
digest, ``read`` reads and describes one.
"""
from __future__ import annotations

from .plan import (
                   RESET_OFFSET,
                   NetxLayer,
                   NetxPlan,
                   Synapse,
                   compose,
                   compose_sumpool_conv,
                   compose_sumpool_dense,
                   lava_view,
                   netx_plan,
)
from .read import describe, read_info
from .write import FORMAT_VERSION, export_netx, graph_digest

__all__ = ["FORMAT_VERSION", "RESET_OFFSET", "NetxLayer", "NetxPlan", "Synapse", "compose", "compose_sumpool_conv",
           "compose_sumpool_dense", "describe", "export_netx", "graph_digest", "lava_view", "netx_plan", "read_info"]
