"""The multi-camera node's own parameters and ``depth-ros run --cameras`` (no ROS graph)."""
from __future__ import annotations

import pytest

from depth_ros.config_fields import ParameterError

multi = pytest.importorskip("depth_ros.ros.multi_depth_node")  # needs rclpy


def test_namespaces_relative_to_the_node_or_absolute() -> None:
    config = multi.MultiCameraConfig(cameras=("front", "/rig/rear"))
    assert config.namespace_of("front", "/") == "/front"
    assert config.namespace_of("front", "/robot") == "/robot/front"
    assert config.namespace_of("/rig/rear", "/robot") == "/rig/rear"


@pytest.mark.parametrize(("cameras", "expected"), [
    ((), "not set"),
    (("front", "front"), "given twice"),
    (("front", "rear cam"), "'rear cam' is not a ROS namespace"),
    (("1st",), "'1st' is not a ROS namespace"),
    (tuple(f"c{i}" for i in range(17)), "at most 16"),
])
def test_bad_cameras_are_refused_naming_the_parameter(cameras: tuple[str, ...], expected: str) -> None:
    with pytest.raises(ParameterError, match=f"parameter 'cameras': .*{expected}"):
        multi.MultiCameraConfig(cameras=cameras)


@pytest.mark.parametrize("flag", [["--use-pose"], ["--lifecycle"], ["--image-topic", "/x/image"]])
def test_run_cameras_refuses_single_camera_options(flag: list[str]) -> None:
    from depth_ros.cli import parse_command_line
    from depth_ros.ros.runner import run

    args = parse_command_line(["run", "--model", "m.onnx", "--cameras", "a,b", *flag])
    with pytest.raises(ParameterError, match=f"--cameras: not with {flag[0]}"):
        run(args)
