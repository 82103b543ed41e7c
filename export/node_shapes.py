"""The shape arithmetic of NIR's linear nodes: what each node makes of an input of a given shape.

Convolutions (``Conv2d``; ``Conv1d`` read as a Conv2d over ``[C, 1, L]``), pooling windows, affine
maps over the last axis, ``Flatten`` and ``Scale``: their NIR fields (one or two integers, padding
strings) read once, the output size computed and checked against the input, a mismatch refused in
one line naming the node. The graph view (:mod:`~kdsnn.export.graph_view`) calls :func:`node_shape`
for every node; the runtime, the simulator, ONNX and SynOps read the same fields through
:func:`pair` and :func:`conv_pads`.
"""
from __future__ import annotations

from typing import Any

import nir
import numpy as np

from kdsnn.errors import KdsnnError

SYNAPTIC = (nir.Conv2d, nir.Conv1d, nir.Affine, nir.Linear, nir.Scale)
POOLS = (nir.SumPool2d, nir.AvgPool2d)


def pair(v: Any, what: str = "size", node: str = "?") -> tuple[int, int]:
    """A NIR size/stride/padding field (one or two integers) as ``(h, w)``."""
    a = np.atleast_1d(np.asarray(v))
    if a.size not in (1, 2) or not np.all(a == np.round(a)):
        raise KdsnnError(f"NIR node {node!r}: {what} {v!r} is not one or two integers")
    a = a.astype(int).tolist()
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def conv_pads(node: nir.Conv2d, name: str = "?") -> tuple[int, int, int, int]:
    """Zero padding of a Conv2d as ``(top, left, bottom, right)``; strings resolved as PyTorch does
    ('same': the extra pixel goes bottom/right, stride 1 only)."""
    w = np.asarray(node.weight)
    k = (int(w.shape[-2]), int(w.shape[-1])) if w.ndim == 4 else (1, 1)
    d = pair(node.dilation, "dilation", name)
    if isinstance(node.padding, str):
        if node.padding == "valid":
            return (0, 0, 0, 0)
        if node.padding == "same":
            if pair(node.stride, "stride", name) != (1, 1):
                raise KdsnnError(f"NIR node {name!r}: Conv2d padding 'same' needs stride 1 (as in PyTorch)")
            tot = (d[0] * (k[0] - 1), d[1] * (k[1] - 1))
            return (tot[0] // 2, tot[1] // 2, tot[0] - tot[0] // 2, tot[1] - tot[1] // 2)
        raise KdsnnError(f"NIR node {name!r}: unknown padding {node.padding!r} (use 'same', 'valid' or integers)")
    p = pair(node.padding, "padding", name)
    return (p[0], p[1], p[0], p[1])


def conv1d_as_2d(node: nir.Conv1d) -> nir.Conv2d:
    """A Conv1d over ``[C, L]`` as the Conv2d with a 1×K kernel over ``[C, 1, L]``: the same synapses, numbered
    the same in C order (what the simulator's explicit matrices and the SynOps count read)."""
    w = np.asarray(node.weight, dtype=np.float64)
    pad = node.padding if isinstance(node.padding, str) else (0, int(np.atleast_1d(node.padding)[0]))
    return nir.Conv2d(input_shape=None, weight=w[:, :, None, :], stride=(1, int(np.atleast_1d(node.stride)[0])),
                      padding=pad, dilation=(1, int(np.atleast_1d(node.dilation)[0])), groups=int(node.groups),
                      bias=np.asarray(node.bias, dtype=np.float64))


def window_out(size: tuple[int, int], k: tuple[int, int], s: tuple[int, int], pads: tuple[int, int, int, int],
               d: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Output size of a convolution or pooling window over ``size`` (pads: top, left, bottom, right)."""
    return ((size[0] + pads[0] + pads[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1,
            (size[1] + pads[1] + pads[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1)


def type_shape(t: Any) -> tuple[int, ...]:
    """A NIR type (an array of sizes) as a tuple of ints."""
    return tuple(int(v) for v in np.asarray(t).ravel().tolist())


def node_shape(name: str, node: nir.NIRNode, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of ``node`` on an input of ``shape``, checking that they fit."""
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight)
        if w.ndim != 4 or len(shape) != 3:
            raise KdsnnError(f"NIR node {name!r}: Conv2d needs a 4-D weight and a [C, H, W] input, "
                             f"got weight {w.shape} and input {shape}")
        groups = int(node.groups)
        if w.shape[1] * groups != shape[0] or w.shape[0] % groups:
            raise KdsnnError(f"NIR node {name!r}: Conv2d expects {w.shape[1] * groups} input channels, gets {shape[0]}")
        if node.input_shape is not None and np.asarray(node.input_shape).size == 2 \
                and pair(node.input_shape, "input_shape", name) != tuple(shape[1:]):
            raise KdsnnError(f"NIR node {name!r}: Conv2d declares input {pair(node.input_shape)} "
                             f"but receives {shape[1:]}")
        k, d = (int(w.shape[2]), int(w.shape[3])), pair(node.dilation, "dilation", name)
        hw = window_out(shape[1:], k, pair(node.stride, "stride", name), conv_pads(node, name), d)
        if hw[0] < 1 or hw[1] < 1:
            raise KdsnnError(f"NIR node {name!r}: Conv2d kernel {k[0]}×{k[1]} "
                             f"does not fit its {shape[1]}×{shape[2]} input")
        b = np.asarray(node.bias).ravel()
        if b.size not in (1, w.shape[0]):
            raise KdsnnError(f"NIR node {name!r}: bias has {b.size} values, expected {w.shape[0]}")
        return (int(w.shape[0]), *hw)
    if isinstance(node, nir.Conv1d):
        w = np.asarray(node.weight)
        if w.ndim != 3 or len(shape) != 2:
            raise KdsnnError(f"NIR node {name!r}: Conv1d needs a 3-D weight and a [C, L] input, "
                             f"got weight {w.shape} and input {shape}")
        if node.input_shape is not None and np.asarray(node.input_shape).size == 1 \
                and int(np.asarray(node.input_shape).ravel()[0]) != shape[1]:
            raise KdsnnError(f"NIR node {name!r}: Conv1d declares input length {int(np.asarray(node.input_shape))} "
                             f"but receives {shape[1]}")
        out = node_shape(name, conv1d_as_2d(node), (shape[0], 1, shape[1]))
        return (out[0], out[2])
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        n_in = int(np.prod(shape))
        if w.ndim != 2 or (not shape or w.shape[1] != shape[-1]) and w.shape[1] != n_in:
            raise KdsnnError(f"NIR node {name!r}: {type(node).__name__} weight {w.shape} does not fit an input of "
                             f"shape {shape}")
        if isinstance(node, nir.Affine):
            b = np.asarray(node.bias).ravel()
            if b.size not in (1, w.shape[0]):
                raise KdsnnError(f"NIR node {name!r}: bias has {b.size} values, expected {w.shape[0]}")
        # NIR applies an affine map to the last axis; a [C, H, W] map fed without Flatten is read flattened
        return (*shape[:-1], int(w.shape[0])) if shape and w.shape[1] == shape[-1] else (int(w.shape[0]),)
    if isinstance(node, POOLS):
        if len(shape) != 3:
            raise KdsnnError(f"NIR node {name!r}: pooling needs a [C, H, W] input, gets {shape}")
        k, s = pair(node.kernel_size, "kernel_size", name), pair(node.stride, "stride", name)
        p = pair(node.padding, "padding", name)
        hw = window_out(shape[1:], k, s, (p[0], p[1], p[0], p[1]))
        if hw[0] < 1 or hw[1] < 1:
            raise KdsnnError(f"NIR node {name!r}: pooling kernel {k[0]}×{k[1]} "
                             f"does not fit its {shape[1]}×{shape[2]} input")
        return (shape[0], *hw)
    if isinstance(node, nir.Flatten):
        out = node.output_type.get("output") if node.output_type else None
        if out is not None and np.asarray(out).size:
            new = type_shape(out)
            if int(np.prod(new)) != int(np.prod(shape)):
                raise KdsnnError(f"NIR node {name!r}: Flatten from {shape} to {new} changes the number of elements")
            return new
        nd = len(shape)
        start, end = int(node.start_dim) % max(nd, 1), int(node.end_dim) % max(nd, 1)
        return (*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:])
    if isinstance(node, nir.Scale):
        a = np.asarray(node.scale)
        if a.size != 1 and a.size != int(np.prod(shape)):
            raise KdsnnError(f"NIR node {name!r}: scale of shape {a.shape} does not match its input {shape}")
    return shape
