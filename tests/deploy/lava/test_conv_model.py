"""kdsnn's vectorized Conv process model against Lava's own, sum for sum and spike for spike.

The sums are checked against Lava's ``conv_scipy`` (the arithmetic of its ``PyConvModelFixed``) on
random integer kernels and inputs over the geometries Lava takes (stride, padding, dilation,
groups, binary and graded input, sums beyond the 24-bit ``a_out``). Whole runs: the small students
on both routes (netx for snn_2conv, the process graph for snn_resnet14 and snn_wrn16_2, graded input
for snn_resnet14) give identical spikes at every population and identical logits with Lava's model
and with kdsnn's.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kdsnn import data
from kdsnn.deploy.lava import lava_available, run_lava
from kdsnn.errors import KdsnnError
from kdsnn.export.graph import student_to_graph
from kdsnn.export.quantize import quantize_graph
from tests.helpers import assert_same_run, calibrated_student

LAVA_OK, LAVA_WHY = lava_available()
needs_lava = pytest.mark.skipif(not LAVA_OK, reason=f"Lava not importable: {LAVA_WHY}")


def lava_step(input_, weight, stride, padding, dilation, groups) -> np.ndarray:
    """What Lava's PyConvModelFixed sends for one step's input (its conv, int32 cast and 24-bit wrap)."""
    from lava.proc.conv import utils

    k = weight.shape[1:3]
    sums = utils.conv_scipy(input_, weight, k, stride, padding, dilation, groups)
    return utils.signed_clamp(sums.astype(weight.dtype), bits=24)


def kdsnn_step(input_, weight, stride, padding, dilation, groups) -> np.ndarray:
    from lava.proc.conv import utils

    from kdsnn.deploy.lava.conv_model import conv_sums, kernel_matrices, sum_bound

    kernels = kernel_matrices(weight, groups)
    sums = conv_sums(input_, kernels, weight.shape[1:3], stride, padding, dilation, sum_bound(kernels))
    assert np.array_equal(sums, conv_sums(input_, kernels, weight.shape[1:3], stride, padding, dilation))  # float64
    return utils.signed_clamp(sums.astype(weight.dtype), bits=24)


@needs_lava
@pytest.mark.parametrize("shape, c_out, kernel, stride, padding, dilation, groups, graded", [
    ((9, 7, 3), 5, (3, 3), (1, 1), (1, 1), (1, 1), 1, False),   # the students' 3×3 same conv (non-square map)
    ((8, 8, 4), 6, (3, 3), (2, 2), (1, 1), (1, 1), 1, False),   # a strided downsampling conv
    ((8, 8, 4), 6, (1, 1), (2, 2), (0, 0), (1, 1), 1, False),   # a 1×1 projection shortcut
    ((10, 6, 4), 4, (3, 2), (2, 1), (2, 0), (2, 1), 2, False),  # uneven kernel, stride, padding, dilation; groups
    ((6, 6, 2), 3, (6, 6), (2, 2), (2, 2), (1, 1), 1, False),   # a 3×3 conv with a 2×2 sum pool composed in
    ((8, 8, 3), 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),    # graded input (integers up to 2**12)
])
def test_sums_equal_lavas_conv(shape, c_out, kernel, stride, padding, dilation, groups, graded):
    rng = np.random.default_rng(0)
    weight = rng.integers(-128, 128, (c_out, *kernel, shape[2] // groups)).astype(np.int32)
    for density in (0.05, 0.3, 1.0):
        x = (rng.random(shape) < density).astype(np.int32)
        if graded:
            x *= rng.integers(-2 ** 12, 2 ** 12, shape).astype(np.int32)
        got = kdsnn_step(x, weight, stride, padding, dilation, groups)
        want = lava_step(x, weight, stride, padding, dilation, groups)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
        assert np.abs(want).max() > 0


@needs_lava
def test_sums_beyond_24_bits_wrap_as_lavas():
    """Graded sums past a_out's 24 bits are wrapped by both models alike (run_lava then refuses the run)."""
    weight = np.full((2, 3, 3, 2), 127, dtype=np.int32)
    x = np.full((4, 4, 2), 2 ** 14, dtype=np.int32)
    got = kdsnn_step(x, weight, (1, 1), (1, 1), (1, 1), 1)
    want = lava_step(x, weight, (1, 1), (1, 1), (1, 1), 1)
    assert np.array_equal(got, want)
    assert 127 * 2 ** 14 * 18 > 2 ** 23 and np.abs(got).max() < 2 ** 23  # wrapped, by the same rule


@needs_lava
def test_the_compiler_selects_kdsnns_model_only_when_asked():
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.models import PyConvModelFixed
    from lava.proc.conv.process import Conv

    from kdsnn.deploy.lava.conv_model import conv_model_map, vectorized_conv_model

    proc = Conv(weight=np.ones((2, 3, 3, 1), dtype=np.int32), input_shape=(4, 4, 1))
    chosen = {name: Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=conv_model_map(name))
              .select(proc, [PyConvModelFixed]) for name in ("kdsnn", "lava")}
    assert chosen == {"kdsnn": vectorized_conv_model(), "lava": PyConvModelFixed}
    assert issubclass(chosen["kdsnn"], PyConvModelFixed)  # same variables and ports; only run_spk differs


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return data.sample_batch("digits", 2)[0]


def same_spikes(a, b) -> None:
    assert sorted(a.spikes) == sorted(b.spikes)
    for name in a.spikes:
        assert np.array_equal(a.spikes[name], b.spikes[name]), name
    assert torch.equal(a.logits, b.logits)
    assert a.lags == b.lags and a.lava_steps == b.lava_steps


@needs_lava
@pytest.mark.parametrize("arch, readout, graded", [
    ("snn_2conv", "spike", False),          # the netx route (netx's Conv blocks hold Lava's Conv process)
    ("snn_resnet14", "membrane", False),    # the process-graph route: Conv, 1×1 projection Convs, Sparse shortcuts
    ("snn_wrn16_2", "membrane", False),
    ("snn_resnet14", "membrane", True),     # graded input into the first Conv (num_message_bits > 0)
])
def test_runs_equal_lavas_own_conv_model(digits_preprocessing, inputs, arch, readout, graded):
    width = 1.0 if arch == "snn_2conv" else 0.25
    graph = quantize_graph(student_to_graph(calibrated_student(arch, readout=readout, width=width),
                                            digits_preprocessing))
    ours = run_lava(graph, inputs, progress=False, graded_input=graded)
    lavas = run_lava(graph, inputs, progress=False, graded_input=graded, conv_model="lava")
    assert ours.route == lavas.route == ("netx" if arch == "snn_2conv" else "process-graph")
    same_spikes(ours, lavas)
    assert_same_run(graph, inputs, ours)  # and both are the integer graph's spikes


@needs_lava
def test_unknown_conv_model_is_refused(digits_preprocessing, inputs):
    graph = quantize_graph(student_to_graph(calibrated_student("snn_2conv", readout="spike"), digits_preprocessing))
    with pytest.raises(KdsnnError, match="unknown Lava conv model 'fast'; choose one of kdsnn, lava"):
        run_lava(graph, inputs, conv_model="fast")
