"""Live messages under abuse: what the nodes' subscription callbacks do with hostile input.

* a header stamp with ``nanosec`` = 1.5e9 (it once killed the depth node: exit 1) is an
  InputError naming the topic; the message is dropped, counted and warned about (throttled);
* no callback of either node raises, whatever the message, and an unexpected exception is
  logged with its traceback (not hidden);
* a duplicated image (the previous image's stamp) is not processed twice;
* warnings are throttled per reason, not per text (texts that differ per message, e.g. an
  object address, once defeated the throttle);
* a CameraInfo whose intrinsics no physical camera has (fx = fy = 1e-30 put 1.8 M cloud
  coordinates above 1e6 m) is refused, by the one check node, pose node and ``infer`` share.

Messages are duck-typed (SimpleNamespace) where the code under test is: the callback logic
(:mod:`depth_ros.ros.intake`) needs no ROS. One test (marked ``ros``) drives the real nodes'
subscription callbacks in-process.
"""
from __future__ import annotations

import io
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from depth_ros import msgconv
from depth_ros.core.camera import MAX_RAY_ANGLE_DEG, MIN_FOV_DEG, CameraModel
from depth_ros.core.pointcloud import make_cloud
from depth_ros.errors import InputError
from depth_ros.ros.intake import FrameIntake, MessageGuard, Refused
from depth_ros.ros.sync import StampOrder, StampPairer

from doubles import RecordingLogger

S = 1_000_000_000
T0 = 1_700_000_000 * S
IMAGE_TOPIC, INFO_TOPIC = "/cam/image_raw", "/cam/camera_info"


def msg_at(sec: int, nanosec: int, **fields: Any) -> SimpleNamespace:
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec), frame_id="cam"), **fields)


def msg_ns(ns: int, **fields: Any) -> SimpleNamespace:
    return msg_at(ns // S, ns % S, **fields)


def depth_intake(period_s: float = 60.0) -> tuple[FrameIntake, MessageGuard, RecordingLogger]:
    """The depth node's intake: stamp order with restarts after 1 s back, exact pairing."""
    logger = RecordingLogger()
    guard = MessageGuard(logger, period_s=period_s)
    return FrameIntake(guard, StampPairer(0), StampOrder(S), IMAGE_TOPIC, INFO_TOPIC), guard, logger


# -- stamps -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sec", "nanosec", "fragment"),
    [
        (1, 1_500_000_000, r"nanosec must be in \[0, 1e9\), got 1500000000"),
        (1, 4_294_967_295, r"nanosec must be in \[0, 1e9\), got 4294967295"),
        (1, -1, r"nanosec must be in \[0, 1e9\), got -1"),
        (1, float("nan"), "nanosec must be an integer, got float"),
        ("1", 0, "sec must be an integer, got str"),
    ],
)
def test_bad_stamp_is_an_input_error_naming_the_topic(sec: Any, nanosec: Any, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment) as info:
        msgconv.stamp_to_ns(SimpleNamespace(sec=sec, nanosec=nanosec), what=IMAGE_TOPIC)
    assert str(info.value).startswith(f"{IMAGE_TOPIC}: header.stamp.")
    assert "\n" not in str(info.value)


def test_image_and_camera_info_with_a_bad_stamp_are_dropped_and_the_stream_goes_on() -> None:
    intake, guard, logger = depth_intake()
    assert intake.on_image(msg_at(1_700_000_000, 1_500_000_000), received_ns=0) is None
    assert intake.on_info(msg_at(1_700_000_000, 1_500_000_000)) is None
    assert guard.dropped == {"bad stamp": 2} and intake.frames_received == 1
    warnings = logger.texts("warning")
    assert len(warnings) == 2  # one per topic
    assert warnings[0].startswith(f"{IMAGE_TOPIC}: header.stamp.nanosec must be in [0, 1e9), got 1500000000")
    assert warnings[1].startswith(f"{INFO_TOPIC}: header.stamp.nanosec")
    # A flood of them: every one counted, the warning not repeated within the period.
    for _ in range(50):
        intake.on_image(msg_at(1_700_000_000, 1_500_000_000), received_ns=0)
    assert guard.dropped["bad stamp"] == 52 and len(logger.texts("warning")) == 2
    # The next good frame pairs as if nothing happened.
    assert intake.on_image(msg_ns(T0, name="good"), received_ns=5) is None  # waits for its camera_info
    pair = intake.on_info(msg_ns(T0, name="info"))
    assert pair is not None and (pair.image.name, pair.info.name, pair.stamp_ns, pair.received_ns) == ("good", "info", T0, 5)


# -- guarded callbacks ------------------------------------------------------------------------
def test_guarded_callback_survives_any_exception_and_logs_a_bug_with_its_traceback() -> None:
    logger = RecordingLogger()
    guard = MessageGuard(logger, period_s=60.0)

    def callback(msg: Any) -> None:
        if msg == "bug":
            raise ZeroDivisionError("division by zero in the callback")
        if msg == "refused":
            raise Refused("bad image", "Image: step 3 is smaller than width * 3")
        if msg == "input":
            raise InputError("Image: data has 10 bytes, expected 9216")
        if msg == "keyboard":
            raise KeyboardInterrupt  # not a message problem: Ctrl-C must still stop the node

    guarded = guard.guard(IMAGE_TOPIC, callback)
    for msg in ("bug", "refused", "input", "bug", "ok", "refused"):
        assert guarded(msg) is None
    assert guard.dropped == {"unexpected error": 2, "bad image": 2, "bad message": 1}
    assert guard.failures == 2
    errors = logger.texts("error")
    assert len(errors) == 1  # the same bug twice: logged once per period, counted twice
    assert errors[0].startswith(f"{IMAGE_TOPIC}: unexpected ZeroDivisionError while handling a message")
    assert "Traceback (most recent call last)" in errors[0] and "division by zero in the callback" in errors[0]
    warnings = logger.texts("warning")
    assert warnings == [
        f"{IMAGE_TOPIC}: message dropped: Image: step 3 is smaller than width * 3",
        f"{IMAGE_TOPIC}: message dropped: Image: data has 10 bytes, expected 9216",
    ]
    with pytest.raises(KeyboardInterrupt):
        guarded("keyboard")


def test_worker_reports_bugs_with_traceback_and_refusals_as_one_warning_per_reason() -> None:
    logger = RecordingLogger()
    guard = MessageGuard(logger, period_s=60.0)
    for i in range(3):
        try:
            raise Refused("bad image", f"CompressedImage: cannot decode ({100 + i} bytes) <_io.BytesIO object at 0x7f{i:04x}>")
        except Exception as exc:
            guard.frame_skipped(T0 + i, exc)
    for i, text in enumerate(["Image: unsupported encoding 'yuv422'", "Image: unsupported encoding 'x\x1b[2J'",
                              "CameraInfo: K is all zeros"]):
        try:
            raise Refused("bad camera_info" if "K" in text else "bad image", text)
        except Exception as exc:
            guard.frame_skipped(T0 + 10 + i, exc)
    try:
        {}["missing"]
    except Exception as exc:
        guard.frame_skipped(T0 + 20, exc)
    warnings = logger.texts("warning")
    # Texts that differ only in numbers, addresses or quoted values (from the message): one
    # warning. Another problem, of the same reason or another: not hidden.
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith(f"frame {T0 * 1e-9:.6f} s skipped: CompressedImage: cannot decode (100 bytes)")
    assert warnings[1].endswith("skipped: Image: unsupported encoding 'yuv422'")
    assert warnings[2].endswith("skipped: CameraInfo: K is all zeros")
    # a message's own text cannot split the log line or reach the terminal as an escape
    guard.warn("other", "Image: unsupported encoding 'a\nb\x1b[2J'")
    assert logger.texts("warning")[-1] == "Image: unsupported encoding 'a b\\x1b[2J'"
    errors = logger.texts("error")
    assert len(errors) == 1 and "KeyError: 'missing'" in errors[0] and "Traceback (most recent call last)" in errors[0]


def test_undecodable_compressed_images_give_one_reason_and_no_object_address() -> None:
    """Junk CompressedImages of different sizes: the same reason (the throttle key), and no
    ``<_io.BytesIO object at 0x...>`` in the text."""
    from depth_ros.inference.spec import ModelSpec
    from depth_ros.ros.depth_node import DepthPipeline
    from depth_ros.ros.params import DepthNodeConfig

    backend = SimpleNamespace(spec=ModelSpec(output_kind="depth_metric", input_height=8, input_width=8, name="d", metric=True),
                              name="double")
    pipeline = DepthPipeline(backend, DepthNodeConfig(image_transport="compressed"))
    info = SimpleNamespace(width=8, height=6, k=[6.0, 0, 3.5, 0, 6.0, 2.5, 0, 0, 1], d=[], distortion_model="plumb_bob",
                           binning_x=0, binning_y=0, roi=None)
    reasons, texts = set(), []
    for junk in (b"\x00" * 10, b"not an image at all, longer", bytes(range(256))):
        with pytest.raises(Refused) as caught:
            pipeline.decode(SimpleNamespace(format="jpeg", data=junk), info)
        reasons.add(caught.value.reason)
        texts.append(str(caught.value))
    assert reasons == {"bad image"}
    assert all("BytesIO" not in t and " at 0x" not in t and "not a JPEG or PNG stream" in t for t in texts), texts
    with pytest.raises(Refused) as caught:
        pipeline.decode(SimpleNamespace(format="png", data=_png(8, 6)), dict_info(info, k=[0.0] * 9))
    assert caught.value.reason == "bad camera_info"
    with pytest.raises(Refused) as caught:
        pipeline.decode(SimpleNamespace(format="png", data=_png(9, 6)), info)
    assert caught.value.reason == "size mismatch"


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def dict_info(info: SimpleNamespace, **fields: Any) -> SimpleNamespace:
    return SimpleNamespace(**{**vars(info), **fields})


# -- duplicates -------------------------------------------------------------------------------
def test_duplicate_image_stamp_is_skipped_counted_and_warned_once() -> None:
    intake, guard, logger = depth_intake()
    assert intake.on_info(msg_ns(T0)) is None
    assert intake.on_image(msg_ns(T0, name="first"), 0) is not None
    for _ in range(3):  # the same frame again (a driver or relay publishing twice)
        assert intake.on_image(msg_ns(T0, name="again"), 0) is None
    assert intake.frames_duplicate == 3 and intake.frames_out_of_order == 0
    duplicate_warnings = [t for t in logger.texts("warning") if "duplicate" in t]
    assert len(duplicate_warnings) == 1 and duplicate_warnings[0].startswith(IMAGE_TOPIC)
    # a camera_info with that stamp arriving again does not complete a second pair either
    assert intake.on_info(msg_ns(T0)) is None
    # the next frame goes through; an older one is still "out of order", not a duplicate
    intake.on_info(msg_ns(T0 + S // 10))
    assert intake.on_image(msg_ns(T0 + S // 10), 0) is not None
    assert intake.on_image(msg_ns(T0 + S // 20), 0) is None
    assert (intake.frames_duplicate, intake.frames_out_of_order) == (3, 1)


def test_pose_intake_skips_duplicates_but_passes_a_step_back_to_the_tracker() -> None:
    logger = RecordingLogger()
    intake = FrameIntake(MessageGuard(logger, 60.0), StampPairer(0), None, IMAGE_TOPIC, INFO_TOPIC)
    for stamp in (T0, T0 - S):
        intake.on_info(msg_ns(stamp))
    assert intake.on_image(msg_ns(T0), 0) is not None
    assert intake.on_image(msg_ns(T0), 0) is None  # duplicate: would reset the odometry
    assert intake.on_image(msg_ns(T0 - S), 0) is not None  # back in time: the tracker resets
    assert intake.frames_duplicate == 1


# -- camera_info intrinsics -------------------------------------------------------------------
def camera_info(width: int = 640, height: int = 480, fx: float = 500.0, fy: float = 500.0, cx: float = 319.5,
                cy: float = 239.5, roi: Any = None) -> SimpleNamespace:
    return SimpleNamespace(width=width, height=height, k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0], d=[0.0] * 5,
                           distortion_model="plumb_bob", binning_x=0, binning_y=0, roi=roi)


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"fx": 1e-30, "fy": 1e-30}, ["fx = 1e-30 px", "implausible for a 640 px width", "179 degrees"]),
        ({"fy": 1.0}, ["fy = 1 px", "480 px height", "need fy >= 2.09"]),
        ({"fx": 1e30, "fy": 1e30}, ["fx = 1e+30 px", "more than 3.66", "0.01 degrees"]),
        ({"cx": 1e12}, ["fx = 500 px with cx = 1e+12 px", "89.5 degrees off the optical axis"]),
        ({"cy": -1e6}, ["fy = 500 px with cy = -1e+06 px"]),
    ],
)
def test_camera_info_with_unphysical_intrinsics_is_refused(fields: dict[str, float], fragments: list[str]) -> None:
    with pytest.raises(InputError) as info:
        msgconv.camera_info_to_model(camera_info(**fields))
    text = str(info.value)
    assert text.startswith("CameraInfo: ")
    for fragment in fragments:
        assert fragment in text, text


def _f_for_fov(extent: int, fov_deg: float) -> float:
    return extent / (2 * math.tan(math.radians(fov_deg / 2)))


@pytest.mark.parametrize(
    "fields",
    [
        {"fx": _f_for_fov(640, 178.9), "fy": _f_for_fov(480, 178.9)},  # just inside 179 degrees
        {"fx": 640 / math.pi, "fy": 640 / math.pi},  # a 180-degree equidistant fisheye's K
        {"fx": _f_for_fov(640, 0.011), "fy": _f_for_fov(480, 0.011)},  # a telescope
        {"cx": -300.0, "cy": 900.0},  # principal point off the image (lens shift, a crop)
    ],
)
def test_camera_info_with_extreme_but_physical_intrinsics_is_accepted(fields: dict[str, float]) -> None:
    cam = msgconv.camera_info_to_model(camera_info(**fields))
    assert cam.fx == fields.get("fx", 500.0) and cam.cy == fields.get("cy", 239.5)


def test_roi_is_checked_on_the_full_sensor() -> None:
    """A small ROI far from the principal point is a crop of a physical camera: accepted."""
    roi = SimpleNamespace(x_offset=600, y_offset=440, width=40, height=40, do_rectify=False)
    cam = msgconv.camera_info_to_model(camera_info(roi=roi))
    assert cam.size == (40, 40) and (cam.cx, cam.cy) == (319.5 - 600, 239.5 - 440)


def test_bounds_are_the_stated_angles() -> None:
    """At the accepted extreme, a point 1 m deep lies at most tan(89.5 deg) = 114.6 m to the
    side (fx = 1e-30 put cloud points 1e30 m away); just past it, refused."""
    width, height = 64, 48
    f_min_x = (width / 2) / math.tan(math.radians(MAX_RAY_ANGLE_DEG))
    f_min_y = (height / 2) / math.tan(math.radians(MAX_RAY_ANGLE_DEG))
    info = camera_info(width, height, fx=f_min_x * (1 + 1e-9), fy=f_min_y * (1 + 1e-9), cx=width / 2 - 0.5, cy=height / 2 - 0.5)
    cam = msgconv.camera_info_to_model(info)
    xyz = make_cloud(np.ones((height, width), np.float32), cam)
    coords = np.stack([xyz["x"], xyz["y"], xyz["z"]], axis=-1)
    assert np.isfinite(coords).all()
    assert np.abs(coords).max() < math.tan(math.radians(MAX_RAY_ANGLE_DEG)) + 1e-3
    assert np.abs(coords[..., 0]).max() > 100.0  # the bound really is this wide
    with pytest.raises(InputError, match="fx"):
        msgconv.camera_info_to_model(camera_info(width, height, fx=f_min_x * 0.999, fy=f_min_y, cx=width / 2 - 0.5,
                                                 cy=height / 2 - 0.5))
    f_max = width / (2 * math.tan(math.radians(MIN_FOV_DEG / 2)))
    msgconv.camera_info_to_model(camera_info(width, height, fx=f_max * 0.999, fy=500.0, cx=31.5, cy=23.5))
    with pytest.raises(InputError, match="0.01 degrees"):
        msgconv.camera_info_to_model(camera_info(width, height, fx=f_max * 1.001, fy=500.0, cx=31.5, cy=23.5))


def test_the_bound_does_not_depend_on_the_resolution() -> None:
    """Field of view is what is bounded: a camera accepted (refused) at full resolution is
    accepted (refused) at the network's, so checking the camera_info once is enough."""
    ok = CameraModel.from_intrinsics(640, 480, 3.0, 3.0, 319.5, 239.5)  # 178.9 degrees wide
    bad = CameraModel.from_intrinsics(640, 480, 2.7, 2.7, 319.5, 239.5)  # 179.03 degrees
    for width, height in ((640, 480), (256, 192), (1280, 960), (33, 17)):
        ok.resized(width, height).check_physical()
        with pytest.raises(ValueError, match="fx = "):
            bad.resized(width, height).check_physical()


# -- the real nodes' callbacks ------------------------------------------------------------------
@pytest.mark.ros
def test_no_message_raises_out_of_any_subscription_callback_of_either_node(tmp_path: Any) -> None:
    """Every subscription of the depth and pose nodes, fed hostile messages in-process:
    nothing raises, each drop is counted, and a good pair afterwards is still published."""
    import os
    import random
    import time

    import rclpy
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from depth_ros.inference.spec import ModelSpec
    from depth_ros.ros.depth_node import create_depth_node
    from depth_ros.ros.pose_node import create_pose_node

    os.environ.setdefault("ROS_LOG_DIR", str(tmp_path))
    w, h = 16, 12

    class DepthDouble:
        name = "double"
        spec = ModelSpec(output_kind="depth_metric", input_height=h, input_width=w, name="d", metric=True)

        def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
            return {"depth": np.full((1, 1, h, w), 2.0, np.float32)}

    class PoseDouble:
        name = "double"
        spec = ModelSpec(output_kind="pose_6dof", input_height=h, input_width=w, input_channels=6, name="p",
                         metric=True, output_name="pose")

        shape: tuple[int, ...] = (1, 6)

        def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
            return {"pose": np.zeros(self.shape, np.float32)}

    def image(stamp_ns: int, nanosec: int | None = None) -> Image:
        msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=bytes(h * w * 3))
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_ns // S, stamp_ns % S if nanosec is None else nanosec
        return msg

    def info(stamp_ns: int, nanosec: int | None = None, k: list[float] | None = None) -> CameraInfo:
        msg = CameraInfo(width=w, height=h, k=k or [12.0, 0, 7.5, 0, 12.0, 5.5, 0, 0, 1])
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_ns // S, stamp_ns % S if nanosec is None else nanosec
        return msg

    class Hostile:
        """Not a message at all: every attribute access raises (a bug-shaped input)."""

        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"no {name} here")

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=random.SystemRandom().randint(0, 101))
    nodes = []
    try:
        depth = create_depth_node(context=ctx, namespace="/rb", backend_factory=lambda c: DepthDouble(),
                                  parameter_overrides=[Parameter("model_path", value="d.onnx")])
        pose = create_pose_node(context=ctx, namespace="/rb", backend_factory=lambda c: PoseDouble(),
                                parameter_overrides=[Parameter("model_path", value="p.onnx")])
        nodes = [depth, pose]
        for node in nodes:
            node.configure()
            subs = {s.topic_name: s for s in node.subscriptions if s.topic_name.startswith("/rb/")}
            expected = {"/rb/image", "/rb/camera_info"} | ({"/rb/sparse_points"} if node is depth else set())
            assert set(subs) == expected
            bad_stamp = {"/rb/image": image(T0, nanosec=1_500_000_000), "/rb/camera_info": info(T0, nanosec=1_500_000_000),
                         "/rb/sparse_points": PointCloud2()}
            bad_stamp["/rb/sparse_points"].header.stamp.nanosec = 4_000_000_000
            for topic, sub in subs.items():
                sub.callback(bad_stamp[topic])  # raised InputError out of the executor before
                sub.callback(Hostile())  # a bug-shaped input: logged with traceback, not raised
            dropped = node.messages_dropped
            assert dropped["bad stamp"] == len(subs), dropped
            assert dropped["unexpected error"] == len(subs), dropped
            # a duplicate and a good pair afterwards
            subs["/rb/camera_info"].callback(info(T0 + S))
            subs["/rb/image"].callback(image(T0 + S))
            subs["/rb/image"].callback(image(T0 + S))
            assert node.frames_duplicate == 1
            deadline = time.monotonic() + 20.0
            while node.frames_published < 1:
                assert time.monotonic() < deadline, "the good frame after the bad ones was not published"
                time.sleep(0.01)
            # absurd intrinsics: refused by the worker as bad camera_info, nothing published
            subs["/rb/camera_info"].callback(info(T0 + 2 * S, k=[1e-30, 0, 7.5, 0, 1e-30, 5.5, 0, 0, 1]))
            subs["/rb/image"].callback(image(T0 + 2 * S))
            while node.frames_skipped < 1:
                assert time.monotonic() < deadline, "the frame with absurd intrinsics was not refused"
                time.sleep(0.01)
            assert node.frames_published == 1
            if node is pose:
                # a model whose output changes shape mid-run: 6 numbers as (2, 3) are not a pose
                PoseDouble.shape = (2, 3)
                deadline = time.monotonic() + 20.0
                for t in (T0 + 3 * S, T0 + 3 * S + S // 10):  # a restart after the gap, then a step
                    subs["/rb/camera_info"].callback(info(t))
                    subs["/rb/image"].callback(image(t))
                    time.sleep(0.3)  # one frame at a time through the one-slot queue
                while node.frames_skipped < 2:
                    assert time.monotonic() < deadline, "the (2, 3) pose output was not refused"
                    time.sleep(0.01)
                assert node.frames_published == 2  # the restart's identity pose only
    finally:
        for node in nodes:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)


# -- camera_info pairing without false alarms (the pose node warned every 2 s) -----------------
def test_an_image_whose_camera_info_comes_after_the_next_image_is_paired_without_warning() -> None:
    intake, guard, logger = depth_intake()
    stamps = [T0 + k * S // 30 for k in range(30)]
    got = []
    assert intake.on_image(msg_ns(stamps[0], name="img0"), received_ns=0) is None
    for k in range(30):  # image k+1 taken before camera_info k, every frame
        if k + 1 < 30:
            assert intake.on_image(msg_ns(stamps[k + 1], name=f"img{k + 1}"), received_ns=k + 1) is None
        pair = intake.on_info(msg_ns(stamps[k], name=f"info{k}"))
        assert pair is not None and pair.info.name == f"info{k}"
        got.append(pair.image.name)
    assert got == [f"img{k}" for k in range(30)]
    assert logger.lines == [] and intake.pairer.unpaired_images == 0


def test_a_restart_does_not_warn_about_a_camera_info_in_flight() -> None:
    intake, guard, logger = depth_intake()
    for loop in range(3):  # a bag played in a loop: the stamps jump back each time
        for k in range(10):
            t = T0 + k * S // 3  # 3 s long: the jump back is a restart, not a frame out of order
            assert intake.on_image(msg_ns(t, name=f"{loop}:{k}"), received_ns=0) is None  # info not yet here
            assert intake.on_info(msg_ns(t)) is not None
    warnings = logger.texts("warning")
    assert all("camera_info" not in w for w in warnings), warnings
    assert sum("restart" in w for w in warnings) == 1  # the jump back itself, throttled


def test_images_that_never_get_a_camera_info_are_warned_about() -> None:
    intake, guard, logger = depth_intake()
    for k in range(6):
        intake.on_image(msg_ns(T0 + k * S // 30), received_ns=0)
    warnings = logger.texts("warning")
    assert len(warnings) == 1 and f"no camera_info received on {INFO_TOPIC} yet" in warnings[0]
    assert intake.pairer.unpaired_images == 2


def test_images_run_alone_only_after_the_camera_info_timeout_and_pair_again_once_one_arrives() -> None:
    """``info_timeout_ns`` (a node whose model predicts its field of view): no camera_info ever ->
    images wait until the timeout after the first image, then pass on alone (info None); the first
    camera_info ends that, and images pair again."""
    intake, _, logger = depth_intake()
    intake.info_timeout_ns = 2 * S
    t = T0
    assert intake.on_image(msg_ns(t), received_ns=0) is None  # waits for its camera_info
    assert intake.on_image(msg_ns(t + S // 10), received_ns=S) is None
    alone = intake.on_image(msg_ns(t + 2 * S // 10), received_ns=2 * S)
    assert alone is not None and alone.info is None and alone.stamp_ns == t + 2 * S // 10
    assert intake.frames_without_info == 1
    assert any("no camera_info on /cam/camera_info 2 s after the first image" in line for line in logger.texts("warning"))
    info = msg_ns(t + 3 * S // 10)
    assert intake.on_info(info) is None  # stored; its image comes next
    pair = intake.on_image(msg_ns(t + 3 * S // 10), received_ns=3 * S)
    assert pair is not None and pair.info is info
    assert intake.on_image(msg_ns(t + 4 * S // 10), received_ns=4 * S) is None  # waits again: camera_info exists
    assert intake.frames_without_info == 1


def test_without_an_info_timeout_images_always_wait_for_camera_info() -> None:
    intake, _, _ = depth_intake()
    for i in range(20):
        assert intake.on_image(msg_ns(T0 + i * S), received_ns=i * S) is None
    assert intake.frames_without_info == 0
