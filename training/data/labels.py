"""Depth labels of each kind -> the loss target: inverse depth and a validity mask (pure numpy).

Label kinds (declared per label source, see issue 15):

* ``metric_depth``: z-depth in metres (a registered RGB-D / GT topic, projected LiDAR, the
  renderer's exact depth); target = ``1 / depth_m`` in 1/m, *metric* (usable by metric losses such
  as Depth Pro's MAE on canonical inverse depth, through ``f_px / W_px``);
* ``relative_depth``: depth known up to an unknown positive *scale* (a teacher network that
  outputs depth, a structure-from-motion reconstruction); target = ``1 / depth``, inverse depth up
  to scale. A depth known only up to scale *and shift* has no inverse-depth equivalent (``1/(a z + b)``
  is not affine in ``1/z``) and is not a supported kind;
* ``relative_inverse_depth``: disparity up to scale and shift (MiDaS / Depth Anything style
  teachers); target = the label itself (it may be negative after the unknown shift).

Invalid pixels: NaN, +-inf, and 0 for every kind (REP 118: 0 = no return; a teacher's disparity
must encode "far" as a small positive value, not 0); for the two depth kinds also negative values.
Invalid pixels are never filled or interpolated: the target holds 0 there and ``valid`` is False.
A uint16 label is read as millimetres (the 16UC1 convention) and converted to metres.

Resizing keeps labels and masks aligned without inventing values: :func:`resize_nearest` picks, for
every output pixel, the input pixel under its centre (pixel-centre convention: output pixel ``i``
samples input ``floor((i + 0.5) * H_in / H_out)``, i.e. ``torch``'s ``nearest-exact`` and PIL's
``NEAREST``), so an output value is always an input value and a hole stays a hole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["LABEL_KINDS", "LabelKind", "LabelTarget", "label_to_target", "label_valid_mask", "resize_nearest", "resize_target"]

LabelKind = Literal["metric_depth", "relative_depth", "relative_inverse_depth"]
LABEL_KINDS: tuple[str, ...] = ("metric_depth", "relative_depth", "relative_inverse_depth")

_MM_PER_M = 1000.0


@dataclass(frozen=True)
class LabelTarget:
    """The loss target of one label image.

    Attributes:
        inv_depth: (H, W) float32 inverse depth: 1/m for ``metric_depth``, up to scale for
            ``relative_depth``, up to scale and shift for ``relative_inverse_depth``; 0 where invalid.
        valid: (H, W) bool, where the label has a value.
        kind: the label kind it came from.
    """

    inv_depth: np.ndarray
    valid: np.ndarray
    kind: str

    @property
    def metric(self) -> bool:
        """True when ``inv_depth`` is in 1/m (only ``metric_depth`` labels)."""
        return self.kind == "metric_depth"

    @property
    def affine_invariant_only(self) -> bool:
        """True when the target is known only up to scale and shift (needs a SSI loss)."""
        return self.kind == "relative_inverse_depth"


def _check_kind(kind: str) -> None:
    if kind not in LABEL_KINDS:
        raise ValueError(f"label kind must be one of {LABEL_KINDS}, got {kind!r}")


def _as_float(label: np.ndarray) -> np.ndarray:
    """(H, W) label as float64; uint16 millimetres -> metres."""
    arr = np.asarray(label)
    if arr.ndim != 2:
        raise ValueError(f"expected a label image (H, W), got shape {arr.shape}")
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) / _MM_PER_M
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"expected a numeric label image, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def label_valid_mask(label: np.ndarray, kind: str) -> np.ndarray:
    """Pixels of an (H, W) label that carry a value, (H, W) bool (see the module docstring)."""
    _check_kind(kind)
    arr = _as_float(label)
    valid = np.isfinite(arr) & (arr != 0)
    if kind != "relative_inverse_depth":
        valid &= arr > 0
    return valid


def label_to_target(label: np.ndarray, kind: str) -> LabelTarget:
    """An (H, W) label of the given kind -> :class:`LabelTarget` (inverse depth, valid mask).

    Args:
        label: (H, W) float depth / disparity, or uint16 millimetres; NaN / inf / 0 invalid.
        kind: one of :data:`LABEL_KINDS`.

    Returns:
        :class:`LabelTarget` with float32 ``inv_depth`` (0 where invalid).

    Raises:
        ValueError: an unknown kind, a label that is not (H, W) numeric.
    """
    valid = label_valid_mask(label, kind)
    arr = _as_float(label)
    if kind == "relative_inverse_depth":
        inv = np.where(valid, arr, 0.0)
    else:
        inv = np.divide(1.0, arr, out=np.zeros_like(arr), where=valid)
    return LabelTarget(inv_depth=inv.astype(np.float32), valid=valid, kind=kind)


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Input index under the centre of each output pixel: ``floor((i + 0.5) * n_in / n_out)``.

    Multiplied before dividing: ``(i + 0.5) * n_in`` is exact in float64, so the one rounding of
    the division cannot carry a value across an integer (``n_in / n_out`` first could).
    """
    idx = ((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64)  # >= 0: truncation is floor
    return np.minimum(idx, n_in - 1)


def resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W, ...) label or mask to (height, width, ...).

    Every output value is an input value (NaN and 0 holes stay holes, never blended with their
    neighbours); pixel-centre convention as in the module docstring. Any dtype.

    Raises:
        ValueError: a non-positive size or an array with fewer than 2 dimensions.
    """
    arr = np.asarray(array)
    if arr.ndim < 2:
        raise ValueError(f"expected an (H, W, ...) array, got shape {arr.shape}")
    if not (isinstance(height, (int, np.integer)) and isinstance(width, (int, np.integer)) and height > 0 and width > 0):
        raise ValueError(f"expected a positive integer size, got {height!r} x {width!r}")
    rows = _nearest_index(arr.shape[0], int(height))
    cols = _nearest_index(arr.shape[1], int(width))
    return arr[rows[:, None], cols[None, :]]


def resize_target(target: LabelTarget, height: int, width: int) -> LabelTarget:
    """:func:`resize_nearest` applied to a target's inverse depth and mask together (same pixels)."""
    return LabelTarget(
        inv_depth=resize_nearest(target.inv_depth, height, width),
        valid=resize_nearest(target.valid, height, width),
        kind=target.kind,
    )
