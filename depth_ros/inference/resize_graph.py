"""Pillow's bilinear resize as ONNX nodes: strided slices and one small MatMul per axis.

Pillow's ``BILINEAR`` resize (the runtime's :func:`~depth_ros.core.preprocess.resize_rgb` and
:func:`~depth_ros.core.postprocess.upsample`) is separable: along one axis, output pixel ``i``
is a weighted sum of input pixels with the triangle filter centred at ``(i + 0.5) n_in / n_out``
(half-pixel centres, edges to edges), its support widened by the shrink factor when shrinking
(antialias), and the weights of taps that fall outside the image dropped and the rest
renormalised. :func:`pillow_weights` is that (n_out, n_in) matrix.

The matrix is periodic away from the borders: with ``n_in / n_out = q / p`` in lowest terms,
output rows ``p k + r`` (phase ``r``) use the same ``L`` weights starting at input row
``q k + o_min``. So the interior is ``L`` strided Slices (``x[q k + o_min + l]``, step ``q``)
stacked and mixed by one (p, L) MatMul, the phases interleaved by Reshape/Transpose; the few
border rows whose taps are cut off are a small MatMul with their rows of the matrix each side,
concatenated around it. Every row is checked against the matrix when the nodes are built, so
the graph is Pillow's filter in float (Pillow rounds a uint8 image's result to uint8). A length
that does not change is left alone (as Pillow does), and sizes with no short period (481 ->
192) are one MatMul with the whole matrix.

Measured on 2 loaded cores (interleaved medians, 640x480 -> 640x192 of an NHWC float image):
ONNX Runtime's own antialiased ``Resize`` 5-7 ms (more than Pillow's ~3.3 ms on uint8); a grouped
``Conv`` form of the same filter 2.8 ms (ONNX Runtime runs it in its blocked NCHWc layout,
padding 2 output channels to 16 and reordering back); this form about 1 ms. Slice, Concat,
MatMul, Reshape and Transpose run under ONNX Runtime and TensorRT alike.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["pillow_weights", "resize_axis_nodes"]

#: Most taps per output pixel sliced out one by one (a 1/8 shrink has 17); a resize with more,
#: or with sizes that share no common factor (481 -> 192: one period of 481 rows), is one MatMul
#: with the whole weight matrix.
_MAX_TAPS = 24


def pillow_weights(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's bilinear resize along one axis as a matrix: ``out = W @ in``.

    Args:
        n_in, n_out: input and output length in pixels (>= 1).

    Returns:
        (n_out, n_in) float64; each row sums to 1.

    Convention: half-pixel centres, output ``i`` centred at input coordinate ``(i + 0.5) s``
    with ``s = n_in / n_out``; triangle filter of half-width ``max(s, 1)`` input pixels; taps
    outside ``[0, n_in)`` dropped and the rest renormalised (Pillow's ``precompute_coeffs``).
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"need positive lengths, got {n_in} -> {n_out}")
    scale = n_in / n_out
    support = max(scale, 1.0)
    weights = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        taps = np.arange(lo, hi)
        w = np.maximum(0.0, 1.0 - np.abs((taps - center + 0.5) / support))
        weights[i, lo:hi] = w / w.sum()
    return weights


def _polyphase(weights: np.ndarray) -> tuple[int, int, int, np.ndarray, list[int]] | None:
    """(q, p, o_min, kernels (p, L), border rows) of a weight matrix, or None when its border
    rows are not a run at each end (then the caller uses the matrix as it is)."""
    n_out, n_in = weights.shape
    g = math.gcd(n_in, n_out)
    q, p, groups = n_in // g, n_out // g, g
    k0 = groups // 2  # a middle group: its rows are interior when any are
    spans = [np.nonzero(weights[p * k0 + r])[0] for r in range(p)]
    o_min = min(int(s[0]) for s in spans) - q * k0
    length = max(int(s[-1]) for s in spans) - q * k0 - o_min + 1
    start = q * k0 + o_min
    kernels = np.zeros((p, length))
    for r in range(p):
        kernels[r, max(0, -start):] = weights[p * k0 + r, max(start, 0):start + length]
    border = []
    for i in range(n_out):
        k, r = divmod(i, p)
        s = q * k + o_min
        inside = 0 <= s and s + length <= n_in
        if not (inside and np.allclose(weights[i, s:s + length], kernels[r], rtol=0, atol=1e-9)
                and abs(weights[i].sum() - weights[i, s:s + length].sum()) < 1e-9):
            border.append(i)
    top = next((i for i in range(n_out) if i not in border), n_out)
    bottom = n_out - next((i for i in range(n_out) if n_out - 1 - i not in border), n_out)
    if len(border) != top + (n_out - bottom) or top >= bottom:
        return None
    return q, p, o_min, kernels, border


def _const(helper: Any, name: str, array: np.ndarray) -> Any:
    from onnx import numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def _matmul_rows(helper: Any, x: str, out: str, weights: np.ndarray, axis: int, first: int, name: str) -> list[Any]:
    """``weights`` (rows, cols) applied along ``axis`` (2 or 3) to input rows ``first .. first + cols``."""
    cols = weights.shape[1]
    nodes = [
        _const(helper, name + "/starts", np.array([first], np.int64)),
        _const(helper, name + "/ends", np.array([first + cols], np.int64)),
        _const(helper, name + "/axes", np.array([axis], np.int64)),
        helper.make_node("Slice", [x, name + "/starts", name + "/ends", name + "/axes"], [name + "/rows"]),
    ]
    if axis == 2:  # (r, c) @ (1, C, c, X) -> (1, C, r, X)
        nodes += [_const(helper, name + "/w", weights.astype(np.float32)),
                  helper.make_node("MatMul", [name + "/w", name + "/rows"], [out])]
    else:  # (1, C, X, c) @ (c, r) -> (1, C, X, r)
        nodes += [_const(helper, name + "/w", weights.T.astype(np.float32).copy()),
                  helper.make_node("MatMul", [name + "/rows", name + "/w"], [out])]
    return nodes


def resize_axis_nodes(helper: Any, x: str, out: str, shape: tuple[int, int, int, int], axis: int, n_out: int,
                      name: str) -> list[Any]:
    """ONNX nodes resizing a float (1, C, A, B) tensor along ``axis`` (2 or 3) to ``n_out`` pixels
    with :func:`pillow_weights` (see the module docstring).

    Args:
        helper: ``onnx.helper``.
        x: the input tensor's name; ``shape`` its static shape.
        out: the output tensor's name: ``shape`` with ``shape[axis]`` = ``n_out``.
        name: a unique prefix for the nodes' tensors.

    Returns:
        the nodes, in topological order (an Identity when the length does not change).
    """
    if axis not in (2, 3):
        raise ValueError(f"axis must be 2 or 3 of an NCHW tensor, got {axis}")
    n_in = shape[axis]
    if n_in == n_out:
        return [helper.make_node("Identity", [x], [out])]
    weights = pillow_weights(n_in, n_out)
    plan = _polyphase(weights)
    if plan is None:  # no periodic interior: the whole matrix
        return _matmul_rows(helper, x, out, weights, axis, 0, name + "/dense")
    q, p, o_min, kernels, border = plan
    top_rows = sum(1 for i in border if i < n_out // 2)
    k_lo = -(-top_rows // p)  # the interior: whole groups of p rows with no border row
    k_hi = (n_out - (len(border) - top_rows)) // p
    if k_hi - k_lo < 4 or kernels.shape[1] > _MAX_TAPS:  # no periodic interior worth slicing
        return _matmul_rows(helper, x, out, weights, axis, 0, name + "/dense")
    nodes = _interior_nodes(helper, x, name + "/interior", shape, axis, q, p, o_min, kernels, k_lo, k_hi, name)
    parts = [name + "/interior"]
    if k_lo:
        cols = np.nonzero(weights[:p * k_lo].any(axis=0))[0]
        nodes += _matmul_rows(helper, x, name + "/top", weights[:p * k_lo, : cols[-1] + 1], axis, 0, name + "/top_rows")
        parts.insert(0, name + "/top")
    if p * k_hi < n_out:
        first = int(np.nonzero(weights[p * k_hi:].any(axis=0))[0][0])
        nodes += _matmul_rows(helper, x, name + "/bottom", weights[p * k_hi:, first:], axis, first, name + "/bottom_rows")
        parts.append(name + "/bottom")
    if len(parts) == 1:
        return nodes + [helper.make_node("Identity", parts, [out])]
    return nodes + [helper.make_node("Concat", parts, [out], axis=axis)]


def _interior_nodes(helper: Any, x: str, out: str, shape: tuple[int, int, int, int], axis: int, q: int, p: int,
                    o_min: int, kernels: np.ndarray, k_lo: int, k_hi: int, name: str) -> list[Any]:
    """Rows ``p k_lo .. p k_hi`` of the resize: the ``L`` strided slices ``x[q k + o_min + l]``
    (k in [k_lo, k_hi)) stacked, one MatMul with the (p, L) phase kernels, phases interleaved.

    A grouped Conv computes the same, but ONNX Runtime runs it in its blocked NCHWc layout,
    padding 2 output channels to 16 and reordering the result back: 2.8 ms against ~1 ms here
    for 640x480 -> 640x192.
    """
    length = kernels.shape[1]
    count = k_hi - k_lo
    nodes = [_const(helper, name + "/axis", np.array([axis], np.int64)),
             _const(helper, name + "/step", np.array([q], np.int64)),
             _const(helper, name + "/zero", np.array([0], np.int64))]
    taps = []
    for tap in range(length):
        first = q * k_lo + o_min + tap
        t = f"{name}/tap{tap}"
        nodes += [_const(helper, t + "/s", np.array([first], np.int64)),
                  _const(helper, t + "/e", np.array([first + q * (count - 1) + 1], np.int64)),
                  helper.make_node("Slice", [x, t + "/s", t + "/e", name + "/axis", name + "/step"], [t]),
                  helper.make_node("Unsqueeze", [t, name + "/zero"], [t + "/u"])]
        taps.append(t + "/u")
    sliced = list(shape)
    sliced[axis] = count
    flat = (length, int(np.prod(sliced)))
    phases = (p, *sliced)
    perm = [1, 2, 3, 0, 4] if axis == 2 else [1, 2, 3, 4, 0]
    joined = list(sliced)
    joined[axis] = count * p
    return nodes + [
        helper.make_node("Concat", taps, [name + "/stack"], axis=0),  # (L, 1, C, A, B)
        _const(helper, name + "/flat", np.array(flat, np.int64)),
        helper.make_node("Reshape", [name + "/stack", name + "/flat"], [name + "/taps"]),
        _const(helper, name + "/kernels", kernels.astype(np.float32)),
        helper.make_node("MatMul", [name + "/kernels", name + "/taps"], [name + "/mixed"]),  # (p, everything)
        _const(helper, name + "/phases_shape", np.array(phases, np.int64)),
        helper.make_node("Reshape", [name + "/mixed", name + "/phases_shape"], [name + "/phases"]),
        helper.make_node("Transpose", [name + "/phases"], [name + "/interleaved"], perm=perm),
        _const(helper, name + "/joined", np.array(joined, np.int64)),
        helper.make_node("Reshape", [name + "/interleaved", name + "/joined"], [out]),
    ]
