"""Depth node: camera image + camera_info in, metric depth image, camera_info, cloud, DepthInfo out.

Topics (relative names; remap them, e.g. ``image:=/camera/image_raw``):

=======================  ==================================  =============================
``image``                sensor_msgs/Image (rgb8, bgr8,      in, SensorDataQoS
                         mono8, rgba8, bgra8)                (``image_transport: raw``)
``image/compressed``     sensor_msgs/CompressedImage         in (``image_transport: compressed``)
``camera_info``          sensor_msgs/CameraInfo              in, paired with images by stamp
``sparse_points``        sensor_msgs/PointCloud2             in, metric points (LiDAR) in the
                                                             image's frame, for scale_policy
                                                             sparse_alignment (no TF lookup)
``depth/image``          sensor_msgs/Image 32FC1 metres      out (NaN invalid; 16UC1 mm with
                                                             ``depth_encoding: 16UC1``)
``depth/camera_info``    sensor_msgs/CameraInfo              out (the input's, re-stamped)
``depth/points``         sensor_msgs/PointCloud2             out, organized, camera optical
                                                             frame; built only when subscribed
``depth/info``           depth_ros/DepthInfo                 out, how each image was made
``/diagnostics``         diagnostic_msgs/DiagnosticArray     out, every
                                                             ``diagnostics_period_s``: status
                                                             ``depth_node: depth``
                                                             (:mod:`depth_ros.ros.diagnostics`),
                                                             with the period's median ms per
                                                             stage
``depth/timing``         diagnostic_msgs/DiagnosticArray     out with ``publish_timing`` (off by
                                                             default): ms per stage of each
                                                             frame (:mod:`depth_ros.timing`),
                                                             stamped as the image
=======================  ==================================  =============================

Every output copies the input image's header. Parameters: :class:`DepthNodeConfig`.

Threading: the subscription callbacks only pair messages and put the newest pair into a
one-item slot (:class:`~depth_ros.ros.sync.LatestSlot`); one worker thread decodes, infers and
publishes. A frame that arrives while the worker is busy replaces the waiting one (counted in
``frames_dropped``). A malformed message is logged as a warning naming the problem and
skipped; the node keeps running: every callback is guarded (:mod:`depth_ros.ros.intake`), so
no message can end the node, and an unexpected exception is logged with its traceback.
An image with the stamp of the previous one (a duplicate) or older is skipped and counted.
A camera_info of another size or intrinsics mid-stream is followed (see :class:`DepthPipeline`)
and logged once.

No camera at all: with a model that predicts its field of view (Depth Pro's focal-length head), a
camera_info with K all zeros gives the frame the predicted camera, and when no camera_info has
arrived ``camera_info_timeout_s`` after the first image the images run alone with it
(``DepthInfo.scale_source`` ends in ``_predicted``; ``depth/camera_info`` carries the predicted K)
until a camera_info arrives. Any other model waits for camera_info.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

import numpy as np
from rclpy.node import Node

from depth_ros import msgconv
from depth_ros.pipeline import FramePipeline, FrameResult
from depth_ros.ros.diagnostics import DiagnosticThresholds, FrameCounts, FrameMonitor
from depth_ros.ros.intake import FrameIntake, FrameWorker, MessageGuard, frame_refusals, refusing_as
from depth_ros.ros.messages import ReusedPayload
from depth_ros.ros.params import DepthNodeConfig, ParameterError, declare_config, on_set_parameters_callback
from depth_ros.ros.runner import node_main
from depth_ros.ros.sync import LatestSlot, Pair, StampOrder, StampPairer
from depth_ros.timing import StageTimer

__all__ = ["DepthNode", "DepthPipeline", "FrameOutput", "create_depth_node", "main", "make_depth_node_class"]


BackendFactory = Callable[[DepthNodeConfig], Any]


def default_backend_factory(config: DepthNodeConfig) -> Any:
    """Load ``config.model_path`` with ``config.backend`` (create_backend, which runs the
    output contract dry run)."""
    from depth_ros.inference.backend import create_backend

    options = {"threads": config.threads} if config.threads > 0 else {}
    return create_backend(config.model_path, config.backend, **options)


#: One frame's arrays and DepthInfo values (the frame pipeline's result).
FrameOutput = FrameResult


class DepthPipeline(FramePipeline):
    """The frame pipeline (:class:`~depth_ros.pipeline.FramePipeline`) driven by the node's
    parameters: refusals are :class:`~depth_ros.ros.intake.Refused` with the node's phrases.

    Args:
        backend: an InferenceBackend (``spec`` must be a depth kind).
        config: the node config (its :meth:`~DepthNodeConfig.frame_config`).
        contract_checked: the backend came from create_backend (contract dry run done).
    """

    def __init__(self, backend: Any, config: DepthNodeConfig, contract_checked: bool = True) -> None:
        super().__init__(backend, config.frame_config(), contract_checked=contract_checked)
        self.node_config = config  # self.config: its FrameConfig

    def update_config(self, config: DepthNodeConfig) -> None:  # type: ignore[override]
        """Apply a runtime config change (range, scale policy): the postprocessor is rebuilt.

        Raises:
            ParameterError: the new scale policy does not fit the model (config unchanged).
        """
        try:
            super().update_config(config.frame_config())
        except ValueError as exc:  # ModelSpecError is a ValueError
            raise ParameterError(f"parameter 'scale_policy': {exc}") from None
        self.node_config = config

    def decode(self, image: Any, info: Any) -> tuple[np.ndarray, Any]:  # type: ignore[override]
        """(rgb (H, W, 3) uint8, CameraModel) of a message pair; for a camera_info without usable
        intrinsics (K all zeros) and a model with a field-of-view output, the camera the model
        predicts (:meth:`FramePipeline.decode_frame`; ``scale_source`` ends in ``_predicted``).

        Raises:
            Refused: (an InputError) "bad camera_info", "bad image" or "size mismatch".
        """
        with frame_refusals():
            return self.decode_frame(image, info, self.node_config.image_transport == "compressed")

    def preprocess(self, rgb: np.ndarray, camera: Any) -> np.ndarray:
        """The network input of one frame (:meth:`FramePipeline.preprocess`).

        Raises:
            Refused: (an InputError) "preprocess": the frame cannot be fed to the network.
        """
        with frame_refusals():
            return super().preprocess(rgb, camera)

    def postprocess(self, outputs: Any, rgb: np.ndarray, camera: Any, sparse_points_cam: np.ndarray | None = None,
                    inference_ms: float = 0.0) -> FrameResult:
        """Metric depth of the network outputs (:meth:`FramePipeline.postprocess`).

        Raises:
            Refused: (an InputError) "bad model output": the network returned non-finite
                values or an unusable shape; "no metric scale": the scale policy had nothing
                to work with.
        """
        with refusing_as("bad model output"), frame_refusals():  # a shape the contract forbids: this frame only
            return super().postprocess(outputs, rgb, camera, sparse_points_cam, inference_ms)


class DepthNode(FrameWorker, Node):
    """The depth node; see the module docstring for topics."""

    def __init__(self, node_name: str = "depth_node", *, backend_factory: BackendFactory | None = None,
                 **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.config: DepthNodeConfig = declare_config(self, DepthNodeConfig)
        self._backend_factory = backend_factory or default_backend_factory
        self.pipeline: DepthPipeline | None = None
        self._slot: LatestSlot[Pair] = LatestSlot()
        self._pairer = StampPairer(int(self.config.sync_tolerance_ms * 1e6))
        self._order = StampOrder(int(self.config.time_jump_reset_s * 1e9))
        self._guard = MessageGuard(self.get_logger(), period_s=2.0)
        image_topic = "image/compressed" if self.config.image_transport == "compressed" else "image"
        self._intake = FrameIntake(self._guard, self._pairer, self._order,
                                   image_topic=self.resolve_topic_name(image_topic),
                                   info_topic=self.resolve_topic_name("camera_info"))
        self._worker: threading.Thread | None = None
        self._sparse: Any = None  # newest sparse_points message
        # counters (read by tests and benches)
        self.frames_published = 0
        self.frames_skipped = 0  # frames the worker refused (bad content or model output)
        self.clouds_built = 0
        self._cloud_payload = ReusedPayload()  # depth/points payload, written in place
        self._depth_payload = ReusedPayload()  # depth/image payload, written in place
        self.last_latency_ms = 0.0
        self.last_inference_ms = 0.0
        self.last_stage_ms: dict[str, float] = {}  # the newest frame's ms per stage (depth_ros.timing)
        self.last_total_ms = 0.0  # ... and its image received -> work done
        self.timing_pub: Any = None  # depth/timing, with publish_timing
        self.memory_kept = False  # depth_ros.ros.memory.keep_freed_memory took effect
        self.monitor = FrameMonitor()  # /diagnostics
        self.diagnostics: Any = None
        self._last_scale: tuple[str, int] = ("", 0)  # scale source and support of the newest frame
        self._subscriptions_made: list[Any] = []
        self._parameter_callback_added = False

    # -- set-up ---------------------------------------------------------------------------
    def configure(self) -> None:
        """Load the model and create publishers, subscriptions and the worker.

        Raises:
            ParameterError: model_path is not set.
            ModelError, BackendError, FileNotFoundError: the model cannot be loaded or
                is not a depth model.
        """
        self.load_model()
        self.advertise()
        self.start()

    def load_model(self) -> None:
        """Load the model (the heavy step; a lifecycle node's ``configure``).

        Raises:
            as :meth:`configure`.
        """
        if not self.config.model_path:
            raise ParameterError("parameter 'model_path': not set (path of an .onnx model or torch checkpoint)")
        from depth_ros.ros.memory import keep_freed_memory

        self.memory_kept = keep_freed_memory()  # frame buffers reused, not page-faulted in again
        backend = self._backend_factory(self.config)
        self.pipeline = DepthPipeline(backend, self.config)
        self._follow_info_timeout(self.config)
        self.get_logger().info(
            f"model '{self.pipeline.spec.name}' ({self.pipeline.spec.output_kind}, "
            f"{self.pipeline.spec.input_width}x{self.pipeline.spec.input_height}) on {getattr(backend, 'name', '?')}"
        )
        if not self._parameter_callback_added:
            self.add_on_set_parameters_callback(on_set_parameters_callback(lambda: self.config, self._set_config))
            self._parameter_callback_added = True

    def advertise(self) -> None:
        """Create the output publishers."""
        from depth_ros.msg import DepthInfo
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from depth_ros.ros import qos

        self.depth_pub = qos.advertise(self, Image, "depth/image", qos.output_qos())
        self.info_pub = qos.advertise(self, CameraInfo, "depth/camera_info", qos.output_qos())
        self.cloud_pub = qos.advertise(self, PointCloud2, "depth/points", qos.output_qos())
        self.meta_pub = qos.advertise(self, DepthInfo, "depth/info", qos.info_qos())
        if self.timing_pub is not None:  # advertised again after a lifecycle cleanup
            self.destroy_publisher(self.timing_pub)
            self.timing_pub = None
        if self.config.publish_timing:
            from diagnostic_msgs.msg import DiagnosticArray

            self.timing_pub = qos.advertise(self, DiagnosticArray, "depth/timing", qos.info_qos())

    def start(self) -> None:
        """Subscribe to the camera, start /diagnostics and the worker (frames flow from here)."""
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

        from depth_ros.ros import qos

        if self.config.image_transport == "compressed":
            self._subscribe(CompressedImage, "image/compressed", self._on_image)
        else:  # taken as CDR bytes: rclpy's own deserialisation copies the pixels twice
            from depth_ros.bag.typestore import output_typestore

            output_typestore()  # built now (cached), not on the first frame
            self._subscribe(Image, "image", self._on_image_cdr, raw=True)
        self._subscribe(CameraInfo, "camera_info", self._on_info)
        self._subscribe(PointCloud2, "sparse_points", self._on_sparse)
        qos.warn_unused_overrides(self)
        if self.diagnostics is None:
            self.diagnostics = self._start_diagnostics()
        if self._slot.closed:  # started again after stop(): a new mailbox, the counts kept
            old, self._slot = self._slot, LatestSlot()
            self._slot.dropped, self._slot.put_count = old.dropped, old.put_count
        self._worker = threading.Thread(target=self._work, name=f"{self.get_name()}_worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Undo :meth:`start`: unsubscribe, stop the worker (after the frame in progress);
        the publishers and the model stay."""
        for sub in self._subscriptions_made:
            self.destroy_subscription(sub)
        self._subscriptions_made.clear()
        self.shutdown()

    def _start_diagnostics(self) -> Any:
        """The /diagnostics timer: rates, counters, latency, backend and scale health."""
        from depth_ros.ros.diagnostics import DiagnosticsPublisher

        assert self.pipeline is not None
        pipeline = self.pipeline

        def extra() -> tuple[tuple[str, str], ...]:
            return (
                ("Backend", str(getattr(pipeline.backend, "name", "unknown"))),
                ("Model", f"{pipeline.spec.name} ({pipeline.spec.output_kind})"),
                ("Scale policy", pipeline.config.scale_policy),
                ("Scale source", self._last_scale[0] or "none yet"),
                ("Scale support", str(self._last_scale[1])),
                ("Camera", pipeline.camera_text()),
            )

        return DiagnosticsPublisher(
            self, self.monitor, "depth", self.config.diagnostics_period_s, self._frame_counts,
            lambda: DiagnosticThresholds.from_config(self.config), extra)

    def _frame_counts(self) -> FrameCounts:
        return FrameCounts(received=self.frames_received, published=self.frames_published,
                           dropped=self.frames_dropped, skipped=self.frames_skipped_total,
                           failed=self.frames_skipped)

    def _subscribe(self, msg_type: Any, topic: str, callback: Callable[[Any], None], raw: bool = False) -> Any:
        """Subscribe with the input QoS; the callback is guarded: no message can end the node.
        ``raw``: the callback gets the CDR bytes (rclpy ``raw=True``)."""
        from depth_ros.ros import qos

        guarded = self._guard.guard(self.resolve_topic_name(topic), callback)
        sub = qos.subscribe(self, msg_type, topic, guarded, qos.input_qos(), raw=raw)
        self._subscriptions_made.append(sub)
        return sub

    def _set_config(self, config: DepthNodeConfig) -> None:
        if self.pipeline is not None:
            self.pipeline.update_config(config)
        self.config = config
        self._order.reset_after_ns = int(config.time_jump_reset_s * 1e9)
        self._pairer.tolerance_ns = int(config.sync_tolerance_ms * 1e6)
        self._follow_info_timeout(config)

    def _follow_info_timeout(self, config: DepthNodeConfig) -> None:
        """Images may run without camera_info (``camera_info_timeout_s``) only with a model that
        predicts its field of view; every other model waits for camera_info."""
        predicts_fov = self.pipeline is not None and self.pipeline.fov_output is not None
        timeout_s = config.camera_info_timeout_s
        self._intake.info_timeout_ns = int(timeout_s * 1e9) if predicts_fov and timeout_s > 0 else None

    @property
    def frames_dropped(self) -> int:
        """Frames replaced before the worker took them, plus images that never got a camera_info."""
        return self._slot.dropped + self._pairer.unpaired_images

    @property
    def frames_received(self) -> int:
        return self._intake.frames_received

    @property
    def frames_out_of_order(self) -> int:
        return self._intake.frames_out_of_order

    @property
    def frames_skipped_total(self) -> int:
        """Everything received and not processed for a reason other than load (DepthInfo.frames_skipped)."""
        return (self.frames_skipped + self.frames_out_of_order + self.frames_duplicate
                + sum(self._guard.dropped.values()))

    def queue_length(self) -> int:
        """Frames waiting for the worker (0 or 1 by construction)."""
        return self._slot.pending()

    # -- callbacks (never block; guarded, see _subscribe) -----------------------------------
    def _warn(self, text: str, key: object) -> None:
        """Log ``text`` unless the same problem (``key``, a fixed phrase) was logged in the
        last 2 s: a camera sending a bad stream must not flood the log."""
        self._guard.warn(key, text)

    def _on_image_cdr(self, data: Any) -> None:
        """The image subscription's callback: CDR bytes from rclpy (``raw=True``); a message
        object handed in directly (an in-process caller of the callback) is taken as it is."""
        from depth_ros.ros.raw_image import image_from_cdr

        self._on_image(image_from_cdr(data) if isinstance(data, (bytes, bytearray, memoryview)) else data)

    def _on_sparse(self, msg: Any) -> None:
        # decoded by the worker, only when the policy needs it; the stamp is checked here
        if self._guard.stamp_ns(msg, self.resolve_topic_name("sparse_points")) is not None:
            self._sparse = msg

    def _scale_input_problem(self, text: str, key: str) -> None:
        """A scale input is missing or unusable: throttled warning, and /diagnostics WARN."""
        self._warn(text, key=key)
        self.monitor.scale_problem(text)

    def _sparse_points_for(self, image_header: Any, config: DepthNodeConfig) -> np.ndarray | None:
        """(N, 3) metric points for sparse_alignment, or None (with a throttled warning why)."""
        if config.scale_policy != "sparse_alignment":
            return None
        msg = self._sparse
        topic = self.resolve_topic_name("sparse_points")
        if msg is None:
            self._scale_input_problem(f"scale_policy sparse_alignment: nothing received on {topic}",
                                      key="no sparse_points")
            return None
        if msg.header.frame_id != image_header.frame_id:
            self._scale_input_problem(
                f"{topic} is in frame '{msg.header.frame_id}', the image in '{image_header.frame_id}': "
                "sparse points must be in the camera's optical frame (no TF lookup here)",
                key="sparse_points frame",
            )
            return None
        # Both stamps were checked by the callbacks.
        age_s = abs(msgconv.stamp_to_ns(image_header.stamp) - msgconv.stamp_to_ns(msg.header.stamp)) * 1e-9
        if age_s > config.sparse_max_age_s:
            self._scale_input_problem(
                f"{topic}: newest cloud is {age_s:.3f} s from the image (sparse_max_age_s {config.sparse_max_age_s})",
                key="sparse_points age")
            return None
        with refusing_as("bad sparse_points"):
            return msgconv.pointcloud2_to_xyz(msg)

    # -- worker ---------------------------------------------------------------------------
    def _process(self, pair: Pair) -> None:
        """One frame: decode, depth, publish; every stage timed (:mod:`depth_ros.timing`)."""
        from depth_ros.ros import messages

        assert self.pipeline is not None
        wait_ms = max(0.0, (time.monotonic_ns() - pair.received_ns) * 1e-6)  # image callback -> here
        timer = StageTimer(start_s=time.perf_counter() - wait_ms * 1e-3)
        timer.add("wait", wait_ms)
        if self._intake.reset_requested:
            self._intake.reset_requested = False
            self.pipeline.reset()
        pipeline = self.pipeline
        config = pipeline.config  # the FrameConfig, swapped whole on a parameter change
        with timer.stage("decode"):
            rgb, camera = pipeline.decode(pair.image, pair.info)
        with timer.stage("rectify"):
            rgb, camera = pipeline.rectify(rgb, camera, pair.info)
        header = pair.image.header
        # Followed here (not only in run) so that a change is logged even when this frame fails.
        change = pipeline.follow_camera(camera)
        if change:
            self.get_logger().info(f"camera changed: {change}; per-camera state rebuilt")
        with timer.stage("decode"):  # the sparse points, when the scale policy takes them
            sparse = self._sparse_points_for(header, pipeline.node_config)
        out = pipeline.run(rgb, camera, sparse, timer)
        build = messages.rclpy_builder()
        # Depth first: the cloud (several MB) must not delay the image.
        with timer.stage("fill_depth"):  # written straight into the message's payload
            depth_bytes = out.depth_m.size * (4 if config.depth_encoding == "32FC1" else 2)
            depth_msg = build.depth_image(out.depth_m, header, config.depth_encoding,
                                          payload=self._depth_payload.take(depth_bytes))
        with timer.stage("publish_depth"):
            self.depth_pub.publish(depth_msg)
        latency_ms = (time.monotonic_ns() - pair.received_ns) * 1e-6  # DepthInfo: received -> depth published
        with timer.stage("fill_info"):
            info_msg = build.camera_info_for(pair.info, out.camera, header)
        with timer.stage("publish_info"):
            self.info_pub.publish(info_msg)
        if config.publish_cloud and self.cloud_pub.get_subscription_count() > 0:  # built for someone only
            with timer.stage("cloud"):  # written straight into the message's payload
                payload = self._cloud_payload.take(pipeline.cloud_nbytes(out))
                cloud = pipeline.cloud(out, out=payload)
            with timer.stage("fill_cloud"):
                cloud_msg = build.pointcloud(cloud, header, payload=payload)
            del cloud, payload
            with timer.stage("publish_cloud"):
                self.cloud_pub.publish(cloud_msg)
            self.clouds_built += 1
        with timer.stage("publish_meta"):
            self.meta_pub.publish(build.depth_info(
                header, **pipeline.depth_info_fields(out), latency_ms=latency_ms,
                frames_dropped=self.frames_dropped, frames_received=self.frames_received,
                frames_skipped=self.frames_skipped_total,
            ))
        self.frames_published += 1
        self.last_latency_ms = latency_ms
        self.last_inference_ms = out.inference_ms
        self._last_scale = (out.scale_source, out.scale_support)
        self._report_timing(header, timer)
        self.monitor.frame_published(latency_ms, out.scale_source, out.scale_support, self.last_stage_ms)

    def _report_timing(self, header: Any, timer: StageTimer) -> None:
        """Keep the frame's times (``last_stage_ms``) and publish them on depth/timing when on."""
        self.last_stage_ms, self.last_total_ms = dict(timer.ms), timer.total_ms()
        if self.timing_pub is None:
            return
        from diagnostic_msgs.msg import DiagnosticArray

        from depth_ros.ros import messages
        from depth_ros.ros.diagnostics import OK, StatusValue, timing_values, to_msg

        status = StatusValue(OK, f"{self.get_name()}: timing", "", self.get_fully_qualified_name(),
                             timing_values(self.last_stage_ms, self.last_total_ms, timer.cpu_ms))
        self.timing_pub.publish(DiagnosticArray(header=messages.copy_header(header), status=[to_msg(status)]))

    # (tear-down: FrameWorker.shutdown stops the worker)


def make_depth_node_class() -> type:
    """The node class (:class:`DepthNode`; kept for callers of the former factory)."""
    return DepthNode


def create_depth_node(**kwargs: Any) -> Any:
    """A configured-ready (not yet :meth:`configure`-d) depth node; needs ``rclpy.init``."""
    return DepthNode(**kwargs)


#: Entry point of ``depth_node``: exit code 0, or 1 on a configuration error.
main = node_main("depth", "depth_node")


if __name__ == "__main__":
    sys.exit(main())
