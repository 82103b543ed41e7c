"""Runs inside .venv-vendors/synsense (Rockpool 3.1.0): the bit-shift decay Rockpool chooses for time constants.

    python rockpool_dash_probe.py DT TAU [TAU ...]

Prints one JSON line: ``dash`` per τ from ``rockpool.nn.modules.torch.lif_bitshift_torch.calc_bitshift_decay``
(Rockpool's rule for Xylo's ``v ← v − v/2^dash``), and the decay ``1 − 2^−dash`` its ``LIFBitshiftTorch`` applies.
"""
from __future__ import annotations

import json
import sys

import torch
from rockpool.nn.modules.torch.lif_bitshift_torch import calc_bitshift_decay

dt = float(sys.argv[1])
taus = torch.tensor([float(v) for v in sys.argv[2:]], dtype=torch.float64)
dash = calc_bitshift_decay(taus, dt)
print(json.dumps({"dash": dash.tolist(), "keep": (1 - 1 / 2.0 ** dash.double()).tolist()}))
