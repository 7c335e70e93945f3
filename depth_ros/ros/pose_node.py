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
The per-frame step (rectify, reset, network, integration) is :class:`depth_ros.pose_pipeline.PosePipeline`,
the ROS-free code ``depth-ros infer --pose-model`` runs too: the same trajectory live and offline.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Sequence

from rclpy.node import Node

from depth_ros.pose_pipeline import PoseConfig, PosePipeline, PoseStep, PoseTracker
from depth_ros.ros.diagnostics import DiagnosticThresholds, FrameCounts, FrameMonitor
from depth_ros.ros.intake import FrameIntake, FrameWorker, MessageGuard, decode_pair, frame_refusals
from depth_ros.ros.params import ParameterError, PoseNodeConfig, declare_config, on_set_parameters_callback
from depth_ros.ros.sync import LatestSlot, Pair, StampPairer

__all__ = ["PoseNode", "PoseTracker", "create_pose_node", "main", "make_pose_node_class"]


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
        # the per-frame step and its integration: the ROS-free code `depth-ros infer --pose-model` runs
        self.pose = PosePipeline(self.backend, PoseConfig(max_gap_s=cfg.max_gap_s, odom_frame=cfg.odom_frame,
                                                          camera_frame=cfg.camera_frame, rectify=cfg.rectify), who="the pose node")
        spec = self.spec = self.pose.spec
        if not spec.metric:
            self.get_logger().warning(f"pose model '{spec.name}' is not metric: translation is up to scale")
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
        self.pose.set_max_gap(config.max_gap_s)
        self._pairer.tolerance_ns = int(config.sync_tolerance_ms * 1e6)

    @property
    def tracker(self) -> PoseTracker:
        """The odometry integrator (its resets, camera, current pose)."""
        return self.pose.tracker

    def _process(self, pair: Pair) -> None:
        rgb, camera = decode_pair(pair.image, pair.info, self.config.image_transport == "compressed")
        with frame_refusals():  # bad camera_info, preprocess, bad model output: the frame is refused
            step = self.pose.process(pair.stamp_ns, rgb, camera, pair.info)
        if step.reset is not None and step.reset != "first frame":
            self.get_logger().warning(f"odometry reset: {step.reset}")
        self._publish(pair.image.header, step)
        self.monitor.frame_published((time.monotonic_ns() - pair.received_ns) * 1e-6)

    def _publish(self, header: Any, step: PoseStep) -> None:
        from geometry_msgs.msg import PoseStamped, TransformStamped
        from nav_msgs.msg import Odometry

        from depth_ros.ros.messages import copy_header

        child = self.pose.config.child_frame(str(header.frame_id))
        odom_header = copy_header(header)
        odom_header.frame_id = self.config.odom_frame
        fields = step.odometry()
        t, q = fields.position_m, fields.orientation_xyzw
        odom = Odometry(header=odom_header, child_frame_id=child)
        p = odom.pose.pose
        p.position.x, p.position.y, p.position.z = (float(v) for v in t)
        p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in q)
        tw = odom.twist.twist
        tw.linear.x, tw.linear.y, tw.linear.z = (float(v) for v in fields.linear_mps)
        tw.angular.x, tw.angular.y, tw.angular.z = (float(v) for v in fields.angular_radps)
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
