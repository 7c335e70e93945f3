"""Bag-to-bag inference: exact geometry on synthetic scenes, round trips, bad input, atomicity."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_bag_support import (
    FRAME_ID,
    T0_NS,
    camera_info_msg,
    cloud_msg,
    compressed_msg,
    image_msg,
    write_bag,
)

from depth_ros.bag.infer import InferConfig, infer_bag, output_topics, parse_scale
from depth_ros.core.camera import CameraModel
from depth_ros.core.postprocess import DepthPostprocessor, PostprocessConfig
from depth_ros.core.preprocess import preprocess
from depth_ros.core.scale import ScaleConfig
from depth_ros.errors import BackendError, BagError, ModelError
from depth_ros.inference.spec import ModelSpec
from depth_ros.synthetic import Renderer, SynthConfig, render_sequence, write_bag as synth_bag

SYNTH = SynthConfig(width=64, height=48, frames=4, texture_size_px=64, jpeg=True, lidar_beams=16, lidar_azimuth_samples=180)


class GroundTruthBackend:
    """Returns each synthetic frame's exact depth as a ``depth_metric`` output.

    The frame is recognised by its preprocessed input, which is deterministic; the network
    size equals the camera size, so postprocessing does not resample.
    """

    name = "ground-truth"

    def __init__(self, frames: list[Any], output_kind: str = "depth_metric", factor: float = 1.0) -> None:
        cam = frames[0].camera
        self.spec = ModelSpec(output_kind=output_kind, input_height=cam.height, input_width=cam.width, name="gt")
        self.factor = factor
        self._depth = {preprocess(f.rgb, f.camera, self.spec).tensor.tobytes(): f.depth_m for f in frames}
        self.hits = 0

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        depth = self._depth.get(np.ascontiguousarray(x).tobytes())
        if depth is None:  # the zero-input contract check before the first frame
            return {"depth": np.ones((1, 1, self.spec.input_height, self.spec.input_width), np.float32)}
        self.hits += 1
        w = depth if self.spec.output_kind == "depth_metric" else self.factor / depth  # inverse depth for relative
        return {"depth": w[None, None].astype(np.float32)}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Any]]:
    d = tmp_path_factory.mktemp("synth")
    mcap = synth_bag(SYNTH, d / "s.mcap")
    db3 = synth_bag(SYNTH, d / "s.db3")
    return mcap, db3, list(render_sequence(SYNTH))


def _read(path: Path) -> dict[str, list[tuple[int, Any]]]:
    """topic -> [(log_time_ns, message)], decoded by rosbags from the bag's own definitions."""
    from rosbags.highlevel import AnyReader

    out: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([path]) as reader:
        for conn, t, data in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(data, conn.msgtype)))
    return out


def _stamp(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _cloud_xyz(msg: Any) -> np.ndarray:
    """(h, w, 3) float32 from an organized PointCloud2 with x, y, z at 0, 4, 8."""
    raw = np.asarray(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, msg.point_step)
    return raw[..., :12].copy().view("<f4").reshape(msg.height, msg.width, 3)


# -- geometry ------------------------------------------------------------------------------
@pytest.mark.parametrize("decimation", [1, 3])
def test_ground_truth_model_puts_every_cloud_point_on_the_scene(synthetic, tmp_path: Path, decimation: int) -> None:  # type: ignore[no-untyped-def]
    mcap, _, frames = synthetic
    backend = GroundTruthBackend(frames)
    out = tmp_path / "o.mcap"
    summary = infer_bag(mcap, out, backend, InferConfig(decimation=decimation))
    assert (summary.frames_in, summary.frames_out, summary.skipped) == (4, 4, {})
    assert backend.hits == 4  # every frame was recognised, so it got its own ground truth
    bag = _read(out)
    renderer = Renderer(SYNTH)
    by_stamp = {f.stamp_ns: f for f in frames}
    checked = 0
    for _, cloud in bag["/camera/depth/points"]:
        frame = by_stamp[_stamp(cloud)]
        xyz = _cloud_xyz(cloud).reshape(-1, 3).astype(np.float64)
        assert np.isfinite(xyz).all()  # a closed room: every pixel sees a surface
        assert cloud.height == -(-48 // decimation) and cloud.width == -(-64 // decimation)
        # Cast a ray from the camera through each point: the first surface hit must be the point.
        R, t = frame.T_world_cam[:3, :3], frame.T_world_cam[:3, 3]
        hit_t, _ = renderer.cast_rays(t, xyz @ R.T, SYNTH.time_s(frame.index))
        error_m = np.abs(hit_t.astype(np.float64) - 1.0) * np.linalg.norm(xyz, axis=1)
        assert error_m.max() < 1e-4, f"max distance to the scene {error_m.max():.2e} m"
        checked += len(xyz)
    assert checked == 4 * (-(-48 // decimation)) * (-(-64 // decimation))


@pytest.mark.parametrize("bag_index", [0, 1], ids=["mcap", "db3"])
def test_round_trip_depth_headers_and_cloud_layout(synthetic, tmp_path: Path, bag_index: int) -> None:  # type: ignore[no-untyped-def]
    in_bag = synthetic[bag_index]
    frames = synthetic[2]
    backend = GroundTruthBackend(frames)
    out = tmp_path / "o.mcap"
    summary = infer_bag(in_bag, out, backend, InferConfig(rgb_cloud=True, depth_16uc1=True))
    bag = _read(out)
    src = _read(in_bag)
    expected_topics = {
        "/camera/image_raw", "/camera/camera_info", "/tf_static", "/camera/depth/image", "/camera/depth/image_raw",
        "/camera/depth/camera_info", "/camera/depth/points", "/camera/depth/info",
    }
    assert set(bag) == expected_topics == set(summary.output_topics)
    post = DepthPostprocessor(backend.spec, PostprocessConfig(scale=ScaleConfig(policy="model")))
    by_stamp = {f.stamp_ns: f for f in frames}
    for (t_img, image), (t_depth, depth), (_, info), (_, mm) in zip(
        src["/camera/image_raw"], bag["/camera/depth/image"], bag["/camera/depth/info"], bag["/camera/depth/image_raw"]
    ):
        frame = by_stamp[_stamp(image)]
        assert t_depth == t_img and _stamp(depth) == _stamp(image) == frame.stamp_ns
        assert depth.header.frame_id == info.header.frame_id == FRAME_ID
        assert (depth.encoding, depth.height, depth.width, depth.step) == ("32FC1", 48, 64, 256)
        depth_m = np.asarray(depth.data).view("<f4").reshape(48, 64)
        expected = post(backend.infer(preprocess(frame.rgb, frame.camera, backend.spec).tensor), frame.camera).depth_m
        np.testing.assert_array_equal(depth_m, expected)  # exactly what the core computes
        np.testing.assert_allclose(depth_m, frame.depth_m, rtol=1e-6)
        assert mm.encoding == "16UC1"
        np.testing.assert_array_equal(np.asarray(mm.data).view("<u2").reshape(48, 64), np.rint(expected * 1000))
        assert (info.model, info.output_kind, info.backend, info.scale_source) == ("gt", "depth_metric", "ground-truth", "model")
        assert info.valid_fraction == 1.0 and info.scale == 1.0
    for (_, cam_in), (_, cam_out) in zip(src["/camera/camera_info"], bag["/camera/depth/camera_info"]):
        assert _stamp(cam_out) == _stamp(cam_in) and cam_out.header.frame_id == FRAME_ID
        np.testing.assert_array_equal(cam_out.k, cam_in.k)
    cloud = bag["/camera/depth/points"][0][1]
    layout = [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields]
    assert layout == [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 16, 7, 1)]
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step, cloud.is_dense) == (48, 64, 32, 32 * 64, False)
    rgb_bits = np.asarray(cloud.data).reshape(48, 64, 32)[..., 16:20].copy().view("<u4")[..., 0]
    frame0 = by_stamp[_stamp(cloud)]
    packed = (frame0.rgb[..., 0].astype(np.uint32) << 16) | (frame0.rgb[..., 1].astype(np.uint32) << 8) | frame0.rgb[..., 2]
    np.testing.assert_array_equal(rgb_bits, packed)
    # inputs copied byte for byte
    assert [np.asarray(m.data).tobytes() for _, m in bag["/camera/image_raw"]] == [
        np.asarray(m.data).tobytes() for _, m in src["/camera/image_raw"]
    ]
    assert len(bag["/tf_static"]) == 1


def test_compressed_png_input_and_rgb_cloud(tmp_path: Path) -> None:
    camera = CameraModel.from_intrinsics(8, 6, 6.0, 6.0, 3.5, 2.5)
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    records = []
    for i in range(2):
        stamp = T0_NS + i
        records.append(("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", compressed_msg(stamp, rgb), stamp))
        records.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo", camera_info_msg(stamp, camera), stamp))
    bag = write_bag(tmp_path / "in.mcap", records)
    backend = ConstantBackend(camera, depth_m=2.0)
    summary = infer_bag(bag, tmp_path / "o.mcap", backend, InferConfig(rgb_cloud=True))
    assert summary.frames_out == 2 and summary.image_topic == "/cam/image_raw/compressed"
    out = _read(tmp_path / "o.mcap")
    cloud = out["/cam/depth/points"][0][1]
    xyz = _cloud_xyz(cloud)
    np.testing.assert_allclose(xyz[..., 2], 2.0, rtol=1e-6)
    # hand-computed: pixel (u=7, v=0): x = (7 - 3.5) / 6 * 2, y = (0 - 2.5) / 6 * 2
    np.testing.assert_allclose(xyz[0, 7], [7 / 6, -5 / 6, 2.0], rtol=1e-6)
    bits = np.asarray(cloud.data).reshape(6, 8, 32)[..., 16:20].copy().view("<u4")[..., 0]
    assert bits[3, 4] == (int(rgb[3, 4, 0]) << 16) | (int(rgb[3, 4, 1]) << 8) | int(rgb[3, 4, 2])


# -- bad input -----------------------------------------------------------------------------
class ConstantBackend:
    """depth_metric double at camera size: constant depth, NaN for images whose first pixel is 13."""

    name = "constant"

    def __init__(self, camera: CameraModel, depth_m: float = 3.0) -> None:
        self.spec = ModelSpec(output_kind="depth_metric", input_height=camera.height, input_width=camera.width, name="c")
        self.depth_m = depth_m
        self.calls = 0

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        out = np.full((1, 1, self.spec.input_height, self.spec.input_width), self.depth_m, np.float32)
        red = (x[0, 0, 0, 0] * self.spec.std[0] + self.spec.mean[0]) * 255.0
        if abs(red - 13.0) < 0.5:
            out[0, 0, 1, 1] = np.nan
        return {"depth": out}


def _bad_input_bag(path: Path) -> Path:
    camera = CameraModel.from_intrinsics(8, 6, 6.0, 6.0, 3.5, 2.5)
    big = CameraModel.from_intrinsics(16, 12, 12.0, 12.0, 7.5, 5.5)
    rgb = np.full((6, 8, 3), 100, np.uint8)
    nan_rgb = np.full((6, 8, 3), 13, np.uint8)
    padded = image_msg(0, rgb, row_padding=4)
    plan = [
        ("good", image_msg(0, rgb), camera_info_msg(0, camera)),
        ("unsupported_encoding", image_msg(0, rgb, encoding="yuv422"), camera_info_msg(0, camera)),
        ("unsupported_encoding", image_msg(0, rgb, encoding="bayer_rggb8"), camera_info_msg(0, camera)),
        # data carries 4 bytes of padding per row but step claims none: length mismatch
        ("bad_image", image_msg(0, rgb, step=24, data=np.asarray(padded.data)), camera_info_msg(0, camera)),
        ("good", padded, camera_info_msg(0, camera)),  # padding declared in step: fine
        ("size_mismatch", image_msg(0, rgb), camera_info_msg(0, big)),
        ("bad_camera_info", image_msg(0, rgb), camera_info_msg(0, camera, k=[0.0] * 9)),
        ("missing_camera_info", image_msg(0, rgb), None),
        ("non_finite_output", image_msg(0, nan_rgb), camera_info_msg(0, camera)),
        ("good", image_msg(0, rgb), camera_info_msg(0, camera)),
    ]
    records = []
    for i, (_, image, info) in enumerate(plan):
        stamp = T0_NS + i * 1_000_000
        image.header.stamp.sec, image.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        records.append(("/cam/image_raw", "sensor_msgs/msg/Image", image, stamp))
        if info is not None:
            info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            records.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo", info, stamp))
    return write_bag(path, records)


@pytest.mark.parametrize("overlap", [True, False], ids=["overlap", "sequential"])
def test_each_bad_frame_is_skipped_with_its_reason_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, overlap: bool
) -> None:
    bag = _bad_input_bag(tmp_path / "bad.mcap")
    backend = ConstantBackend(CameraModel.from_intrinsics(8, 6, 6.0, 6.0, 3.5, 2.5))
    with caplog.at_level(logging.WARNING, logger="depth_ros.bag.infer"):
        # the frames are 1 ms apart: pair exactly (the default 1 ms would pair a neighbour's camera_info)
        summary = infer_bag(bag, tmp_path / "o.mcap", backend, InferConfig(overlap=overlap, stamp_tolerance_ns=0))
    assert summary.frames_in == 10 and summary.frames_out == 3
    assert summary.skipped == {
        "unsupported_encoding": 2, "bad_image": 1, "size_mismatch": 1, "bad_camera_info": 1,
        "missing_camera_info": 1, "non_finite_output": 1,
    }
    first_reports = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping frame")]
    assert len(first_reports) == 6  # once per reason, not per frame
    assert any("yuv422" in m for m in first_reports) and not any("bayer" in m for m in first_reports)
    totals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped 2 frame(s): unsupported_encoding")]
    assert len(totals) == 1
    depth = _read(tmp_path / "o.mcap")["/cam/depth/image"]
    assert [_stamp(m) - T0_NS for _, m in depth] == [0, 4_000_000, 9_000_000]
    assert "non_finite_output" in summary.format() and "model output has NaN or Inf" in summary.format()


def test_truncated_bag_is_a_bag_error_and_leaves_nothing(synthetic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = synthetic[0].read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match=r"cut\.mcap: cannot open bag .*truncated"):
        infer_bag(cut, tmp_path / "o.mcap", GroundTruthBackend(synthetic[2]), InferConfig())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mcap"]


class PoseBackend:
    name = "pose"
    spec = ModelSpec(output_kind="pose_6dof", input_height=8, input_width=8, input_channels=6, name="posenet")

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raise AssertionError("a pose model must be refused before it runs")


class WrongRankBackend:
    """A runtime that rejects the spec'd input (its real input has another rank)."""

    name = "wrong-rank"
    spec = ModelSpec(output_kind="depth_metric", input_height=8, input_width=8, name="rank3")

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raise RuntimeError(f"[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Invalid rank for input: image Got: {x.ndim} Expected: 3")


@pytest.mark.parametrize(
    ("backend", "match"),
    [(PoseBackend(), "posenet' is a pose_6dof network"), (WrongRankBackend(), "does not run on its spec'd input.*Invalid rank")],
)
def test_unfit_model_is_refused_before_any_bag_access(tmp_path: Path, backend: Any, match: str) -> None:
    # the input bag does not even exist: the model error must come first
    with pytest.raises(ModelError, match=match):
        infer_bag(tmp_path / "missing.mcap", tmp_path / "o.mcap", backend, InferConfig())


def test_scale_policy_that_does_not_fit_the_model_is_a_model_error(synthetic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend = GroundTruthBackend(synthetic[2])  # depth_metric
    with pytest.raises(ModelError, match="canonical_focal"):
        infer_bag(synthetic[0], tmp_path / "o.mcap", backend, InferConfig(scale=parse_scale("canonical_focal")))
    assert list(tmp_path.iterdir()) == []


# -- atomic output -------------------------------------------------------------------------
class FailingBackend(GroundTruthBackend):
    def __init__(self, frames: list[Any], error: BaseException, after: int) -> None:
        super().__init__(frames)
        self.error, self.after = error, after

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = super().infer(x)
        if self.hits > self.after:
            raise self.error
        return out


def _stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("depth_ros-infer")]


@pytest.mark.parametrize("overlap", [True, False], ids=["overlap", "sequential"])
@pytest.mark.parametrize(
    ("error", "raised"), [(RuntimeError("backend crashed"), BackendError), (KeyboardInterrupt(), KeyboardInterrupt)]
)
def test_failure_mid_way_leaves_no_output_and_no_temp(  # type: ignore[no-untyped-def]
    synthetic, tmp_path: Path, error: BaseException, raised: type, overlap: bool
) -> None:
    backend = FailingBackend(synthetic[2], error, after=2)
    with pytest.raises(raised) as info:
        infer_bag(synthetic[0], tmp_path / "o.mcap", backend, InferConfig(overlap=overlap))
    if raised is BackendError:
        assert "ground-truth failed on the frame at stamp" in str(info.value) and "backend crashed" in str(info.value)
    assert backend.hits == 3 and list(tmp_path.iterdir()) == []
    assert _stage_threads() == []


def test_write_failure_in_the_writer_thread_stops_everything(  # type: ignore[no-untyped-def]
    synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depth_ros.bag.writer import BagWriter

    original = BagWriter.write
    calls = []

    def failing_write(self, topic, msg, stamp_ns):  # type: ignore[no-untyped-def]
        calls.append(threading.current_thread().name)
        if len(calls) > 6:
            raise BagError(f"{self.path}: write failed on {topic} ([Errno 28] No space left on device)")
        return original(self, topic, msg, stamp_ns)

    monkeypatch.setattr(BagWriter, "write", failing_write)
    with pytest.raises(BagError, match="No space left"):
        infer_bag(synthetic[0], tmp_path / "o.mcap", GroundTruthBackend(synthetic[2]), InferConfig(overlap=True))
    assert set(calls) == {"depth_ros-infer-write"}  # outputs are written by the writer stage
    assert list(tmp_path.iterdir()) == [] and _stage_threads() == []


@pytest.mark.parametrize("suffix", [".mcap", ".db3"])
def test_overlapped_and_sequential_runs_write_the_same_bag(synthetic, tmp_path: Path, suffix: str) -> None:  # type: ignore[no-untyped-def]
    runs = {}
    for overlap in (True, False):
        out = tmp_path / f"o_{overlap}{suffix}"
        infer_bag(synthetic[0], out, GroundTruthBackend(synthetic[2]), InferConfig(overlap=overlap, rgb_cloud=True))
        with_times = []
        from rosbags.highlevel import AnyReader

        with AnyReader([out]) as reader:
            for conn, t, data in reader.messages():
                msg = reader.deserialize(data, conn.msgtype)
                if conn.topic.endswith("/info"):  # timings differ run to run
                    msg = (msg.header, msg.scale, msg.scale_source, msg.valid_fraction)
                    with_times.append((conn.topic, t, repr(msg)))
                else:
                    with_times.append((conn.topic, t, bytes(data)))
        runs[overlap] = with_times
    assert len(runs[True]) == 4 * 4 + 4 * 2 + 1 and sorted(runs[True]) == sorted(runs[False])


def test_existing_output_is_refused_before_work_and_replaced_with_overwrite(synthetic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "o.mcap"
    out.write_bytes(b"keep me")
    backend = GroundTruthBackend(synthetic[2])
    with pytest.raises(BagError, match="exists"):
        infer_bag(synthetic[0], out, backend, InferConfig())
    assert out.read_bytes() == b"keep me" and backend.hits == 0
    summary = infer_bag(synthetic[0], out, backend, InferConfig(overwrite=True, max_frames=2, cloud=False))
    assert summary.frames_out == 2
    topics = _read(out)
    assert len(topics["/camera/depth/image"]) == 2 and "/camera/depth/points" not in topics
    assert len(topics["/camera/image_raw"]) == 2  # copies stop with the frames


# -- LiDAR scale ---------------------------------------------------------------------------
def test_lidar_alignment_recovers_metric_depth_of_a_relative_model(synthetic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend = GroundTruthBackend(synthetic[2], output_kind="inverse_depth_relative", factor=0.25)
    config = InferConfig(lidar_topic="/lidar/points", scale=parse_scale("lidar"), cloud=False)
    summary = infer_bag(synthetic[0], tmp_path / "o.mcap", backend, config)
    assert summary.frames_out == 4 and summary.lidar_topic == "/lidar/points"
    out = _read(tmp_path / "o.mcap")
    by_stamp = {f.stamp_ns: f for f in synthetic[2]}
    for (_, depth), (_, info) in zip(out["/camera/depth/image"], out["/camera/depth/info"]):
        assert info.scale_source.startswith("sparse_alignment") and info.scale_support > 20
        depth_m = np.asarray(depth.data).view("<f4").reshape(48, 64)
        np.testing.assert_allclose(depth_m, by_stamp[_stamp(depth)].depth_m, rtol=1e-3)
    assert "/lidar/points" in out  # copied along


def test_lidar_without_a_transform_to_the_camera_is_a_clear_error(tmp_path: Path) -> None:
    camera = CameraModel.from_intrinsics(8, 6, 6.0, 6.0, 3.5, 2.5)
    rgb = np.full((6, 8, 3), 50, np.uint8)
    cloud = cloud_msg(T0_NS, np.array([[1.0, 0.0, 3.0]] * 30), "lidar_link")
    bag = write_bag(tmp_path / "in.mcap", [
        ("/cam/image_raw", "sensor_msgs/msg/Image", image_msg(T0_NS, rgb), T0_NS),
        ("/cam/camera_info", "sensor_msgs/msg/CameraInfo", camera_info_msg(T0_NS, camera), T0_NS),
        ("/lidar", "sensor_msgs/msg/PointCloud2", cloud, T0_NS),
    ])
    config = InferConfig(lidar_topic="/lidar", scale=parse_scale("lidar"))
    with pytest.raises(BagError, match="no static transform from 'lidar_link' to 'camera_optical_frame'"):
        infer_bag(bag, tmp_path / "o.mcap", ConstantBackend(camera), config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mcap"]


# -- config --------------------------------------------------------------------------------
def test_output_topic_names() -> None:
    assert output_topics("/front/image_raw/compressed", InferConfig(depth_16uc1=True)) == {
        "depth": "/front/depth/image", "camera_info": "/front/depth/camera_info", "info": "/front/depth/info",
        "points": "/front/depth/points", "depth_mm": "/front/depth/image_raw",
    }
    assert "points" not in output_topics("/image", InferConfig(cloud=False))


@pytest.mark.parametrize(
    ("text", "mode", "value"),
    [("none", "none", None), ("fixed:2.5", "fixed", 2.5), ("ground:1.2", "ground", 1.2), ("lidar_shift", "lidar_shift", None)],
)
def test_parse_scale(text: str, mode: str, value: float | None) -> None:
    choice = parse_scale(text)
    assert (choice.mode, choice.value) == (mode, value)


@pytest.mark.parametrize("text", ["fixed", "fixed:x", "fixed:-1", "ground:0", "lidar:3", "magic"])
def test_parse_scale_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_scale(text)


@pytest.mark.parametrize(
    "kwargs",
    [{"decimation": 0}, {"min_range_m": 5.0, "max_range_m": 1.0}, {"max_frames": 0}, {"scale": "lidar"},
     {"cloud": False, "rgb_cloud": True}, {"stamp_tolerance_ns": -1}, {"threads": 0}],
)
def test_config_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        InferConfig(**kwargs)


@pytest.mark.parametrize(
    ("text", "kind", "metric", "has_lidar", "expected"),
    [
        ("auto", "depth_metric", True, False, {"policy": "model"}),
        ("auto", "inverse_depth_relative", False, True, {"policy": "sparse_alignment", "sparse_mode": "auto"}),
        ("auto", "disparity_sigmoid", False, False, {"policy": "none"}),
        ("fixed:2", "disparity_sigmoid", False, False, {"policy": "fixed", "fixed_scale": 2.0}),
        ("lidar", "disparity_sigmoid", False, True, {"policy": "sparse_alignment", "sparse_mode": "scale"}),
        ("lidar_shift", "inverse_depth_relative", False, True, {"policy": "sparse_alignment", "sparse_mode": "scale_shift"}),
        ("ground:1.25", "disparity_sigmoid", False, False, {"policy": "ground_plane", "camera_height_m": 1.25}),
        ("canonical_focal", "canonical_inverse_depth", True, False, {"policy": "canonical_focal"}),
    ],
)
def test_scale_choice_maps_to_the_core_policy(text: str, kind: str, metric: bool, has_lidar: bool, expected: dict[str, Any]) -> None:
    from depth_ros.bag.infer import scale_config

    spec = ModelSpec(output_kind=kind, input_height=8, input_width=8, metric=metric)
    config = scale_config(parse_scale(text), spec, has_lidar)
    assert config == ScaleConfig(**expected)


def test_ground_policy_on_a_relative_inverse_depth_model_is_refused() -> None:
    from depth_ros.bag.infer import scale_config

    spec = ModelSpec(output_kind="inverse_depth_relative", input_height=8, input_width=8)
    with pytest.raises(ModelError, match="ground_plane"):
        scale_config(parse_scale("ground:1.0"), spec, False)


# -- copies of the inputs ------------------------------------------------------------------
TRANSIENT_LOCAL_QOS = """- history: keep_last
  depth: 1
  reliability: reliable
  durability: transient_local
  deadline: {sec: 0, nsec: 0}
  lifespan: {sec: 0, nsec: 0}
  liveliness: automatic
  liveliness_lease_duration: {sec: 0, nsec: 0}
  avoid_ros_namespace_conventions: false"""


def test_tf_static_copied_with_its_recorded_qos_and_copies_can_be_turned_off(tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import QosDurability
    from test_bag_support import tf_static_msg

    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter

    camera = CameraModel.from_intrinsics(8, 6, 6.0, 6.0, 3.5, 2.5)
    bag = tmp_path / "in.mcap"
    with BagWriter(bag, typestore=output_typestore()) as w:
        w.add_topic("/tf_static", "tf2_msgs/msg/TFMessage", offered_qos_profiles=TRANSIENT_LOCAL_QOS)
        w.add_topic("/cam/image_raw", "sensor_msgs/msg/Image")
        w.add_topic("/cam/camera_info", "sensor_msgs/msg/CameraInfo")
        w.write("/tf_static", tf_static_msg(T0_NS, [("base_link", FRAME_ID, np.zeros(3), np.array([0, 0, 0, 1.0]))]), T0_NS)
        w.write("/cam/image_raw", image_msg(T0_NS, np.zeros((6, 8, 3), np.uint8)), T0_NS)
        w.write("/cam/camera_info", camera_info_msg(T0_NS, camera), T0_NS)
    for out in (tmp_path / "o.mcap", tmp_path / "o.db3"):
        infer_bag(bag, out, ConstantBackend(camera), InferConfig())
        with AnyReader([out]) as reader:
            qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
        assert [q.durability for q in qos["/tf_static"]] == [QosDurability.TRANSIENT_LOCAL]
        assert qos["/cam/depth/image"] == []
    summary = infer_bag(bag, tmp_path / "bare.mcap", ConstantBackend(camera), InferConfig(copy_inputs=False))
    assert set(_read(tmp_path / "bare.mcap")) == set(summary.output_topics) == {
        "/cam/depth/image", "/cam/depth/camera_info", "/cam/depth/points", "/cam/depth/info",
    }


def test_input_with_a_foreign_image_definition_is_not_copied(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One schema per type name in MCAP: a recorded Image definition that differs from ours
    must not become the schema of the depth images."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter

    ours = output_typestore()
    foreign = get_typestore(Stores.EMPTY)
    foreign.register({k: v for k, v in ours.fielddefs.items() if k != "sensor_msgs/msg/Image"})
    text = ours.generate_msgdef("sensor_msgs/msg/Image", ros_version=2)[0].split("=" * 80)[0]
    foreign.register(get_types_from_msg(text + "uint8 vendor_flag\n", "sensor_msgs/msg/Image"))
    camera = CameraModel.from_intrinsics(8, 6, 6.0, 6.0, 3.5, 2.5)
    base = image_msg(T0_NS, np.full((6, 8, 3), 9, np.uint8))
    image = foreign.types["sensor_msgs/msg/Image"](**{f: getattr(base, f) for f in ("header", "height", "width", "encoding", "is_bigendian", "step", "data")}, vendor_flag=1)
    bag = tmp_path / "in.mcap"
    with BagWriter(bag, typestore=foreign) as w:
        w.add_topic("/cam/image_raw", "sensor_msgs/msg/Image")
        w.add_topic("/cam/camera_info", "sensor_msgs/msg/CameraInfo")
        w.write("/cam/image_raw", image, T0_NS)
        w.write("/cam/camera_info", camera_info_msg(T0_NS, camera), T0_NS)
    with caplog.at_level(logging.WARNING, logger="depth_ros.bag.infer"):
        summary = infer_bag(bag, tmp_path / "o.mcap", ConstantBackend(camera), InferConfig())
    assert summary.frames_out == 1
    assert any("not copying /cam/image_raw" in r.getMessage() for r in caplog.records)
    out = _read(tmp_path / "o.mcap")
    assert "/cam/image_raw" not in out and "/cam/camera_info" in out
    assert not hasattr(out["/cam/depth/image"][0][1], "vendor_flag")


def test_a_run_without_a_single_depth_frame_fails_and_writes_nothing(tmp_path: Path) -> None:
    camera = CameraModel.from_intrinsics(8, 6, 6.0, 6.0, 3.5, 2.5)
    rgb = np.zeros((6, 8, 3), np.uint8)
    records = []
    for i in range(3):
        records.append(("/cam/image_raw", "sensor_msgs/msg/Image", image_msg(T0_NS + i, rgb), T0_NS + i))
        records.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo", camera_info_msg(T0_NS + i, camera, k=[0.0] * 9), T0_NS + i))
    bag = write_bag(tmp_path / "in.mcap", records)
    with pytest.raises(BagError, match=r"no depth frame could be made from 3 image\(s\) on /cam/image_raw \(skipped: 3 bad_camera_info\)"):
        infer_bag(bag, tmp_path / "o.mcap", ConstantBackend(camera), InferConfig())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mcap"]


@pytest.mark.parametrize(
    ("backend", "threads", "expected"),
    [
        ("auto", None, {"allow_spinning": False}),
        ("onnxruntime-cpu", 2, {"allow_spinning": False, "threads": 2}),
        ("torch", 1, {"threads": 1}),
        ("tensorrt", None, {}),
    ],
)
def test_backend_options_passed_to_create_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, threads: int | None, expected: dict[str, Any]
) -> None:
    seen: dict[str, Any] = {}

    def fake_create_backend(path: Path, backend: str = "auto", **options: Any) -> Any:
        seen.update(backend=backend, **options)
        raise ModelError("stop here")

    monkeypatch.setattr("depth_ros.inference.backend.create_backend", fake_create_backend)
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    with pytest.raises(ModelError, match="stop here"):
        infer_bag(tmp_path / "in.mcap", tmp_path / "o.mcap", model, InferConfig(backend=backend, threads=threads))
    assert seen == {"backend": backend, **expected}


@pytest.mark.parametrize(("name", "threads_used"), [("onnxruntime-cpu", False), ("tensorrt-fp16", True), ("onnxruntime-cuda", True)])
def test_stages_overlap_by_default_only_for_gpu_backends(synthetic, tmp_path: Path, name: str, threads_used: bool) -> None:  # type: ignore[no-untyped-def]
    backend = GroundTruthBackend(synthetic[2])
    backend.name = name
    seen = set()
    inner = backend.infer

    def infer(x: np.ndarray) -> dict[str, np.ndarray]:
        seen.add(threading.current_thread().name)
        return inner(x)

    backend.infer = infer  # type: ignore[method-assign]
    summary = infer_bag(synthetic[0], tmp_path / "o.mcap", backend, InferConfig(max_frames=2))
    assert summary.overlapped is threads_used and summary.frames_out == 2
    assert seen == {threading.main_thread().name}  # the network always runs in the calling thread
