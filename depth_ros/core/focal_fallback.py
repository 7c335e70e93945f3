"""The frame's camera from the model's focal-length head when its CameraInfo is unusable.

A Depth Pro model (``canonical_inverse_depth``) may carry a second output, the horizontal field of
view it sees, declared in its ModelSpec as ``extra["fov_output"]`` (the output's name, degrees; see
depth_ros_training.tasks.depth_pro). When a frame's CameraInfo has no usable intrinsics (none at
all, K all zeros, a focal length that is not finite and positive), the frame path can still make
metric depth: it feeds the image (whose preprocessing needs only its size), reads the predicted
field of view and builds the camera from it (:func:`camera_from_fov_output`). A valid CameraInfo is
always used as it is: the prediction is a fallback, never a replacement.

Convention: the predicted field of view spans the window of the image the network sees (the whole
image, or the crop / padded canvas of the aspect policy, :func:`~depth_ros.core.aspect.model_window`),
so ``fx = fy = (window_width / 2) / tan(fov / 2)`` in camera pixels (square pixels), with the
principal point at the image centre ``((W - 1) / 2, (H - 1) / 2)``. DepthInfo's ``scale_source``
of such a frame ends in :data:`PREDICTED_SUFFIX` (``canonical_focal_predicted``).

Pure numpy, no ROS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from depth_ros.core.camera import CameraModel
from depth_ros.errors import InputError

__all__ = [
    "FOV_LIMITS_DEG",
    "PREDICTED_SUFFIX",
    "PredictedCamera",
    "UncalibratedCamera",
    "camera_from_fov_output",
    "fov_output_name",
    "unusable_intrinsics",
]

#: DepthInfo ``scale_source`` suffix of a frame whose camera came from the model's prediction.
PREDICTED_SUFFIX = "_predicted"
#: Predicted fields of view accepted (degrees, exclusive): a value outside is a broken head, and the
#: frame is refused rather than given a camera no lens has.
FOV_LIMITS_DEG = (1.0, 179.0)
#: Field of view of the placeholder K of :class:`UncalibratedCamera` (never used for depth).
_PLACEHOLDER_FOV_DEG = 90.0


@dataclass(frozen=True, eq=False)  # CameraModel's own __eq__ / __hash__ (K arrays compared by value)
class UncalibratedCamera(CameraModel):
    """A frame's camera known only by its size: its CameraInfo gave no usable intrinsics.

    ``K`` is a placeholder (90 degrees, centred; :meth:`of_size`) so that the steps that need only
    the size (aspect window, preprocess) run unchanged; the frame pipeline replaces the camera by the
    predicted one (:func:`camera_from_fov_output`) before any depth is computed from it.

    Attributes:
        reason: why the CameraInfo is unusable, one line (for the warning).
    """

    reason: str = ""

    @classmethod
    def of_size(cls, width: int, height: int, reason: str) -> "UncalibratedCamera":
        """The placeholder camera of a ``width`` x ``height`` image."""
        K = CameraModel.from_fov(width, height, _PLACEHOLDER_FOV_DEG).K
        return cls(width=width, height=height, K=K, reason=reason)


@dataclass(frozen=True, eq=False)
class PredictedCamera(CameraModel):
    """A frame's camera built from the model's predicted field of view (:func:`camera_from_fov_output`).

    Attributes:
        fov_deg: the predicted horizontal field of view of the window the network sees, degrees.
        reason: why the frame's CameraInfo was not used (from its :class:`UncalibratedCamera`).
    """

    fov_deg: float = 0.0
    reason: str = ""


def fov_output_name(spec: Any) -> str | None:
    """The name of the model's field-of-view output (``spec.extra["fov_output"]``), or None."""
    name = (getattr(spec, "extra", None) or {}).get("fov_output")
    return str(name) if isinstance(name, str) and name else None


def unusable_intrinsics(info: Any) -> str | None:
    """Why a sensor_msgs/CameraInfo has no usable intrinsics, or None when its K can be used.

    Unusable: no message (None), ``k`` not 9 numbers, non-finite entries, all zeros (the camera is
    uncalibrated), ``fx`` or ``fy`` not positive. Anything else wrong with the message (size, ROI,
    binning, implausible intrinsics) is not a missing calibration and stays the decoder's refusal.
    """
    if info is None:
        return "no camera_info"
    try:
        k = np.asarray(info.k, dtype=np.float64).reshape(-1)
    except (AttributeError, TypeError, ValueError):
        return "camera_info k is not a list of numbers"
    if k.size != 9:
        return f"camera_info k has {k.size} entries, not 9"
    if not np.all(np.isfinite(k)):
        return "camera_info K has non-finite entries"
    if not np.any(k):
        return "camera_info K is all zeros (uncalibrated)"
    if not (k[0] > 0 and k[4] > 0):
        return f"camera_info focal lengths are not positive (fx {k[0]:.6g}, fy {k[4]:.6g})"
    return None


def camera_from_fov_output(outputs: Mapping[str, np.ndarray], name: str, camera: UncalibratedCamera,
                           window_width: int) -> PredictedCamera:
    """The frame's camera from the predicted horizontal field of view.

    Args:
        outputs: the network outputs by name.
        name: the field-of-view output (:func:`fov_output_name`), one value, degrees.
        camera: the frame's camera (its size is kept; an :class:`UncalibratedCamera`).
        window_width: width in camera pixels of the window the network sees (the whole image
            ``camera.width`` without an aspect crop or pad).

    Returns:
        A :class:`PredictedCamera` of ``camera``'s size: ``fx = fy = (window_width / 2) / tan(fov / 2)``,
        principal point at the image centre.

    Raises:
        InputError: the output is missing, not one value, or not a field of view in
            :data:`FOV_LIMITS_DEG` (names the output and the value).
    """
    if name not in outputs:
        raise InputError(f"the model has no output '{name}' (its spec's fov_output); outputs: {', '.join(outputs)}")
    value = np.asarray(outputs[name], dtype=np.float64).reshape(-1)
    if value.size != 1:
        raise InputError(f"model output '{name}' must be one field of view, got shape {np.shape(outputs[name])}")
    fov = float(value[0])
    lo, hi = FOV_LIMITS_DEG
    if not (math.isfinite(fov) and lo < fov < hi):
        raise InputError(f"model output '{name}' = {fov!r} degrees is not a field of view in ({lo:g}, {hi:g})")
    f = 0.5 * window_width / math.tan(0.5 * math.radians(fov))
    K = np.array([[f, 0.0, (camera.width - 1) / 2.0], [0.0, f, (camera.height - 1) / 2.0], [0.0, 0.0, 1.0]])
    return PredictedCamera(width=camera.width, height=camera.height, K=K, fov_deg=fov, reason=camera.reason)
