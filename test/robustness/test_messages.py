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

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from depth_ros import msgconv
from depth_ros.core.camera import MAX_RAY_ANGLE_DEG, MIN_FOV_DEG, CameraModel
from depth_ros.core.pointcloud import make_cloud
from depth_ros.errors import InputError

S = 1_000_000_000
T0 = 1_700_000_000 * S
IMAGE_TOPIC = "/cam/image_raw"


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
