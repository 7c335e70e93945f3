"""``depth-ros import kitti``: a tiny KITTI raw drive written here, imported and read back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_import_support import (
    KITTI_P2,
    KITTI_R_VELO,
    KITTI_T_IMU,
    KITTI_T_VELO,
    assert_refused,
    camera_pose_from_bag,
    depth_m,
    read_bag,
    stamp_ns,
    write_kitti,
)

from depth_ros.cli import main
from depth_ros.core.rotation import rpy_to_matrix
from depth_ros.importers.kitti import project_to_depth


def test_projection_keeps_the_nearest_point_per_pixel_centre() -> None:
    K = np.array([[10.0, 0, 4.0], [0, 10.0, 2.0], [0, 0, 1]])
    # (0.2, 0.1, 2) -> (5, 2.5 -> 2 half to even); (0.3, 0.15, 3) -> same pixel, farther; behind; off the image
    pts = np.array([[0.2, 0.1, 2.0], [0.3, 0.15, 3.0], [0.0, 0.0, -1.0], [50.0, 0.0, 1.0], [0.04, 0.0, 1.0]])
    d = project_to_depth(pts, K, 8, 5)
    assert np.argwhere(np.isfinite(d)).tolist() == [[2, 4], [2, 5]]
    assert d[2, 5] == pytest.approx(2.0) and d[2, 4] == pytest.approx(1.0)


def test_kitti_reads_back_stamps_rectified_camera_sparse_depth_and_oxts_poses(tmp_path: Path) -> None:
    info = write_kitti(tmp_path)
    out = tmp_path / "k.mcap"
    assert main(["import", "kitti", str(info["drive"]), "-o", str(out), "--no-progress"]) == 0
    msgs = read_bag(out)
    t0 = 1317042145 * 10**9 + 964389445  # 2011-09-26 13:02:25.964389445 UTC
    assert [stamp_ns(m) for m in msgs["/camera/image_raw"]] == [t0, t0 + 103_000_000]
    ci = msgs["/camera/camera_info"][0]
    assert (ci.width, ci.height) == (32, 24) and np.allclose(ci.k, KITTI_P2[:, :3].reshape(-1)) and not np.any(ci.d)
    assert np.allclose(np.asarray(ci.p).reshape(3, 4)[:, 3], 0)  # the camera's own optical frame
    d = depth_m(msgs["/camera/depth/ground_truth"][1])
    # the nearer of the two points on pixel (11, 14): z = 5 - 0.27 m; the one behind the sensor dropped
    assert np.argwhere(np.isfinite(d)).tolist() == [[11, 14]] and d[11, 14] == pytest.approx(4.73, abs=1e-6)
    # camera pose: second OXTS pose (10 m east, yaw 0.1) composed with IMU -> Velodyne -> camera 2
    T_velo_imu = np.eye(4)
    T_velo_imu[:3, 3] = KITTI_T_IMU
    T_cam_velo = np.eye(4)
    T_cam_velo[:3, :3], T_cam_velo[:3, 3] = KITTI_R_VELO, KITTI_T_VELO + [0.06, 0, 0]
    T_odom_imu = np.eye(4)
    T_odom_imu[:3, :3] = rpy_to_matrix(0.0, 0.0, 0.1)
    T_odom_imu[:3, 3] = (10.0, 0.0, 0.0)
    expected = T_odom_imu @ np.linalg.inv(T_cam_velo @ T_velo_imu)
    assert np.allclose(camera_pose_from_bag(out, 1), expected, atol=1e-6)
    assert msgs["/odom"][1].child_frame_id == "base_link"


def test_kitti_without_oxts_or_velodyne(tmp_path: Path) -> None:
    info = write_kitti(tmp_path, oxts=False)
    out = tmp_path / "k.mcap"
    assert main(["import", "kitti", str(info["drive"]), "-o", str(out), "--no-progress", "--no-velodyne"]) == 0
    assert set(read_bag(out)) == {"/camera/image_raw", "/camera/camera_info", "/tf_static"}


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda i: (i["date"] / "calib_cam_to_cam.txt").write_text("S_rect_02: 32 24\n"), "calib_cam_to_cam.txt: missing P_rect_02"),
        (lambda i: (i["date"] / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\nT: 0 0\n"), "calib_velo_to_cam.txt: T has 2 numbers, expected 3"),
        (lambda i: (i["date"] / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 x\nT: 0 0 0\n"), "calib_velo_to_cam.txt: R holds a field that is not a number"),
        (lambda i: (i["drive"] / "image_02" / "timestamps.txt").write_text(i["stamps"][0] + "\n"), "1 stamps for 2 images"),
        (lambda i: (i["drive"] / "image_02" / "timestamps.txt").write_text("yesterday\nnow\n"), "timestamps.txt:1: expected 'YYYY-MM-DD hh:mm:ss.fffffffff'"),
        (lambda i: (i["drive"] / "velodyne_points" / "data" / "0000000001.bin").write_bytes(b"\0" * 20), "0000000001.bin: Velodyne scan is 20 bytes, not a multiple of 16"),
        (lambda i: (i["drive"] / "oxts" / "data" / "0000000000.txt").write_text("49.0 8.4\n"), "0000000000.txt: expected at least 6 numbers"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], edit, expected: str) -> None:  # type: ignore[no-untyped-def]
    info = write_kitti(tmp_path)
    edit(info)
    assert_refused(capsys, tmp_path / "bad.mcap", expected, "kitti", info["drive"])
