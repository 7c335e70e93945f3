"""Visual odometry from consecutive frames, ROS-free: the pose node's per-frame step.

One class, :class:`PosePipeline`, used by the pose node (:mod:`depth_ros.ros.pose_node`) and by
``depth-ros infer --pose-model`` (:mod:`depth_ros.bag.infer`), so a pose model gives the same
trajectory live and offline::

    rgb (H, W, 3) uint8 + CameraModel -> rectify (auto, as the depth node)
      -> reset? (first frame, gap > max_gap_s, stamp back, camera change)
      -> preprocess_pair([current, previous]) -> backend -> (1, 6) -> PoseTracker

Convention: the network's (1, 6) output is ``[axis-angle (rad), translation]`` of
``T_tgt_src`` or ``T_src_tgt`` as ``ModelSpec.pose_convention`` says; target = current frame,
source = previous frame. The pose is accumulated as ``T_odom_cur = T_odom_prev @ T_prev_cur``;
``odom`` is the camera (optical frame, REP 103: x right, y down, z forward) at the first frame
after a (re)start. Translation is metric when the model is (``ModelSpec.metric``), else up to
scale: the pipeline does not rescale it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from depth_ros.core.camera import CameraModel, camera_change
from depth_ros.core.distortion import RECTIFY_MODES, DistortionError, FrameRectifier
from depth_ros.core.preprocess import preprocess_pair
from depth_ros.core.rotation import axis_angle_to_matrix, matrix_to_quaternion
from depth_ros.core.rotation import matrix_to_axis_angle as rotation_vector
from depth_ros.errors import InputError, ModelError
from depth_ros.pipeline import FrameRefused

if TYPE_CHECKING:
    from depth_ros.inference.backend import InferenceBackend
    from depth_ros.inference.spec import ModelSpec

__all__ = [
    "OdometryFields",
    "PoseConfig",
    "PosePipeline",
    "PoseStep",
    "PoseTracker",
    "check_pose_kind",
    "pose_output",
]

POSE_CONVENTIONS = ("T_tgt_src", "T_src_tgt")


@dataclass(frozen=True)
class PoseConfig:
    """Options of :class:`PosePipeline`: the pose node's parameters of the same names, with the
    same defaults (:class:`depth_ros.ros.params.PoseNodeConfig`).

    Attributes:
        max_gap_s: consecutive frames further apart (s) reset the odometry.
        odom_frame: frame_id of the odometry (the camera at the first frame after a reset).
        camera_frame: child_frame_id of the odometry; "" = the image's header.frame_id.
        rectify: lens distortion, as the depth node's parameter of that name: "auto" (a camera
            whose camera_info has a non-zero D is rectified first) or "off" (the images are
            already rectified: D is ignored).
    """

    max_gap_s: float = 0.5
    odom_frame: str = "odom"
    camera_frame: str = ""
    rectify: str = "auto"

    def __post_init__(self) -> None:
        if not (isinstance(self.max_gap_s, (int, float)) and math.isfinite(self.max_gap_s) and self.max_gap_s >= 0):
            raise ValueError(f"max_gap_s must be a finite number >= 0, got {self.max_gap_s!r}")
        if not self.odom_frame:
            raise ValueError("odom_frame must not be empty")
        if self.rectify not in RECTIFY_MODES:
            raise ValueError(f"rectify must be one of {', '.join(RECTIFY_MODES)}, got {self.rectify!r}")

    def child_frame(self, image_frame_id: str) -> str:
        """The odometry's child_frame_id for an image of ``image_frame_id``."""
        return self.camera_frame or str(image_frame_id)


class PoseTracker:
    """Accumulates frame-to-frame motion into ``T_odom_cam`` (pure numpy).

    Args:
        pose_convention: what the network's transform maps ("T_tgt_src" or "T_src_tgt").
        max_gap_ns: frames further apart reset the track.
    """

    def __init__(self, pose_convention: str, max_gap_ns: int) -> None:
        if pose_convention not in POSE_CONVENTIONS:
            raise ValueError(f"pose_convention must be T_tgt_src or T_src_tgt, got {pose_convention!r}")
        self.pose_convention = pose_convention
        self.max_gap_ns = int(max_gap_ns)
        self.T_odom_cam = np.eye(4)
        self.last_stamp_ns: int | None = None
        self.camera: Any = None  # CameraModel of the frames chained since the last reset
        self.resets = 0

    def needs_reset(self, stamp_ns: int, camera: Any = None) -> str | None:
        """Why the next frame cannot be chained to the previous one, or None.

        Args:
            stamp_ns: the frame's stamp.
            camera: the frame's CameraModel, or None not to compare cameras. A frame seen
                through other intrinsics (or size) than the previous one cannot be paired
                with it: the network's input pair would mix two cameras.
        """
        if self.last_stamp_ns is None:
            return "first frame"
        change = None if camera is None else camera_change(self.camera, camera)
        if change is not None:
            return f"camera changed: {change}"
        dt = stamp_ns - self.last_stamp_ns
        if dt <= 0:
            return f"stamp went back by {-dt * 1e-9:.3f} s"
        if dt > self.max_gap_ns:
            return f"gap of {dt * 1e-9:.3f} s > max_gap_s"
        return None

    def reset(self, stamp_ns: int, camera: Any = None) -> None:
        """Start a new track at this frame (seen through ``camera``, if given)."""
        self.T_odom_cam = np.eye(4)
        self.last_stamp_ns = stamp_ns
        self.camera = camera
        self.resets += 1

    def step(self, stamp_ns: int, vec6: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Chain one network output.

        Returns:
            (T_odom_cam (4, 4), T_prev_cur (4, 4), dt_s).
        """
        if self.last_stamp_ns is None:
            raise RuntimeError("PoseTracker.step before the first reset")
        T = pose_vector_to_T(vec6)
        T_prev_cur = invert(T) if self.pose_convention == "T_tgt_src" else T
        dt_s = (stamp_ns - self.last_stamp_ns) * 1e-9
        self.T_odom_cam = self.T_odom_cam @ T_prev_cur
        self.last_stamp_ns = stamp_ns
        return self.T_odom_cam, T_prev_cur, dt_s


def pose_vector_to_T(vec6: np.ndarray) -> np.ndarray:
    """(6,) [axis-angle (rad), translation] -> (4, 4) float64 transform (rotation then translation)."""
    vec6 = np.asarray(vec6, dtype=np.float64).reshape(-1)
    if vec6.shape != (6,) or not np.all(np.isfinite(vec6)):
        raise ValueError(f"pose vector must be 6 finite numbers, got {vec6.tolist()}")
    T = np.eye(4)
    T[:3, :3] = axis_angle_to_matrix(vec6[:3])
    T[:3, 3] = vec6[3:]
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform: ``T_b_a`` from ``T_a_b``."""
    R, t = T[:3, :3], T[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ t
    return out


@dataclass(frozen=True)
class OdometryFields:
    """The numbers of one nav_msgs/Odometry (REP 105): pose of the child in the odometry frame,
    twist in the child frame.

    Attributes:
        position_m: (3,) float64 translation of ``T_odom_cam``, metres (up to scale for a
            non-metric model).
        orientation_xyzw: (4,) float64 quaternion of ``T_odom_cam``'s rotation.
        linear_mps: (3,) linear velocity in the current camera frame, m/s (zeros on a reset).
        angular_radps: (3,) angular velocity in the current camera frame, rad/s.
    """

    position_m: np.ndarray
    orientation_xyzw: np.ndarray
    linear_mps: np.ndarray
    angular_radps: np.ndarray


@dataclass(frozen=True)
class PoseStep:
    """What one frame produced.

    Attributes:
        stamp_ns: the frame's stamp.
        T_odom_cam: (4, 4) float64 pose of the current camera in the odometry frame.
        T_prev_cur: (4, 4) float64 current camera in the previous one (identity on a reset).
        dt_s: seconds since the previous frame (0 on a reset).
        reset: why the track restarted at this frame ("first frame", "gap of ...", ...), or
            None when the frame was chained.
        camera: the (rectified) camera of the frame.
    """

    stamp_ns: int
    T_odom_cam: np.ndarray
    T_prev_cur: np.ndarray
    dt_s: float
    reset: str | None
    camera: CameraModel

    def odometry(self) -> OdometryFields:
        """The Odometry message's numbers. Twist in the child (current camera) frame:
        ``T_prev_cur``'s translation is the displacement in the previous frame and R^T takes it
        into the current one (the rotation vector is the same in both frames: R leaves its own
        axis fixed); zero when ``dt_s`` is not positive."""
        zero = np.zeros(3)
        linear, angular = zero, zero
        if self.dt_s > 0:
            R, t = self.T_prev_cur[:3, :3], self.T_prev_cur[:3, 3]
            linear = R.T @ t / self.dt_s
            angular = rotation_vector(R) / self.dt_s
        return OdometryFields(
            position_m=self.T_odom_cam[:3, 3].copy(),
            orientation_xyzw=np.asarray(matrix_to_quaternion(self.T_odom_cam[:3, :3]), dtype=np.float64),
            linear_mps=np.asarray(linear, dtype=np.float64),
            angular_radps=np.asarray(angular, dtype=np.float64),
        )


def check_pose_kind(spec: "ModelSpec", who: str = "pose odometry") -> None:
    """Refuse a model that is not a pose network (ModelError, one line)."""
    if spec.output_kind != "pose_6dof":
        raise ModelError(f"{spec.name}: output_kind {spec.output_kind!r}; {who} needs a pose_6dof model")


def pose_output(outputs: dict[str, np.ndarray], spec: "ModelSpec") -> np.ndarray:
    """The (6,) float64 pose vector of a network's outputs.

    Raises:
        FrameRefused: non_finite_output: not 6 finite numbers shaped (1, 6) or (6,) (the
            layouts the load-time contract check accepts; a (2, 3) is not a pose).
    """
    raw = np.asarray(outputs[spec.output_name], dtype=np.float64)
    if raw.shape not in ((1, 6), (6,)) or not np.all(np.isfinite(raw)):
        raise FrameRefused("non_finite_output",
                           f"pose output must be 6 finite numbers shaped (1, 6) or (6,), got shape {raw.shape}")
    return raw.reshape(6)


class PosePipeline:
    """Frames in stamp order -> chained camera poses (see the module docstring).

    Args:
        backend: a loaded pose backend (``spec.output_kind == "pose_6dof"``).
        config: reset gap and frame names.
        who: how an error names the caller ("the pose node", "depth-ros infer --pose-model").

    Raises:
        ModelError: the backend is not a pose network.
    """

    def __init__(self, backend: "InferenceBackend", config: PoseConfig | None = None, who: str = "pose odometry") -> None:
        check_pose_kind(backend.spec, who)
        self.backend = backend
        self.spec = backend.spec
        self.config = config or PoseConfig()
        self.tracker = PoseTracker(self.spec.pose_convention, int(self.config.max_gap_s * 1e9))
        self._prev_rgb: np.ndarray | None = None
        # distorted cameras rectified as the depth node does (its rectify parameter), maps once per camera
        self._rectifier = FrameRectifier(self.config.rectify)

    def set_max_gap(self, max_gap_s: float) -> None:
        """Change the reset gap while running (the node's parameter callback)."""
        self.tracker.max_gap_ns = int(max_gap_s * 1e9)

    def rectify(self, rgb: np.ndarray, camera: CameraModel, info: Any = None) -> tuple[np.ndarray, CameraModel]:
        """(rgb, camera) of the rectified camera when ``camera`` is distorted (new K from the
        camera_info ``info``'s P), else as given.

        Raises:
            FrameRefused: bad_camera_info (a distortion that cannot be rectified).
        """
        try:
            return self._rectifier(rgb, camera, getattr(info, "p", None), getattr(info, "r", None))
        except (DistortionError, InputError, ValueError) as exc:
            raise FrameRefused("bad_camera_info", str(exc)) from None

    def step(self, stamp_ns: int, rgb: np.ndarray, camera: CameraModel) -> PoseStep:
        """Chain one (rectified) frame to the previous one, or restart the track at it.

        Args:
            stamp_ns: the frame's stamp, nanoseconds.
            rgb: (H, W, 3) uint8 RGB.
            camera: its intrinsics at (W, H), no distortion.

        Raises:
            FrameRefused: preprocess (the pair cannot be fed to the network) or
                non_finite_output; the track is unchanged (the next frame pairs with the
                last good one).
        """
        why = self.tracker.needs_reset(stamp_ns, camera)
        if why is not None:
            self.tracker.reset(stamp_ns, camera)
            self._prev_rgb = rgb
            return PoseStep(stamp_ns, self.tracker.T_odom_cam, np.eye(4), 0.0, why, camera)
        assert self._prev_rgb is not None  # set by the reset of the first frame
        try:
            x = preprocess_pair(rgb, self._prev_rgb, camera, self.spec).tensor
        except (InputError, ValueError) as exc:
            raise FrameRefused("preprocess", str(exc)) from None
        vec = pose_output(self.backend.infer(x), self.spec)
        T_odom_cam, T_prev_cur, dt_s = self.tracker.step(stamp_ns, vec)
        self._prev_rgb = rgb
        return PoseStep(stamp_ns, T_odom_cam, T_prev_cur, dt_s, None, camera)

    def process(self, stamp_ns: int, rgb: np.ndarray, camera: CameraModel, info: Any = None) -> PoseStep:
        """:meth:`rectify` then :meth:`step` (a decoded frame and its camera_info message)."""
        rgb, camera = self.rectify(rgb, camera, info)
        return self.step(stamp_ns, rgb, camera)
