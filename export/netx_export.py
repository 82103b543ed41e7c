"""lava-dl netx export, as one import: the planner, the writer and the reader live in
:mod:`.netx_plan`, :mod:`.netx_write` and :mod:`.netx_read`; Loihi's ranges in :mod:`.loihi`."""
from __future__ import annotations

from .loihi import BIAS_MAX, BIAS_MIN, I_DECAY, STATE_MAX, V_DECAY, VTH_MAX, WEIGHT_MAX
from .netx_plan import (RESET_OFFSET, NetxLayer, NetxPlan, Synapse, compose, compose_sumpool_conv,
                        compose_sumpool_dense, lava_view, netx_plan)
from .netx_read import describe, read_info
from .netx_write import FORMAT_VERSION, export_netx, graph_digest

__all__ = ["BIAS_MAX", "BIAS_MIN", "FORMAT_VERSION", "I_DECAY", "RESET_OFFSET", "STATE_MAX", "V_DECAY", "VTH_MAX",
           "WEIGHT_MAX", "NetxLayer", "NetxPlan", "Synapse", "compose", "compose_sumpool_conv", "compose_sumpool_dense",
           "describe", "export_netx", "graph_digest", "lava_view", "netx_plan", "read_info"]
