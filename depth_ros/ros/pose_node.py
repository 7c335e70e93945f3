"""Visual-odometry node: consecutive camera frames -> PoseNet -> odometry of the camera.

Topics (relative):

======================  ==============================  ===================================
``image``               sensor_msgs/Image               in, SensorDataQoS (or
                                                        ``image/compressed``)
``camera_info``         sensor_msgs/CameraInfo          in, paired by stamp
``odom``                nav_msgs/Odometry               out: pose of the camera (optical
                                                        frame) in ``odom_frame``; twist in
                                                        the camera frame (m/s, rad/s)
``pose``                geometry_msgs/PoseStamped       out: the same pose
``/tf``                 odom_frame -> camera frame      when tf2_ros imports and publish_tf
``/diagnostics``        diagnostic_msgs/                out, every ``diagnostics_period_s``:
                        DiagnosticArray                 status ``pose_node: pose``
======================  ==============================  ===================================

``odom_frame`` is the camera pose at the first frame after a (re)start. The odometry resets
(warning) when consecutive frames are more than ``max_gap_s`` apart, the stamps go
backwards, or the camera changes (camera_info with another size or intrinsics: a driver
reconfigured, another bag looped; the reason names old -> new); an image with the previous image's stamp (a duplicate) is skipped and counted.
Every callback is guarded (:mod:`depth_ros.ros.intake`): no message can end the node. Translation is metric when the model is (``ModelSpec.metric``), else up to scale
(warned once). Parameters: :class:`~depth_ros.ros.params.PoseNodeConfig`.

Convention: the network's (1, 6) output is ``[axis-angle (rad), translation]`` of
``T_tgt_src`` or ``T_src_tgt`` as ``ModelSpec.pose_convention`` says; target = current frame,
source = previous frame. The pose is accumulated as ``T_odom_cur = T_odom_prev @ T_prev_cur``.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np
from rclpy.node import Node

from depth_ros.core.distortion import FrameRectifier
from depth_ros.errors import ModelError
from depth_ros.ros.diagnostics import DiagnosticThresholds, FrameCounts, FrameMonitor
from depth_ros.ros.intake import FrameIntake, FrameWorker, MessageGuard, Refused, decode_pair, refusing_as
from depth_ros.ros.params import ParameterError, PoseNodeConfig, declare_config, on_set_parameters_callback
from depth_ros.ros.pose_math import invert, matrix_to_quaternion, pose_vector_to_T, rotation_vector
from depth_ros.ros.sync import LatestSlot, Pair, StampPairer

__all__ = ["PoseNode", "PoseTracker", "create_pose_node", "main", "make_pose_node_class"]


class PoseTracker:
    """Accumulates frame-to-frame motion into ``T_odom_cam`` (pure numpy).

    Args:
        pose_convention: what the network's transform maps ("T_tgt_src" or "T_src_tgt").
        max_gap_ns: frames further apart reset the track.
    """

    def __init__(self, pose_convention: str, max_gap_ns: int) -> None:
        if pose_convention not in ("T_tgt_src", "T_src_tgt"):
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
        from depth_ros.core.camera import camera_change

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
        T = pose_vector_to_T(vec6)
        T_prev_cur = invert(T) if self.pose_convention == "T_tgt_src" else T
        assert self.last_stamp_ns is not None
        dt_s = (stamp_ns - self.last_stamp_ns) * 1e-9
        self.T_odom_cam = self.T_odom_cam @ T_prev_cur
        self.last_stamp_ns = stamp_ns
        return self.T_odom_cam, T_prev_cur, dt_s


class PoseNode(FrameWorker, Node):
    """The visual-odometry node; see the module docstring for topics."""

    def __init__(self, node_name: str = "pose_node", *, backend_factory: Any = None, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.config: PoseNodeConfig = declare_config(self, PoseNodeConfig)
        self._backend_factory = backend_factory
        self._slot: LatestSlot[Pair] = LatestSlot()
        self._pairer = StampPairer(int(self.config.sync_tolerance_ms * 1e6))
        self._guard = MessageGuard(self.get_logger(), period_s=2.0)
        image_topic = "image/compressed" if self.config.image_transport == "compressed" else "image"
        # No stamp order here: any step back resets the tracker (PoseTracker.needs_reset).
        self._intake = FrameIntake(self._guard, self._pairer, None,
                                   image_topic=self.resolve_topic_name(image_topic),
                                   info_topic=self.resolve_topic_name("camera_info"))
        self._worker: threading.Thread | None = None
        self._tf = None
        self.frames_published = 0
        self.frames_skipped = 0
        self.monitor = FrameMonitor()  # /diagnostics
        self.diagnostics: Any = None

    def configure(self) -> None:
        """Load the pose model; create publishers, subscriptions, the worker."""
        from geometry_msgs.msg import PoseStamped
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        from depth_ros.ros import qos

        cfg = self.config
        if not cfg.model_path:
            raise ParameterError("parameter 'model_path': not set (path of a pose_6dof model)")
        if self._backend_factory is not None:
            self.backend = self._backend_factory(cfg)
        else:
            from depth_ros.inference.backend import create_backend

            options = {"threads": cfg.threads} if cfg.threads > 0 else {}
            self.backend = create_backend(cfg.model_path, cfg.backend, **options)
        spec = self.backend.spec
        if spec.output_kind != "pose_6dof":
            raise ModelError(f"{spec.name}: output_kind {spec.output_kind!r}; the pose node needs a pose_6dof model")
        self.spec = spec
        if not spec.metric:
            self.get_logger().warning(f"pose model '{spec.name}' is not metric: translation is up to scale")
        self.tracker = PoseTracker(spec.pose_convention, int(cfg.max_gap_s * 1e9))
        self._prev: tuple[int, np.ndarray] | None = None
        # distorted cameras rectified as the depth node does (its rectify: auto), maps once per camera
        self._rectifier = FrameRectifier("auto")
        self.add_on_set_parameters_callback(on_set_parameters_callback(lambda: self.config, self._set_config))
        self.odom_pub = qos.advertise(self, Odometry, "odom", qos.info_qos())
        self.pose_pub = qos.advertise(self, PoseStamped, "pose", qos.info_qos())
        if cfg.image_transport == "compressed":
            self._subscribe(CompressedImage, "image/compressed", self._on_image)
        else:
            self._subscribe(Image, "image", self._on_image)
        self._subscribe(CameraInfo, "camera_info", self._on_info)
        qos.warn_unused_overrides(self)
        try:
            from tf2_ros import TransformBroadcaster  # absent from the pip wheels

            self._tf = TransformBroadcaster(self)
        except ImportError:
            self.get_logger().info("tf2_ros not importable: odometry is published without TF")
        self.diagnostics = self._start_diagnostics()
        self._worker = threading.Thread(target=self._work, name=f"{self.get_name()}_worker", daemon=True)
        self._worker.start()

    def _start_diagnostics(self) -> Any:
        """The /diagnostics timer: rates, counters, latency, backend, odometry resets."""
        from depth_ros.ros.diagnostics import DiagnosticsPublisher

        def extra() -> tuple[tuple[str, str], ...]:
            cam = self.tracker.camera
            return (
                ("Backend", str(getattr(self.backend, "name", "unknown"))),
                ("Model", f"{self.spec.name} ({self.spec.output_kind})"),
                ("Odometry resets", str(self.tracker.resets)),
                ("Camera", "none yet" if cam is None else f"{cam.width}x{cam.height} fx {cam.fx:.6g} fy {cam.fy:.6g} px"),
            )

        return DiagnosticsPublisher(
            self, self.monitor, "pose", self.config.diagnostics_period_s, self._frame_counts,
            lambda: DiagnosticThresholds.from_config(self.config), extra)

    def _frame_counts(self) -> FrameCounts:
        return FrameCounts(
            received=self._intake.frames_received, published=self.frames_published,
            dropped=self._slot.dropped + self._pairer.unpaired_images,
            skipped=self.frames_skipped + self._intake.frames_duplicate + sum(self._guard.dropped.values()),
            failed=self.frames_skipped)

    def _subscribe(self, msg_type: Any, topic: str, callback: Callable[[Any], None]) -> Any:
        """Subscribe with the input QoS; the callback is guarded: no message can end the node."""
        from depth_ros.ros import qos

        guarded = self._guard.guard(self.resolve_topic_name(topic), callback)
        return qos.subscribe(self, msg_type, topic, guarded, qos.input_qos())

    def _set_config(self, config: PoseNodeConfig) -> None:
        self.config = config
        self.tracker.max_gap_ns = int(config.max_gap_s * 1e9)
        self._pairer.tolerance_ns = int(config.sync_tolerance_ms * 1e6)

    def _on_image(self, msg: Any) -> None:
        self.monitor.image_received()
        pair = self._intake.on_image(msg, time.monotonic_ns())
        if pair is not None:
            self._slot.put(pair)

    def _on_info(self, msg: Any) -> None:
        pair = self._intake.on_info(msg)
        if pair is not None:
            self._slot.put(pair)

    def _process(self, pair: Pair) -> None:
        from depth_ros.core.preprocess import preprocess_pair

        rgb, camera = decode_pair(pair.image, pair.info, self.config.image_transport == "compressed")
        with refusing_as("bad camera_info"):
            rgb, camera = self._rectifier(rgb, camera, getattr(pair.info, "p", None), getattr(pair.info, "r", None))
        why = self.tracker.needs_reset(pair.stamp_ns, camera)
        if why is not None:
            if why != "first frame":
                self.get_logger().warning(f"odometry reset: {why}")
            self.tracker.reset(pair.stamp_ns, camera)
            self._prev = (pair.stamp_ns, rgb)
            self._publish(pair.image.header, self.tracker.T_odom_cam, np.eye(4), 0.0)
            self.monitor.frame_published((time.monotonic_ns() - pair.received_ns) * 1e-6)
            return
        assert self._prev is not None
        x = preprocess_pair(rgb, self._prev[1], camera, self.spec).tensor
        out = self.backend.infer(x)
        raw = np.asarray(out[self.spec.output_name], dtype=np.float64)
        # the layouts the load-time contract check accepts; a (2, 3) is not a pose
        if raw.shape not in ((1, 6), (6,)) or not np.all(np.isfinite(raw)):
            raise Refused("bad model output",
                          f"pose output must be 6 finite numbers shaped (1, 6) or (6,), got shape {raw.shape}")
        vec = raw.reshape(6)
        T_odom_cam, T_prev_cur, dt_s = self.tracker.step(pair.stamp_ns, vec)
        self._prev = (pair.stamp_ns, rgb)
        self._publish(pair.image.header, T_odom_cam, T_prev_cur, dt_s)
        self.monitor.frame_published((time.monotonic_ns() - pair.received_ns) * 1e-6)

    def _publish(self, header: Any, T_odom_cam: np.ndarray, T_prev_cur: np.ndarray, dt_s: float) -> None:
        from geometry_msgs.msg import PoseStamped, TransformStamped
        from nav_msgs.msg import Odometry

        from depth_ros.ros.messages import copy_header

        child = self.config.camera_frame or str(header.frame_id)
        odom_header = copy_header(header)
        odom_header.frame_id = self.config.odom_frame
        q = matrix_to_quaternion(T_odom_cam[:3, :3])
        t = T_odom_cam[:3, 3]
        odom = Odometry(header=odom_header, child_frame_id=child)
        p = odom.pose.pose
        p.position.x, p.position.y, p.position.z = (float(v) for v in t)
        p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in q)
        if dt_s > 0:
            # Twist in the child (current camera) frame. T_prev_cur's translation is the
            # displacement in the previous frame; R^T takes it into the current one (the
            # rotation vector is the same in both frames: R leaves its own axis fixed).
            v_lin = T_prev_cur[:3, :3].T @ T_prev_cur[:3, 3] / dt_s
            w = rotation_vector(T_prev_cur[:3, :3]) / dt_s
            tw = odom.twist.twist
            tw.linear.x, tw.linear.y, tw.linear.z = (float(v) for v in v_lin)
            tw.angular.x, tw.angular.y, tw.angular.z = (float(v) for v in w)
        pose = PoseStamped(header=copy_header(odom_header), pose=odom.pose.pose)
        self.odom_pub.publish(odom)
        self.pose_pub.publish(pose)
        if self._tf is not None and self.config.publish_tf:
            tf = TransformStamped(header=copy_header(odom_header), child_frame_id=child)
            tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = (float(v) for v in t)
            r = tf.transform.rotation
            r.x, r.y, r.z, r.w = (float(v) for v in q)
            self._tf.sendTransform(tf)
        self.frames_published += 1


def make_pose_node_class() -> type:
    """The node class (:class:`PoseNode`; kept for callers of the former factory)."""
    return PoseNode


def create_pose_node(**kwargs: Any) -> Any:
    """A pose node (needs ``rclpy.init``); call ``configure()`` before spinning."""
    return PoseNode(**kwargs)


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of ``pose_node``: exit code 0, or 1 on a configuration error."""
    from depth_ros.ros.runner import run_nodes

    return run_nodes(["pose"], args=args, program="pose_node")


if __name__ == "__main__":
    sys.exit(main())
