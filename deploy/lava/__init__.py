"""Lava (Intel's Loihi 2 simulator, ``Loihi2SimCfg(select_tag='fixed_pt')``) as a backend.

Two routes, chosen per graph by :func:`lava_route`: sequential graphs go through a lava-dl netx
file (``netx``), any other graph (residual students, leaky populations) is wired as a Lava
process graph built from the NIR graph (``plan`` decides the processes and relays, ``graph``
builds and runs them). ``runtime`` holds what both share: availability, the per-sample
streaming run, host-side first layer and readout, timing alignment. ``conv_model`` is kdsnn's
vectorized fixed-point Conv process model (bit for bit Lava's, chosen for both routes), ``estimate``
the run's time predicted from its plan. ``backend`` is the entry point the backend registry calls.
Nothing here imports Lava until a graph is run.
"""
from __future__ import annotations

from .backend import lava_route, lava_supports, run_lava
from .runtime import lava_available

__all__ = ["lava_available", "lava_route", "lava_supports", "run_lava"]
