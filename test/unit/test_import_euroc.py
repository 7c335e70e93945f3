"""``depth-ros import euroc``: a tiny ASL folder written here, imported and read back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_import_support import H, T_BS, W, assert_refused, camera_pose_from_bag, read_bag, rgb_pattern, stamp_ns, write_euroc

from depth_ros.cli import main
from depth_ros.core.rotation import rpy_to_matrix


@pytest.mark.parametrize("model, expected", [("radial-tangential", "plumb_bob"), ("equidistant", "equidistant")])
def test_euroc_reads_back_mono8_distortion_and_the_body_camera_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, expected: str
) -> None:
    info = write_euroc(tmp_path, model=model)
    out = tmp_path / "e.mcap"
    assert main(["import", "euroc", str(info["dir"]), "-o", str(out), "--no-progress"]) == 0
    msgs = read_bag(out)
    images = msgs["/camera/image_raw"]
    assert [stamp_ns(m) for m in images] == [info["t0"] + k * 50_000_000 for k in range(3)]
    assert images[2].encoding == "mono8" and np.array_equal(np.asarray(images[2].data).reshape(H, W), rgb_pattern(2)[..., 0])
    ci = msgs["/camera/camera_info"][0]
    assert ci.distortion_model == expected
    want_d = [-0.28, 0.07, 0.0002, 0.00002, 0.0] if expected == "plumb_bob" else [0.01, -0.002, 0.0003, -0.0001]
    assert np.allclose(ci.d, want_d) and np.allclose(ci.k, [20.5, 0, 15.5, 0, 20.25, 11.75, 0, 0, 1])
    assert "/camera/depth/ground_truth" not in msgs
    # the body pose at the second frame (t = 50 ms): (0.05, 2, 3), yaw 0.2; the camera is T_BS from it
    odom = msgs["/odom"]
    k = [stamp_ns(m) for m in odom].index(info["t0"] + 50_000_000)
    T_world_body = np.eye(4)
    T_world_body[:3, :3] = rpy_to_matrix(0.0, 0.0, 0.2)
    T_world_body[:3, 3] = (0.05, 2.0, 3.0)
    assert np.allclose(camera_pose_from_bag(out, k), T_world_body @ T_BS, atol=1e-9)
    lin = odom[k].twist.twist.linear  # 1 m/s along world x, in the body frame yawed by 0.2
    assert np.allclose([lin.x, lin.y, lin.z], [np.cos(0.2), -np.sin(0.2), 0.0], atol=1e-6)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda d: (d / "mav0/cam0/sensor.yaml").write_text("resolution: [32, 24]\n"), "sensor.yaml: missing key 'intrinsics'"),
        (lambda d: (d / "mav0/cam0/sensor.yaml").write_text((d / "mav0/cam0/sensor.yaml").read_text().replace("intrinsics: [20.5, 20.25, 15.5, 11.75]", "intrinsics: [20.5, 20.25]")),
         "intrinsics must be a list of 4 numbers"),
        (lambda d: (d / "mav0/cam0/sensor.yaml").write_text((d / "mav0/cam0/sensor.yaml").read_text().replace("radial-tangential", "fov")),
         "distortion_model 'fov': expected one of"),
        (lambda d: (d / "mav0/cam0/sensor.yaml").write_text((d / "mav0/cam0/sensor.yaml").read_text().replace("camera_model: pinhole", "camera_model: omni")),
         "camera_model 'omni': only pinhole is supported"),
        (lambda d: (d / "mav0/state_groundtruth_estimate0/data.csv").write_text("1403636579763555584,1.0,2.0\n"),
         "data.csv:1: expected at least 8 columns"),
        (lambda d: (d / "mav0/state_groundtruth_estimate0/data.csv").write_text("1403636579763555584,1.0,2.0,x,1,0,0,0\n"),
         "data.csv:1: column p_RS_R_z: 'x' is not a number"),
        (lambda d: (d / "mav0/cam0/data.csv").write_text("14036.5,a.png\n"), "cam0/data.csv:1: timestamp '14036.5' is not an integer of nanoseconds"),
        (lambda d: (d / "mav0/cam0/data.csv").unlink(), "no cam0/data.csv; expected an ASL folder"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], edit, expected: str) -> None:  # type: ignore[no-untyped-def]
    info = write_euroc(tmp_path)
    edit(info["dir"])
    assert_refused(capsys, tmp_path / "bad.mcap", expected, "euroc", info["dir"])
