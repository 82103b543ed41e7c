"""Loihi 2's number ranges, in one place: quantization reports them, netx and Lava refuse beyond them.

Every constant is read off Lava's own fixed-point models (lava-nc 0.10.0, lava-dl 0.6.0):

- **Weights.** ``lava/proc/dense/models.py`` (``PyDenseModelBitAcc``, and ``Sparse`` alike)
  clips weights to 8 bits and then ``truncate_weights`` drops one low bit when a layer's
  weights have mixed signs (``lava/utils/weightutils.py``: ``num_truncate_bits = 8 −
  num_weight_bits + is_mixed``): a mixed-sign synapse is an 8-bit *signed* mantissa
  ``m ∈ [−128, 127]`` held as ``2m``, scaled by ``2^weight_exp``. lava-dl's netx loader does the
  same (``lava/lib/dl/netx/utils.py``, ``optimize_weight_bits``: clips to [−256, 254] and shifts
  by one bit for signed weights). kdsnn uses the symmetric part of that mantissa with exponent
  0, ``|w| ≤ 127``: every route (netx Dense and Conv, the process graph's Dense, Sparse and
  Conv) represents it exactly, and symmetric 8-bit quantization never leaves it. A 9-bit
  weight such as 255 is *not* exact on a mixed-sign layer (its low bit is truncated).
- **Bias.** ``PyLifModelBitAcc``: ``bias_mant`` is a signed 13-bit integer, netx uses
  ``bias_exp = 6``.
- **Threshold.** ``vth`` is an unsigned 17-bit integer (``PyLifModelBitAcc`` docstring).
- **State.** Current ``u`` and voltage ``v`` are 24-bit (``AbstractPyLifModelFixed.uv_bitwidth``);
  synaptic input, bias and threshold are shifted left by 6 bits (``act_shift``, ``vth_shift``,
  ``bias_exp = 6``), so a value ``x`` of ours is held as ``64·x`` and must satisfy
  ``|x| ≤ 2^17 − 1``. Lava wraps the current and clips the voltage beyond that.
- **Decays.** Our IF is Lava's CUBA/LIF neuron with the current living one step
  (``du = 4095``; Lava adds ``ds_offset = 1``, so the effective decay is 4096/4096) and no
  voltage leak (``dv = 0``). netx writes ``iDecay = 4096`` and loads ``du = iDecay − 1``.
"""
from __future__ import annotations

import numpy as np

WEIGHT_MANTISSA_BITS = 8  # signed mantissa of a mixed-sign synapse (sign included)
WEIGHT_MAX = 2 ** (WEIGHT_MANTISSA_BITS - 1) - 1  # 127: |w| ≤ 127, exponent 0
BIAS_BITS = 13  # signed bias mantissa
BIAS_MIN, BIAS_MAX = -(2 ** (BIAS_BITS - 1)), 2 ** (BIAS_BITS - 1) - 1
BIAS_EXP = 6  # netx's (and kdsnn's) bias exponent: bias·64, aligned with the shifted input
VTH_BITS = 17  # unsigned threshold mantissa
VTH_MAX = 2 ** VTH_BITS - 1
STATE_BITS = 24  # current and voltage registers
SHIFT = 6  # synaptic input and threshold are shifted left by 6 bits
STATE_MAX = 2 ** (STATE_BITS - 1 - SHIFT) - 1  # |value| ≤ 131071 once shifted by 6 bits
I_DECAY = 4096  # netx's iDecay: the current decays fully each step (u[t] = a[t])
DU = I_DECAY - 1  # Lava's du for the same (Lava adds ds_offset = 1)
V_DECAY = 0  # no membrane leak


def weight_fits(weight: np.ndarray) -> bool:
    """Whether integer weights fit Loihi's synapse exactly (``|w| ≤ WEIGHT_MAX``)."""
    w = np.asarray(weight)
    return bool(w.size == 0 or int(np.abs(w).max()) <= WEIGHT_MAX)


def lava_weights(weight: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer weights ``|w| ≤ 127`` as Lava's bit-accurate Dense/Sparse hold them: ``(2w, −1)``.

    Lava truncates the low bit of mixed-sign weights, so it is given ``2w`` with
    ``weight_exp = −1``: ``(Σ 2w·s) >> 1 = Σ w·s`` exactly (an even sum shifts exactly).
    """
    return np.asarray(weight, dtype=np.int64) * 2, -1
