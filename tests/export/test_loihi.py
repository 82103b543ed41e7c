"""Loihi's number rules (export/loihi.py): the weight mantissa and shared exponent, bias and threshold, worked out
by hand; the loihi2 target file states the same numbers, so ``kdsnn map`` and ``kdsnn quantize`` judge alike."""
from __future__ import annotations

import numpy as np
import pytest

from kdsnn.deploy.targets.spec import load_target
from kdsnn.errors import KdsnnError
from kdsnn.export import loihi


@pytest.mark.parametrize("weights, exponent", [
    ([127, -127, 0], 0),          # the symmetric 8-bit mantissa itself
    ([254, -2], 1),               # 127·2, −1·2
    ([256, -128], 2),             # 128 > 127 at e = 1; 64·4, −32·4 at e = 2
    ([127 * 128, -128], 7),       # the largest exponent
    ([127 * 256], None),          # would need e = 8
    ([255, 2], None),             # odd and beyond the mantissa: Lava truncates its low bit
    ([128], 1),                   # 64·2
    ([0.5], None),                # not an integer
    ([], 0),
])
def test_weight_exponent_by_hand(weights, exponent):
    assert loihi.weight_exponent(np.array(weights, dtype=np.float64)) == exponent
    assert loihi.weight_fits(np.array(weights)) == (exponent is not None)


def test_lava_weights_are_twice_the_mantissa_with_the_exponent_less_one():
    # Lava's Dense truncates the low bit of mixed-sign weights and shifts its sum by weight_exp:
    # (Σ 2m·s) << (e − 1) = Σ m·2^e·s
    w, exp = loihi.lava_weights(np.array([[256, -128], [4, 0]]))
    assert exp == 1 and w.tolist() == [[128, -64], [2, 0]]
    s = np.array([1, 1])
    assert int((w @ s)[0]) << exp == 256 - 128
    w0, exp0 = loihi.lava_weights(np.array([127, -3]))
    assert exp0 == -1 and w0.tolist() == [254, -6]
    with pytest.raises(KdsnnError, match="no 8-bit mantissa"):
        loihi.lava_weights(np.array([255, 2]))


def test_bias_is_13_bit_signed_and_threshold_17_bit_unsigned():
    assert loihi.bias_fits(np.array([-4096, 4095])) and not loihi.bias_fits(np.array([4096]))
    assert not loihi.bias_fits(np.array([-4097]))
    assert loihi.threshold_fits(np.array([0, 131071])) and not loihi.threshold_fits(np.array([131072]))
    assert not loihi.threshold_fits(np.array([-1]))


def test_the_loihi2_target_file_states_the_same_rule():
    t = load_target("loihi2")
    assert (t.get("precision", "weight_min"), t.get("precision", "weight_max")) == (-loihi.WEIGHT_MAX, loihi.WEIGHT_MAX)
    assert t.get("precision", "weight_exponent_max") == loihi.WEIGHT_EXP_MAX
    assert (t.get("precision", "bias_min"), t.get("precision", "bias_max")) == (loihi.BIAS_MIN, loihi.BIAS_MAX)
    assert t.get("precision", "threshold_max") == loihi.VTH_MAX
