"""``depth-ros import folder``: images + an intrinsics file (+ poses, + depth), imported and read back."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_import_support import H, W, assert_refused, camera_pose_from_bag, depth_m, read_bag, rgb_pattern, stamp_ns, write_png

from depth_ros.cli import main

ROS_YAML = """\
image_width: 32
image_height: 24
camera_name: test
camera_matrix: {rows: 3, cols: 3, data: [30.0, 0.0, 16.0, 0.0, 31.0, 12.0, 0.0, 0.0, 1.0]}
distortion_model: equidistant
distortion_coefficients: {rows: 1, cols: 4, data: [0.1, -0.01, 0.001, -0.0001]}
"""


def _folder(tmp_path: Path, stems: list[str]) -> Path:
    d = tmp_path / "images"
    for k, stem in enumerate(stems):
        write_png(d / f"{stem}.png", rgb_pattern(k))
    return d


def test_ros_yaml_poses_and_depth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _folder(tmp_path, ["100.5", "100.25", "101.0"])  # stamps from the names, out of name order
    (tmp_path / "cam.yaml").write_text(ROS_YAML)
    (tmp_path / "poses.txt").write_text("100.0 0 0 0 0 0 0 1\n100.5 1 2 3 0 0 0 1\n101.0 2 4 6 0 0 0 1\n")
    depth = np.full((H, W), 500, dtype=np.uint16)
    depth[3, 3] = 2500
    write_png(tmp_path / "depth" / "100.5.png", depth)
    out = tmp_path / "f.mcap"
    assert main(["import", "folder", str(d), "--intrinsics", str(tmp_path / "cam.yaml"), "--poses", str(tmp_path / "poses.txt"),
                 "--depth-dir", str(tmp_path / "depth"), "--depth-scale", "1000", "-o", str(out), "--no-progress"]) == 0
    msgs = read_bag(out)
    assert [stamp_ns(m) for m in msgs["/camera/image_raw"]] == [100_250_000_000, 100_500_000_000, 101_000_000_000]
    ci = msgs["/camera/camera_info"][0]
    assert ci.distortion_model == "equidistant" and np.allclose(ci.d, [0.1, -0.01, 0.001, -0.0001])
    assert np.allclose(ci.k, [30, 0, 16, 0, 31, 12, 0, 0, 1])
    [gt] = msgs["/camera/depth/ground_truth"]
    assert stamp_ns(gt) == 100_500_000_000 and depth_m(gt)[3, 3] == pytest.approx(2.5)
    k = [stamp_ns(m) for m in msgs["/odom"]].index(100_500_000_000)
    assert np.allclose(camera_pose_from_bag(out, k)[:3, 3], [1, 2, 3]) and np.allclose(camera_pose_from_bag(out, k)[:3, :3], np.eye(3))


def test_json_short_form_and_rate_stamps(tmp_path: Path) -> None:
    d = _folder(tmp_path, ["b", "a", "c"])
    (tmp_path / "cam.json").write_text(json.dumps({"width": W, "height": H, "fx": 25, "fy": 25, "cx": 15.5, "cy": 11.5}))
    out = tmp_path / "j.mcap"
    assert main(["import", "folder", str(d), "--intrinsics", str(tmp_path / "cam.json"), "--rate-hz", "4", "-o", str(out), "--no-progress"]) == 0
    msgs = read_bag(out)
    images = msgs["/camera/image_raw"]
    assert [stamp_ns(m) for m in images] == [1_000_000_000, 1_250_000_000, 1_500_000_000]
    assert np.array_equal(np.asarray(images[0].data).reshape(H, W, 3), rgb_pattern(1))  # "a" first
    assert set(msgs) == {"/camera/image_raw", "/camera/camera_info", "/tf_static"}
    assert msgs["/camera/camera_info"][0].distortion_model == "plumb_bob" and not np.any(msgs["/camera/camera_info"][0].d)


@pytest.mark.parametrize(
    "intrinsics, expected",
    [
        ({"width": W, "height": H, "fx": 25, "fy": 25, "cx": 15.5}, "missing cy"),
        ({"width": W, "height": H, "fx": "f", "fy": 25, "cx": 15.5, "cy": 1}, "fx must be a number, got f"),
        ({"width": W + 1, "height": H, "fx": 25, "fy": 25, "cx": 15.5, "cy": 1}, "image is 32x24, the camera is 33x24"),
        ({"width": W, "height": H, "fx": 25, "fy": 25, "cx": 15.5, "cy": 1, "distortion_model": "fisheye"}, "distortion model 'fisheye'"),
    ],
)
def test_bad_intrinsics_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], intrinsics: dict, expected: str) -> None:  # type: ignore[type-arg]
    d = _folder(tmp_path, ["a"])
    (tmp_path / "cam.json").write_text(json.dumps(intrinsics))
    assert_refused(capsys, tmp_path / "bad.mcap", expected, "folder", d, "--intrinsics", tmp_path / "cam.json")
