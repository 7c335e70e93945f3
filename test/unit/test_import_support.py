"""Helpers for the importer tests: tiny dataset files written by the tests, and reading a bag back.

No tests here (imported by test_import_*.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

W, H = 32, 24


def rgb_pattern(seed: int, w: int = W, h: int = H) -> np.ndarray:
    """(h, w, 3) uint8 image that differs per seed."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write an 8-bit RGB / grey or a 16-bit grey PNG (uint16 arrays)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == np.uint16:
        Image.fromarray(array.astype(np.uint16)).save(path)  # mode I;16
    else:
        Image.fromarray(array).save(path)
    return path


def read_bag(path: Path) -> dict[str, list[Any]]:
    """topic -> messages (decoded with the bag's own definitions by the package's reader), in log-time order."""
    from depth_ros.bag.reader import BagReader

    out: dict[str, list[Any]] = {}
    with BagReader(path) as reader:
        for message in reader.messages(list(reader.topics)):
            out.setdefault(message.topic, []).append(reader.deserialize(message))
    return out


def stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def odom_matrix(msg: Any) -> np.ndarray:
    """T_odom_child (4, 4) of an Odometry message."""
    from depth_ros.core.rotation import quaternion_to_matrix

    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(np.array([q.x, q.y, q.z, q.w]))
    T[:3, 3] = (p.x, p.y, p.z)
    return T


def camera_pose_from_bag(path: Path, k: int = 0) -> np.ndarray:
    """T_odom_cam of the k-th /odom message composed with /tf_static's child -> camera chain."""
    from depth_ros.bag.reader import BagReader

    msgs = read_bag(path)
    odom = msgs["/odom"][k]
    info = msgs["/camera/camera_info"][0]
    with BagReader(path) as reader:
        T_child_cam = reader.static_transforms().lookup(str(odom.child_frame_id), str(info.header.frame_id))
    return odom_matrix(odom) @ T_child_cam


def depth_m(msg: Any) -> np.ndarray:
    from depth_ros.msgconv import image_to_depth_m

    return image_to_depth_m(msg)


def write_tum(root: Path, n: int = 3, *, t0: float = 1305031102.0, dt: float = 0.1) -> dict[str, Any]:
    """A TUM RGB-D folder ``rgbd_dataset_freiburg1_test`` of ``n`` frames; returns what was written.

    Depth pixel (5, 7) of frame k is ``(1000 + k) / 5000`` m; elsewhere 2 m, pixel (0, 0) invalid (0).
    Depth stamps are 5 ms after the colour stamps; ground truth at 4x the frame rate: a camera
    moving along +x by 1 m/s (optical frame = world frame at t0), rotated about its z by 0.1 rad.
    """
    d = root / "rgbd_dataset_freiburg1_test"
    rgb_lines, depth_lines, gt_lines = ["# color images", "# timestamp filename"], ["# depth"], ["# ground truth"]
    for k in range(n):
        t = t0 + k * dt
        write_png(d / "rgb" / f"{t:.6f}.png", rgb_pattern(k))
        depth = np.full((H, W), 10000, dtype=np.uint16)
        depth[5, 7] = 1000 + k
        depth[0, 0] = 0
        write_png(d / "depth" / f"{t + 0.005:.6f}.png", depth)
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.005:.6f} depth/{t + 0.005:.6f}.png")
    s, c = np.sin(0.05), np.cos(0.05)  # quaternion of 0.1 rad about z
    for j in range(4 * n + 4):
        t = t0 - 0.05 + j * dt / 4
        gt_lines.append(f"{t:.4f} {t - t0:.6f} 0.0 0.0 0.0 0.0 {s:.9f} {c:.9f}")
    (d / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (d / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (d / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    return {"dir": d, "t0": t0, "dt": dt}


#: A body -> camera extrinsic with a rotation and a translation (EuRoC's T_BS is of this kind).
T_BS = np.array([
    [0.0, -1.0, 0.0, 0.05],
    [1.0, 0.0, 0.0, -0.02],
    [0.0, 0.0, 1.0, 0.01],
    [0.0, 0.0, 0.0, 1.0],
])


def write_euroc(root: Path, n: int = 3, *, model: str = "radial-tangential") -> dict[str, Any]:
    """An ASL folder ``root/mav0`` with ``n`` mono8 frames 50 ms apart and ground truth at 200 Hz:
    the body at (t, 2, 3) m (t in s from the first frame), yawed by 0.2 rad, quaternion written w first."""
    cam = root / "mav0" / "cam0"
    t0 = 1403636579763555584
    lines = ["#timestamp [ns],filename"]
    for k in range(n):
        t = t0 + k * 50_000_000
        write_png(cam / "data" / f"{t}.png", rgb_pattern(k)[..., 0])
        lines.append(f"{t},{t}.png")
    (cam / "data.csv").write_text("\n".join(lines) + "\n")
    coeffs = "[-0.28, 0.07, 0.0002, 0.00002]" if model == "radial-tangential" else "[0.01, -0.002, 0.0003, -0.0001]"
    (cam / "sensor.yaml").write_text(
        "# General sensor definitions.\nsensor_type: camera\ncomment: VI-Sensor cam0 (MT9M034)\n"
        "T_BS:\n  cols: 4\n  rows: 4\n  data: [" + ", ".join(f"{v:g}" for v in T_BS.reshape(-1)) + "]\n"
        f"rate_hz: 20\nresolution: [{W}, {H}]\ncamera_model: pinhole\nintrinsics: [20.5, 20.25, 15.5, 11.75]\n"
        f"distortion_model: {model}\ndistortion_coefficients: {coeffs}\n"
    )
    gt = root / "mav0" / "state_groundtruth_estimate0"
    gt.mkdir(parents=True)
    s, c = np.sin(0.1), np.cos(0.1)
    rows = ["#timestamp, p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m], q_RS_w [], q_RS_x [], q_RS_y [], q_RS_z [], v_RS_R_x [m s^-1]"]
    for j in range(-2, 40):
        t = t0 + j * 5_000_000
        rows.append(f"{t},{(t - t0) * 1e-9:.9f},2.0,3.0,{c:.12f},0.0,0.0,{s:.12f},1.0")
    (gt / "data.csv").write_text("\n".join(rows) + "\n")
    return {"dir": root, "t0": t0}


def write_7scenes(root: Path, n: int = 3) -> dict[str, Any]:
    """A 7-Scenes scene ``root/chess/seq-01`` of ``n`` frames: depth pixel (4, 6) = 1234 mm, pixel
    (0, 0) = 65535 (invalid); camera k at (0, 0, 0.5 k) m, axes of the world."""
    seq = root / "chess" / "seq-01"
    for k in range(n):
        write_png(seq / f"frame-{k:06d}.color.png", rgb_pattern(10 + k))
        depth = np.full((H, W), 2000, dtype=np.uint16)
        depth[4, 6] = 1234
        depth[0, 0] = 65535
        write_png(seq / f"frame-{k:06d}.depth.png", depth)
        T = np.eye(4)
        T[2, 3] = 0.5 * k
        (seq / f"frame-{k:06d}.pose.txt").write_text("\n".join(" ".join(f"{v:.7e}" for v in row) for row in T) + "\n")
    return {"scene": root / "chess", "seq": seq}


KITTI_P2 = np.array([[20.0, 0.0, 16.0, 20.0 * 0.06], [0.0, 20.0, 12.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
KITTI_R_VELO = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])  # Velodyne x forward -> camera z
KITTI_T_VELO = np.array([0.0, -0.08, -0.27])
KITTI_T_IMU = np.array([-0.8, 0.3, -0.9])


def _numbers(values: Any) -> str:
    return " ".join(f"{v:.12e}" for v in np.asarray(values, dtype=np.float64).reshape(-1))


def write_kitti(root: Path, n: int = 2, *, oxts: bool = True) -> dict[str, Any]:
    """A KITTI raw date folder ``root/2011_09_26`` with drive ``..._drive_0001_sync`` of ``n`` frames.

    Each scan: a point at Velodyne (5, 0.5, 0.2) -> camera 2 (-0.44, -0.28, 4.73) -> pixel (u 14, v 11);
    a farther one landing on the same pixel, one behind the sensor. OXTS: the second pose 10 m
    east (at latitude 49) and yawed by 0.1 rad.
    """
    date = root / "2011_09_26"
    drive = date / "2011_09_26_drive_0001_sync"
    date.mkdir(parents=True)
    (date / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n"
        f"S_rect_02: {W} {H}\nR_rect_00: {_numbers(np.eye(3))}\nP_rect_02: {_numbers(KITTI_P2)}\n"
    )
    (date / "calib_velo_to_cam.txt").write_text(f"calib_time: 15-Mar-2012 11:37:16\nR: {_numbers(KITTI_R_VELO)}\nT: {_numbers(KITTI_T_VELO)}\n")
    (date / "calib_imu_to_velo.txt").write_text(f"calib_time: 25-May-2012 16:47:16\nR: {_numbers(np.eye(3))}\nT: {_numbers(KITTI_T_IMU)}\n")
    ns = [25_964_389_445 + k * 103_000_000 for k in range(n)]  # nanoseconds into minute 13:02
    stamps = [f"2011-09-26 13:02:{t // 10**9:02d}.{t % 10**9:09d}" for t in ns]
    points = np.array([[5.0, 0.5, 0.2, 0.3], [10.0, 0.94, 0.48, 0.1], [-5.0, 0.0, 0.0, 0.2]], dtype="<f4")
    for k in range(n):
        write_png(drive / "image_02" / "data" / f"{k:010d}.png", rgb_pattern(20 + k))
        (drive / "velodyne_points" / "data").mkdir(parents=True, exist_ok=True)
        points.tofile(drive / "velodyne_points" / "data" / f"{k:010d}.bin")
    (drive / "image_02" / "timestamps.txt").write_text("\n".join(stamps) + "\n")
    if oxts:
        (drive / "oxts" / "data").mkdir(parents=True)
        dlon = np.degrees(10.0 / (6378137.0 * np.cos(np.radians(49.0))))
        for k in range(n):
            record = [49.0, 8.4 + k * dlon, 110.0, 0.0, 0.0, 0.1 * k] + [0.0] * 24
            (drive / "oxts" / "data" / f"{k:010d}.txt").write_text(" ".join(f"{v:.12f}" for v in record) + "\n")
        (drive / "oxts" / "timestamps.txt").write_text("\n".join(stamps) + "\n")
    return {"drive": drive, "date": date, "stamps": stamps}


def run_import(capsys: Any, *argv: Any) -> tuple[int, str, str]:
    """``depth-ros import ARGV...`` in process: (exit code, stdout, stderr)."""
    from depth_ros.cli import main

    capsys.readouterr()
    code = main(["import", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(capsys: Any, out: Path, expected: str, *argv: Any) -> None:
    """The import exits 1 with one error line containing ``expected`` (no traceback), and leaves
    neither ``out`` nor a temporary directory next to it."""
    code, _, err = run_import(capsys, *argv, "-o", out, "--no-progress")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("depth-ros import: error: ") and expected in lines[0], lines[0]
    assert not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(".depth_ros-tmp")]
