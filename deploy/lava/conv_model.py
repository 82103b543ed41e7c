"""kdsnn's Conv process model for Lava's CPU backend: Lava's fixed-point Conv, vectorized, bit for bit.

Lava 0.10's ``PyConvModelFixed`` computes each step's convolution with one
``scipy.signal.convolve2d`` per (output, input) channel pair: a Python loop of C_out·C_in calls,
so a 512→512 layer costs 262,144 calls per step however few spikes arrive (docs/benchmarks.md, "Lava
at CIFAR scale"). ``VectorizedConvModel`` computes the same sums as one im2col matrix product per
group (:func:`conv_sums`): in float32 where every partial sum is an integer below 2**24 (binary
spikes times 8-bit kernels), else in float64 like Lava's own (integers are exact below 2**53 in any
order of addition), then converts exactly as Lava does: ``astype(int32)`` and the 24-bit signed wrap of
``a_out``. A step without any input spike sends zeros without computing. Everything else
(the one-step delay through ``a_buf``, binary or graded input, the variables it declares) is
inherited from Lava's model, so only the arithmetic's schedule changes. Each Conv process runs its
BLAS on one thread (Lava runs all of them at once).

:func:`conv_model_map` gives the ``exception_proc_model_map`` that makes Lava's compiler pick it
for every ``lava.proc.conv.process.Conv`` (netx's convolution blocks included). Lava forks its
process models from this process, so the model runs numpy only (Lava warns that torch hangs there).
"""
from __future__ import annotations

import numpy as np

_MODEL = None


FLOAT32_EXACT = 2 ** 24  # every integer of magnitude up to 2**24 is a float32, so are the sums that stay below


def kernel_matrices(weight: np.ndarray, groups: int) -> np.ndarray:
    """Lava's ``(C_out, KX, KY, C_in/groups)`` kernel as one float64 matrix per group, shaped
    ``(KX·KY·C_in/groups, C_out/groups)`` with rows in :func:`conv_sums`' im2col order ``(i, j, c)``: the
    correlation with the flipped kernel (a convolution is a correlation with the flipped kernel)."""
    c_out, kx, ky, c_grp = weight.shape
    flipped = weight[:, ::-1, ::-1, :].astype(np.float64)
    per_group = flipped.reshape(groups, c_out // groups, kx * ky * c_grp)
    return np.ascontiguousarray(per_group.transpose(0, 2, 1))


def sum_bound(kernels: np.ndarray) -> float:
    """The largest ``Σ |w|`` over one output neuron's fan-in: the sums of binary input stay within it."""
    return float(np.abs(kernels).sum(axis=1).max()) if kernels.size else 0.0


def conv_sums(input_: np.ndarray, kernels: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int],
              padding: tuple[int, int], dilation: tuple[int, int], bound: float | None = None,
              kernels32: np.ndarray | None = None) -> np.ndarray:
    """Lava's convolution (``lava.proc.conv.utils.conv_scipy``: a true convolution of the ``(X, Y, C_in)``
    input, zero padding, stride and dilation in XY order) with :func:`kernel_matrices` ``kernels``, as float64
    sums of shape ``(X_out, Y_out, C_out)``: one im2col matrix product per group.

    The product is float32 (several times faster) where every partial sum is an integer below 2**24, so
    exact: ``max |input| × bound`` under :data:`FLOAT32_EXACT` (``bound``: :func:`sum_bound` of the kernels;
    ``kernels32``: the kernels as float32, converted once by the caller); float64 otherwise (exact below 2**53,
    far beyond Lava's 24-bit values)."""
    x_in, y_in, c_in = input_.shape
    (kx, ky), (sx, sy), (px, py), (dx, dy) = kernel_size, stride, padding, dilation
    groups, _, k_grp = kernels.shape
    c_grp = c_in // groups
    x_out = (x_in + 2 * px - dx * (kx - 1) - 1) // sx + 1
    y_out = (y_in + 2 * py - dy * (ky - 1) - 1) // sy + 1
    peak = float(np.abs(input_).max()) if input_.size else 0.0
    dtype = np.float32 if bound is not None and peak * bound < FLOAT32_EXACT else np.float64
    if dtype is np.float32:
        kernels = kernels32 if kernels32 is not None else kernels.astype(np.float32)
    padded = np.zeros((x_in + 2 * px, y_in + 2 * py, c_in), dtype=dtype)
    padded[px:px + x_in, py:py + y_in] = input_
    out = np.empty((x_out * y_out, groups * k_grp), dtype=np.float64)
    cols = np.empty((x_out, y_out, kx, ky, c_grp), dtype=dtype)
    for g in range(groups):
        chans = slice(g * c_grp, (g + 1) * c_grp)
        for i in range(kx):
            for j in range(ky):
                cols[:, :, i, j] = padded[i * dx:i * dx + sx * (x_out - 1) + 1:sx,
                                          j * dy:j * dy + sy * (y_out - 1) + 1:sy, chans]
        out[:, g * k_grp:(g + 1) * k_grp] = cols.reshape(x_out * y_out, -1) @ kernels[g]
    return out.reshape(x_out, y_out, groups * k_grp)


def single_threaded_blas() -> None:
    """Limit this process's BLAS to one thread. Lava steps every Conv process at once, one OS process each:
    a BLAS thread pool in each of them would only compete with the others for the cores, and OpenBLAS's
    idle workers spin (measured: as much CPU as the products themselves). threadpoolctl is a kdsnn
    dependency; without it the BLAS keeps its default."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a kdsnn dependency
        return
    threadpool_limits(1, user_api="blas")


def vectorized_conv_model() -> type:
    """The Lava process model class (built on first use, so importing kdsnn does not import Lava)."""
    global _MODEL
    if _MODEL is not None:
        return _MODEL
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.conv import utils
    from lava.proc.conv.models import PyConvModelFixed
    from lava.proc.conv.process import Conv

    @implements(proc=Conv, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class VectorizedConvModel(PyConvModelFixed):
        """Lava's fixed-point Conv with the sums of :func:`conv_sums` (see the module docstring)."""

        def run_spk(self) -> None:
            self.a_out.send(self.a_buf)
            s_in = self.s_in.recv() if self.num_message_bits.item() > 0 else self.s_in.recv().astype(bool)
            if not s_in.any():
                self.a_buf = np.zeros(self.a_out.shape, dtype=np.int32)
                return
            if getattr(self, "_kernels", None) is None:  # the weights are fixed for the run: converted once
                single_threaded_blas()
                self._kernels = kernel_matrices(self.weight, int(np.asarray(self.groups).ravel()[0]))
                self._kernels32, self._bound = self._kernels.astype(np.float32), sum_bound(self._kernels)
                self._geometry = [tuple(int(v) for v in np.asarray(g).ravel())
                                  for g in (self.weight.shape[1:3], self.stride, self.padding, self.dilation)]
            sums = conv_sums(s_in, self._kernels, *self._geometry, bound=self._bound, kernels32=self._kernels32)
            self.a_buf = utils.signed_clamp(sums.astype(self.weight.dtype), bits=24)

    _MODEL = VectorizedConvModel
    return _MODEL


def conv_model_map(conv_model: str) -> dict:
    """Lava's ``exception_proc_model_map`` for ``conv_model``: ``"kdsnn"`` (:func:`vectorized_conv_model`) or
    ``"lava"`` (Lava's own ``PyConvModelFixed``: no exception)."""
    if conv_model == "lava":
        return {}
    from lava.proc.conv.process import Conv

    return {Conv: vectorized_conv_model()}
