"""Loihi 2's number ranges, in one place: quantization reports them, netx and Lava refuse beyond them.

Every constant is read off Lava's own fixed-point models (lava-nc 0.10.0, lava-dl 0.6.0):

- **Weights.** ``lava/proc/dense/models.py`` (``PyDenseModelBitAcc``, and ``Sparse`` alike)
  clips weights to 8 bits and then ``truncate_weights`` drops one low bit when a layer's
  weights have mixed signs (``lava/utils/weightutils.py``: ``num_truncate_bits = 8 −
  num_weight_bits + is_mixed``): a mixed-sign synapse is an 8-bit *signed* mantissa
  ``m ∈ [−128, 127]`` held as ``2m``, scaled by ``2^weight_exp``. lava-dl's netx loader does the
  same (``lava/lib/dl/netx/utils.py``, ``optimize_weight_bits``: clips to [−256, 254] and shifts
  by one bit for signed weights). A layer's weights fit when they are ``m·2^e`` with one shared
  exponent ``0 ≤ e ≤ 7`` and the symmetric part of the mantissa, ``|m| ≤ 127``
  (:func:`weight_exponent`): Lava's Dense and Sparse accumulate ``Σ w·s`` and shift it by
  ``weight_exp`` (``PyDenseModelBitAcc.run_spk``), so ``(2m, weight_exp = e − 1)`` is exact
  (:func:`lava_weights`). The exponent's bound 7 is Loihi's ``weightExp`` range (−8 … 7, Davies
  et al., IEEE Micro 2018; Lava does not bound it); kdsnn's quantization uses e ≥ 0 only (the 2^e
  mantissas of a first layer that sums analog input and spikes). A 9-bit weight such as 255 is
  *not* exact (odd, so e = 0, and beyond the mantissa). lava-dl's netx loader picks its own
  exponent from the largest weight and clips beyond ±254, so the netx route keeps ``e = 0``.
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

from kdsnn.errors import KdsnnError

WEIGHT_MANTISSA_BITS = 8  # signed mantissa of a mixed-sign synapse (sign included)
WEIGHT_MAX = 2 ** (WEIGHT_MANTISSA_BITS - 1) - 1  # 127: |mantissa| ≤ 127
WEIGHT_EXP_MAX = 7  # the shared exponent e of w = m·2^e (Loihi's weightExp reaches 7)
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


def weight_exponent(weight: np.ndarray, lo: int = -WEIGHT_MAX, hi: int = WEIGHT_MAX,
                    max_exponent: int = WEIGHT_EXP_MAX) -> int | None:
    """The least shared exponent ``e`` (0 … ``max_exponent``) with every weight ``m·2^e``, ``lo ≤ m ≤ hi``;
    None when there is none (a non-integer weight, an odd one beyond the mantissa, or too large).

    Loihi's rule by default; the map command passes a target file's mantissa range and exponent bound."""
    w = np.asarray(weight, dtype=np.float64)
    if w.size == 0:
        return 0
    if not np.all(np.isfinite(w)) or not np.all(w == np.round(w)):
        return None
    for e in range(max_exponent + 1):
        m = w / 2 ** e
        if not np.all(m == np.round(m)):
            return None  # a weight not divisible by 2^e is not divisible by any larger power either
        if float(m.min()) >= lo and float(m.max()) <= hi:
            return e
    return None


def weight_fits(weight: np.ndarray) -> bool:
    """Whether integer weights fit Loihi's synapse exactly: an 8-bit mantissa ``|m| ≤ 127`` times one shared
    ``2^e``, ``0 ≤ e ≤ 7`` (:func:`weight_exponent`)."""
    return weight_exponent(weight) is not None


def bias_fits(bias: np.ndarray) -> bool:
    """Whether integer biases fit Loihi's signed 13-bit ``bias_mant`` (exponent 6, aligned with the input)."""
    b = np.asarray(bias, dtype=np.float64)
    return bool(b.size == 0 or (float(b.min()) >= BIAS_MIN and float(b.max()) <= BIAS_MAX))


def threshold_fits(threshold: np.ndarray) -> bool:
    """Whether integer thresholds fit Loihi's unsigned 17-bit ``vth``."""
    t = np.asarray(threshold, dtype=np.float64)
    return bool(t.size == 0 or (float(t.min()) >= 0 and float(t.max()) <= VTH_MAX))


def lava_weights(weight: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer weights ``m·2^e`` (:func:`weight_fits`) as Lava's bit-accurate Dense/Sparse hold them:
    ``(2m, e − 1)``.

    Lava truncates the low bit of mixed-sign weights, so it is given ``2m`` and shifts the accumulated
    sum by ``weight_exp = e − 1``: ``(Σ 2m·s) >> 1 = Σ m·s`` for e = 0 (an even sum shifts exactly),
    ``(Σ 2m·s) << (e − 1) = Σ w·s`` beyond.
    """
    e = weight_exponent(weight)
    if e is None:
        w = np.asarray(weight)
        raise KdsnnError(f"weights up to {float(np.abs(w).max()):.0f} are no 8-bit mantissa times 2^e "
                         f"(|m| ≤ {WEIGHT_MAX}, 0 ≤ e ≤ {WEIGHT_EXP_MAX}); quantize with bits ≤ 8")
    return np.asarray(weight, dtype=np.int64) // 2 ** e * 2, e - 1
