"""The per-frame stages of ``depth-ros infer`` around the frame pipeline, and the bag reading
that feeds them (split from :mod:`depth_ros.bag.infer`).

Work items flow in bag order: :func:`work_items` reads the camera (and LiDAR) topics, pairs
them and yields copies, skips and frames prepared for the network; :class:`InferStages` runs
the network on them (:meth:`~InferStages.infer`) and postprocesses and writes them
(:meth:`~InferStages.finish`), either one after the other or overlapped
(:mod:`depth_ros.bag.infer_runner`).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Union

import numpy as np

from depth_ros import msgconv
from depth_ros.bag.infer_summary import InferSummary, SkipLog
from depth_ros.bag.odometry_msg import odometry_message
from depth_ros.bag.reader import COMPRESSED_IMAGE_TYPE, TF_STATIC_TOPIC, BagMessage, BagReader
from depth_ros.bag.sync import FrameSynchronizer, SyncedFrame
from depth_ros.bag.tf import StaticTransforms
from depth_ros.bag.typestore import output_typestore
from depth_ros.bag.writer import BagWriter
from depth_ros.core.camera import CameraModel
from depth_ros.core.focal_fallback import UncalibratedCamera
from depth_ros.errors import BagError, InputError, one_line
from depth_ros.msgbuild import MessageBuilder
from depth_ros.pipeline import FramePipeline, FrameRefused, FrameResult
from depth_ros.pose_pipeline import PosePipeline, PoseStep

__all__ = ["InferStages", "copyable_topics", "work_items"]

_log = logging.getLogger("depth_ros.bag.infer")

#: Image stamps remembered to recognise a duplicate (the same frame recorded twice, possibly
#: with a few other images in between).
_RECENT_STAMPS = 64


@dataclass
class _Item:
    """An image or partner message as read: raw record, decoded message, when it was read."""

    raw: BagMessage
    msg: Any
    read_at: float


# Work items passed between the stages, in bag order.
@dataclass
class _Copy:
    """An input message copied byte for byte."""

    raw: BagMessage


@dataclass
class _Skip:
    """A frame dropped before inference (reason: a key of SKIP_REASONS)."""

    frame: SyncedFrame[_Item]
    reason: str
    detail: str


@dataclass
class _Ready:
    """A frame decoded and preprocessed: the network input and what postprocessing needs."""

    frame: SyncedFrame[_Item]
    rgb: np.ndarray
    camera: CameraModel
    tensor: np.ndarray
    sparse_cam: np.ndarray | None


@dataclass
class _Inferred:
    """A frame after the network(s): depth outputs, and the pose step (or why there is none)
    when a pose model runs."""

    ready: _Ready
    outputs: dict[str, np.ndarray]
    inference_ms: float
    pose: PoseStep | FrameRefused | None = None


_WorkItem = Union[_Copy, _Skip, _Ready, _Inferred]


class InferStages:
    """Per-frame work of :func:`infer_bag` in three stages around the frame pipeline:
    :meth:`prepare` (decode + preprocess), :meth:`infer` (the network, and the pose network
    on the frame and its predecessor when ``pose`` is given), :meth:`finish` (postprocess,
    cloud, write).

    Each stage keeps its own timer in ``summary.timing_s``; when the stages overlap (see
    :func:`~depth_ros.bag.infer_runner.run_overlapped`) the timers add up to more than the
    wall time.
    """

    def __init__(
        self,
        frames: FramePipeline,
        config: Any,  # depth_ros.bag.infer.InferConfig (not imported: infer imports this module)
        writer: BagWriter,
        topics: dict[str, str],
        static_tf: StaticTransforms,
        summary: InferSummary,
        skips: SkipLog,
        progress: Callable[[int], None] | None = None,
        pose: PosePipeline | None = None,
    ) -> None:
        self.frames = frames
        self.pose = pose
        self.progress = progress
        self.config = config
        self.writer = writer
        self.topics = topics
        self.static_tf = static_tf
        self.summary = summary
        self.skips = skips
        typestore = output_typestore()
        self.build = MessageBuilder.for_typestore(typestore)
        self.types = typestore.types  # the odometry's classes (nav_msgs, geometry_msgs)
        self._lidar_T: dict[tuple[str, str], np.ndarray] = {}

    # stage helpers ---------------------------------------------------------------------
    def _decode(self, frame: SyncedFrame[_Item]) -> tuple[np.ndarray, CameraModel]:
        """(rgb, camera) of a frame; a frame without a usable camera_info gets the model's predicted
        camera when it has a field-of-view output (:meth:`FramePipeline.decode_frame`)."""
        info = frame.info.msg if frame.info is not None else None
        if info is None and self.frames.fov_output is None:
            raise FrameRefused("missing_camera_info", f"no camera_info within {self.config.stamp_tolerance_ns} ns")
        compressed = frame.image.raw.msgtype == COMPRESSED_IMAGE_TYPE
        rgb, camera = self.frames.decode_frame(frame.image.msg, info, compressed)
        return self.frames.rectify(rgb, camera, info)

    def _lidar_points_cam(self, frame: SyncedFrame[_Item]) -> np.ndarray | None:
        """LiDAR points of the frame in the camera optical frame, (N, 3) float32 metres."""
        if frame.lidar is None:
            return None
        cloud = frame.lidar.msg
        key = (str(frame.image.msg.header.frame_id), str(cloud.header.frame_id))
        if key not in self._lidar_T:
            try:
                self._lidar_T[key] = self.static_tf.lookup(*key)
            except InputError as exc:
                raise BagError(f"{self.summary.input_path}: LiDAR points cannot be put in the camera frame: {exc}") from None
        try:
            xyz = msgconv.pointcloud2_to_xyz(cloud)
        except InputError as exc:
            _log.debug("LiDAR cloud unusable: %s", exc)
            return None
        T_cam_lidar = self._lidar_T[key]
        return (xyz.astype(np.float64) @ T_cam_lidar[:3, :3].T + T_cam_lidar[:3, 3]).astype(np.float32)

    # the three stages ----------------------------------------------------------------------
    def prepare(self, frame: SyncedFrame[_Item]) -> _Ready | _Skip:
        """Decode, check and preprocess one paired frame (stage 1: reading side)."""
        timing = self.summary.timing_s
        t0 = time.perf_counter()
        try:
            rgb, camera = self._decode(frame)
            sparse_cam = self._lidar_points_cam(frame)
            t1 = time.perf_counter()
            timing["read"] += t1 - t0
            tensor = self.frames.preprocess(rgb, camera)
        except FrameRefused as skip:
            return _Skip(frame, skip.reason, str(skip))
        timing["preprocess"] += time.perf_counter() - t1
        return _Ready(frame, rgb, camera, tensor, sparse_cam)

    def infer(self, item: _WorkItem) -> _WorkItem:
        """Run the network on a prepared frame (stage 2); other items pass through."""
        if not isinstance(item, _Ready):
            return item
        outputs, inference_ms = self.frames.infer(item.tensor, where=f"the frame at stamp {item.frame.stamp_ns} ns")
        self.summary.timing_s["backend"] += inference_ms * 1e-3
        return _Inferred(item, outputs, inference_ms, self._pose_step(item))

    def _pose_step(self, item: _Ready) -> PoseStep | FrameRefused | None:
        """The pose node's step on a frame (in bag order: the network stage is one thread)."""
        if self.pose is None:
            return None
        if isinstance(item.camera, UncalibratedCamera):  # its K is a placeholder until postprocess
            return FrameRefused("bad_camera_info", f"{item.camera.reason}: the pose model needs the camera's intrinsics")
        t0 = time.perf_counter()
        try:
            return self.pose.process(item.frame.stamp_ns, item.rgb, item.camera, item.frame.info.msg)
        except FrameRefused as refused:
            return refused
        finally:
            self.summary.timing_s["pose"] += time.perf_counter() - t0

    def finish(self, item: _WorkItem) -> None:
        """Postprocess, build the cloud and write (stage 3); copies and skips are recorded here
        too, so the output keeps the input's order and all accounting happens in one thread."""
        if isinstance(item, _Copy):
            t0 = time.perf_counter()
            self.writer.write_raw(item.raw.topic, item.raw.data, item.raw.log_time_ns)
            self.summary.timing_s["write"] += time.perf_counter() - t0
            return
        if isinstance(item, _Skip):
            self._skipped(item.frame, item.reason, item.detail)
            return
        if not isinstance(item, _Inferred):
            raise TypeError(f"unexpected work item {type(item).__name__}")
        timing = self.summary.timing_s
        ready, frame = item.ready, item.ready.frame
        if item.pose is not None:
            self._write_odometry(frame, item.pose)  # the pose node publishes whatever the depth node makes of the frame
        t0 = time.perf_counter()
        try:
            result = self.frames.postprocess(item.outputs, ready.rgb, ready.camera, ready.sparse_cam, item.inference_ms)
        except FrameRefused as exc:
            self._skipped(frame, exc.reason, str(exc))
            return
        if result.camera_change:
            _log.info("camera changed at stamp %d ns: %s; per-camera state rebuilt", frame.stamp_ns, result.camera_change)
        t1 = time.perf_counter()
        timing["postprocess"] += t1 - t0
        cloud = self.frames.cloud(result)
        t2 = time.perf_counter()
        timing["cloud"] += t2 - t1
        self._write(frame, result, cloud)
        timing["write"] += time.perf_counter() - t2
        self.summary.frames_out += 1
        source = str(result.scale_source)
        self.summary.scale_sources[source] = self.summary.scale_sources.get(source, 0) + 1
        if self.progress is not None:
            self.progress(1)

    def _write_odometry(self, frame: SyncedFrame[_Item], step: PoseStep | FrameRefused) -> None:
        """Write the frame's odometry, or count (and log once per reason) why there is none."""
        summary = self.summary
        if isinstance(step, FrameRefused):
            if step.reason not in summary.pose_skipped:
                _log.warning("no odometry for the frame at stamp %d ns: %s: %s (further ones are counted)",
                             frame.stamp_ns, step.reason, one_line(str(step)))
            summary.pose_skipped[step.reason] = summary.pose_skipped.get(step.reason, 0) + 1
            return
        if step.reset is not None and step.reset != "first frame":
            _log.info("odometry reset at stamp %d ns: %s", frame.stamp_ns, step.reset)
            summary.odometry_resets += 1
        assert self.pose is not None
        t0 = time.perf_counter()
        header = frame.image.msg.header
        fields = step.odometry()
        msg = odometry_message(
            self.types, self.build.header_at(step.stamp_ns, self.pose.config.odom_frame),
            self.pose.config.child_frame(str(header.frame_id)), fields.position_m, fields.orientation_xyzw,
            fields.linear_mps, fields.angular_radps,
        )
        self.writer.write(self.topics["odom"], msg, frame.image.raw.log_time_ns)
        summary.timing_s["write"] += time.perf_counter() - t0
        summary.odometry_out += 1

    def _skipped(self, frame: SyncedFrame[_Item], reason: str, detail: str) -> None:
        if reason == "bad_stamp":  # no stamp to name: the frame's log time instead
            where = f"logged at {frame.image.raw.log_time_ns} ns"
        else:
            where = f"at stamp {frame.stamp_ns} ns"
        self.skips.skip(reason, where, detail)
        if self.progress is not None:
            self.progress(1)

    def _write(self, frame: SyncedFrame[_Item], result: FrameResult, cloud: np.ndarray | None) -> None:
        build, write = self.build, self.writer.write
        header = frame.image.msg.header
        log_ns = frame.image.raw.log_time_ns
        write(self.topics["depth"], build.depth_image(result.depth_m, header, self.frames.config.depth_encoding), log_ns)
        if "depth_mm" in self.topics:
            write(self.topics["depth_mm"], build.depth_image(result.depth_m, header, "16UC1"), log_ns)
        write(self.topics["camera_info"], self._camera_info(frame, result.camera, header), log_ns)
        if cloud is not None:
            write(self.topics["points"], build.pointcloud(cloud, header), log_ns)
        info = build.depth_info(
            header, **self.frames.depth_info_fields(result),
            latency_ms=(time.perf_counter() - frame.image.read_at) * 1e3,
            frames_dropped=0, frames_received=0, frames_skipped=0,
        )
        write(self.topics["info"], info, log_ns)


    def _camera_info(self, frame: SyncedFrame[_Item], camera: CameraModel, header: Any) -> Any:
        """The depth image's camera_info: the input's (or its rectified camera), or for a camera
        predicted by the model (:class:`PredictedCamera`) one with the predicted K
        (:meth:`~depth_ros.msgbuild.MessageBuilder.camera_info_for`)."""
        return self.build.camera_info_for(frame.info.msg if frame.info is not None else None, camera, header)


def copyable_topics(topics: list[str], infos: dict[str, Any], reader: BagReader, typestore: Any) -> list[str]:
    """The input topics that can be copied byte for byte.

    A copied topic keeps the bag's own definition of its type; the outputs use this package's.
    When both use one type (an Image input next to the Image depth output) they must agree,
    since an MCAP file has one schema per type name; a topic whose recorded definition differs
    is not copied (with a warning) rather than written under a wrong schema.
    """
    kept = []
    for topic in topics:
        msgtype = infos[topic].msgtype
        if msgtype in typestore.fielddefs:
            try:
                same = reader.typestore.hash_rihs01(msgtype) == typestore.hash_rihs01(msgtype)
            except Exception:  # a type the output typestore lacks: nothing to clash with
                same = True
            if not same:
                _log.warning("not copying %s: its recorded %s definition differs from this package's", topic, msgtype)
                continue
        kept.append(topic)
    return kept


def work_items(reader: BagReader, pipeline: InferStages, copied: list[str]) -> Iterator[_WorkItem]:
    """Read the camera (and LiDAR) topics in log-time order and yield, in that order, the
    copies and every paired frame prepared for the network (stage 1)."""
    summary, config, timing = pipeline.summary, pipeline.config, pipeline.summary.timing_s
    image_topic, info_topic, lidar_topic = summary.image_topic, summary.camera_info_topic, summary.lidar_topic
    sync: FrameSynchronizer[_Item] = FrameSynchronizer(
        tolerance_ns=config.stamp_tolerance_ns,
        max_pending=config.max_pending,
        with_lidar=lidar_topic is not None,
        lidar_tolerance_ns=config.lidar_tolerance_ns,
    )
    reading = [image_topic] + ([info_topic] if info_topic else []) + ([lidar_topic] if lidar_topic else [])
    reading += [t for t in copied if t not in reading]
    recent: deque[int] = deque(maxlen=_RECENT_STAMPS)  # image stamps, to recognise duplicates
    messages = reader.messages(reading)
    try:
        while True:
            t_read = time.perf_counter()  # (not across a yield: time spent waiting downstream is not reading)
            raw = next(messages, None)
            if raw is None or (
                raw.topic == image_topic and config.max_frames is not None and summary.frames_in >= config.max_frames
            ):
                break
            if raw.topic == TF_STATIC_TOPIC:
                timing["read"] += time.perf_counter() - t_read
                yield _Copy(raw)
                continue
            msg = reader.deserialize(raw)
            item = _Item(raw, msg, time.perf_counter())
            try:
                stamp_ns: int | None = msgconv.stamp_to_ns(msg.header.stamp, what=raw.topic)
                stamp_error = ""
            except InputError as exc:  # one bad message must not end the run
                stamp_ns, stamp_error = None, f"{exc} (message logged at {raw.log_time_ns} ns)"
            timing["read"] += time.perf_counter() - t_read
            if raw.topic in copied:
                yield _Copy(raw)  # inputs are copied as they are, bad stamp or not
            if raw.topic == image_topic:
                summary.frames_in += 1
                if stamp_ns is None:
                    yield _Skip(SyncedFrame(raw.log_time_ns, item), "bad_stamp", stamp_error)
                    continue
                if stamp_ns in recent:
                    yield _Skip(SyncedFrame(stamp_ns, item), "duplicate_stamp",
                                f"{raw.topic}: stamp {stamp_ns} ns was already taken by an earlier image; not written twice")
                    continue
                recent.append(stamp_ns)
                # no camera_info topic (the model's predicted camera): nothing to wait for
                frames = sync.add_image(stamp_ns, item) if info_topic else [SyncedFrame(stamp_ns, item)]
            elif stamp_ns is None:
                pipeline.skips.drop_message(raw.topic, stamp_error)
                continue
            elif raw.topic == info_topic:
                frames = sync.add_info(stamp_ns, item)
            else:
                frames = sync.add_lidar(stamp_ns, item)
            for frame in frames:
                yield pipeline.prepare(frame)
        for frame in sync.flush():
            yield pipeline.prepare(frame)
    finally:
        messages.close()
