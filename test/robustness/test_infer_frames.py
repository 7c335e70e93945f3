"""``depth-ros infer`` on bags with hostile frames: each bad frame is skipped and counted by
reason, and the run goes on.

* an image whose header stamp has ``nanosec`` = 1.5e9 once aborted the whole run (BagError);
* a camera_info with such a stamp: dropped, counted per topic, its image lacks a partner;
* a duplicated image (the same stamp recorded twice) was written twice without a warning;
* a CameraInfo with fx = fy = 1e-30 was accepted and the cloud held coordinates above 1e6 m.

Bags are written here, small (8x6 images), with the output typestore.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pytest

from depth_ros.bag.infer import SKIP_REASONS, InferConfig, infer_bag
from depth_ros.bag.typestore import output_typestore
from depth_ros.bag.writer import BagWriter
from depth_ros.errors import BagError
from depth_ros.inference.spec import ModelSpec

S = 1_000_000_000
T0 = 1_700_000_000 * S
W, H = 8, 6
K_GOOD = [6.0, 0.0, 3.5, 0.0, 6.0, 2.5, 0.0, 0.0, 1.0]
IMAGE, INFO = "/cam/image_raw", "/cam/camera_info"


class ConstantBackend:
    """depth_metric double at the camera size: every pixel 3 m."""

    name = "constant"
    spec = ModelSpec(output_kind="depth_metric", input_height=H, input_width=W, name="c", metric=True)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"depth": np.full((1, 1, H, W), 3.0, np.float32)}


def _header(sec: int, nanosec: int) -> Any:
    t = output_typestore().types
    return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id="cam")


def image(sec: int, nanosec: int) -> Any:
    rgb = np.full((H, W, 3), 100, np.uint8)
    return output_typestore().types["sensor_msgs/msg/Image"](
        header=_header(sec, nanosec), height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3,
        data=rgb.reshape(-1),
    )


def info(sec: int, nanosec: int, k: Iterable[float] = K_GOOD) -> Any:
    t = output_typestore().types
    return t["sensor_msgs/msg/CameraInfo"](
        header=_header(sec, nanosec), height=H, width=W, distortion_model="plumb_bob", d=np.zeros(5),
        k=np.asarray(list(k), np.float64), r=np.eye(3).reshape(-1), p=np.zeros(12), binning_x=0, binning_y=0,
        roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def write_bag(path: Path, records: list[tuple[str, Any]]) -> Path:
    """(topic, message) records, logged 1 ms apart in the given order."""
    with BagWriter(path, typestore=output_typestore()) as bag:
        bag.add_topic(IMAGE, "sensor_msgs/msg/Image")
        bag.add_topic(INFO, "sensor_msgs/msg/CameraInfo")
        for i, (topic, msg) in enumerate(records):
            bag.write(topic, msg, T0 + i * 1_000_000)
    return path


def frame(k: int, nanosec: int | None = None, image_nanosec: int | None = None, info_nanosec: int | None = None,
          kk: Iterable[float] = K_GOOD) -> list[tuple[str, Any]]:
    """Image + camera_info of frame k (stamp T0 + k * 0.1 s), stamps overridable."""
    sec, ns = divmod(T0 + k * S // 10, S)
    if nanosec is not None:
        image_nanosec = info_nanosec = nanosec
    return [(INFO, info(sec, ns if info_nanosec is None else info_nanosec, kk)),
            (IMAGE, image(sec, ns if image_nanosec is None else image_nanosec))]


def infer_records(tmp_path: Path, records: list[tuple[str, Any]], config: InferConfig | None = None) -> Any:
    """``records`` written to ``tmp_path/in.mcap`` (:func:`write_bag`) and run through
    ``infer_bag`` with the constant backend into ``tmp_path/out.mcap``; returns its summary."""
    bag = write_bag(tmp_path / "in.mcap", records)
    return infer_bag(bag, tmp_path / "out.mcap", ConstantBackend(), config if config is not None else InferConfig())


def read(path: Path) -> dict[str, list[Any]]:
    from rosbags.highlevel import AnyReader

    out: dict[str, list[Any]] = {}
    with AnyReader([path]) as reader:
        for conn, _, data in reader.messages():
            out.setdefault(conn.topic, []).append(reader.deserialize(data, conn.msgtype))
    return out


def stamp(msg: Any) -> int:
    return msg.header.stamp.sec * S + msg.header.stamp.nanosec


@pytest.mark.parametrize("overlap", [False, True], ids=["sequential", "overlap"])
def test_image_with_a_bad_stamp_is_skipped_and_the_run_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                 overlap: bool) -> None:
    records = frame(0) + frame(1, image_nanosec=1_500_000_000) + frame(2)
    with caplog.at_level(logging.WARNING, logger="depth_ros.bag.infer"):
        summary = infer_records(tmp_path, records, InferConfig(overlap=overlap))
    assert (summary.frames_in, summary.frames_out) == (3, 2)
    # frame 1's camera_info waits for an image that never pairs: nothing else is skipped
    assert summary.skipped == {"bad_stamp": 1}
    out = read(tmp_path / "out.mcap")
    assert [stamp(m) for m in out["/cam/depth/image"]] == [T0, T0 + 2 * S // 10]
    assert len(out[IMAGE]) == 3  # the input is still copied whole
    first = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping frame")]
    assert len(first) == 1 and IMAGE in first[0] and "nanosec must be in [0, 1e9), got 1500000000" in first[0]
    assert "bad_stamp" in summary.format() and SKIP_REASONS["bad_stamp"] in summary.format()


def test_camera_info_with_a_bad_stamp_is_dropped_and_counted(tmp_path: Path) -> None:
    records = frame(0) + frame(1, info_nanosec=4_000_000_000) + frame(2)
    summary = infer_records(tmp_path, records)
    assert (summary.frames_in, summary.frames_out) == (3, 2)
    assert summary.skipped == {"missing_camera_info": 1}
    assert summary.messages_dropped == {INFO: 1}
    assert f"dropped 1 message(s) on {INFO}" in summary.format()


def test_only_bad_stamps_is_a_one_line_bag_error_not_a_crash(tmp_path: Path) -> None:
    records = frame(0, nanosec=1_500_000_000) + frame(1, nanosec=1_600_000_000)
    with pytest.raises(BagError, match=r"no depth frame could be made from 2 image\(s\) .*2 bad_stamp"):
        infer_records(tmp_path, records)
    assert not (tmp_path / "out.mcap").exists()


@pytest.mark.parametrize("overlap", [False, True], ids=["sequential", "overlap"])
def test_duplicated_image_is_written_once_and_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          overlap: bool) -> None:
    records = frame(0) + frame(1) + [frame(1)[1], frame(1)[1]] + frame(2) + [frame(0)[1]]  # frame 1 thrice, 0 again late
    with caplog.at_level(logging.WARNING, logger="depth_ros.bag.infer"):
        summary = infer_records(tmp_path, records, InferConfig(overlap=overlap))
    assert (summary.frames_in, summary.frames_out) == (6, 3)
    assert summary.skipped == {"duplicate_stamp": 3}
    out = read(tmp_path / "out.mcap")
    for topic in ("/cam/depth/image", "/cam/depth/points", "/cam/depth/info", "/cam/depth/camera_info"):
        assert [stamp(m) for m in out[topic]] == [T0, T0 + S // 10, T0 + 2 * S // 10], topic
    warned = [r.getMessage() for r in caplog.records if "duplicate_stamp" in r.getMessage()]
    assert len(warned) == 2  # the first duplicate, and the total at the end
    assert warned[0].startswith("skipping frame") and warned[1].startswith("skipped 3 frame(s): duplicate_stamp")


def test_camera_info_with_absurd_focal_length_is_refused_and_no_far_point_is_written(tmp_path: Path) -> None:
    absurd = [1e-30, 0.0, 3.5, 0.0, 1e-30, 2.5, 0.0, 0.0, 1.0]
    records = frame(0) + frame(1, kk=absurd) + frame(2, kk=[6.0, 0.0, 1e12, 0.0, 6.0, 2.5, 0.0, 0.0, 1.0])
    summary = infer_records(tmp_path, records)
    assert (summary.frames_out, summary.skipped) == (1, {"bad_camera_info": 2})
    clouds = read(tmp_path / "out.mcap")["/cam/depth/points"]
    assert [stamp(c) for c in clouds] == [T0]
    xyz = np.asarray(clouds[0].data, np.uint8).reshape(H, W, clouds[0].point_step)[..., :12].copy().view("<f4")
    assert np.isfinite(xyz).all() and np.abs(xyz).max() < 10.0  # 3 m deep, 8x6 px at f = 6 px


def test_skip_warning_is_one_printable_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An encoding name with a newline and an escape sequence: the frame is skipped, and the
    warning quoting it stays one line without the raw escape."""
    records = frame(0)
    bad = frame(1)
    bad[1][1].encoding = "yuv\n\x1b[2J"
    with caplog.at_level(logging.WARNING, logger="depth_ros.bag.infer"):
        summary = infer_records(tmp_path, records + bad)
    assert summary.skipped == {"unsupported_encoding": 1}
    texts = [r.getMessage() for r in caplog.records if "unsupported_encoding" in r.getMessage()]
    assert len(texts) == 2 and all("\n" not in t and "\x1b" not in t for t in texts), texts
    assert "yuv \\x1b[2J" in texts[0]

