"""``depth-ros import tum``: a tiny TUM RGB-D folder written here, imported and read back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_import_support import (
    H,
    W,
    assert_refused,
    camera_pose_from_bag,
    depth_m,
    read_bag,
    rgb_pattern,
    run_import,
    stamp_ns,
    write_png,
    write_tum,
)

from depth_ros.core.rotation import rpy_to_matrix
from depth_ros.importers.common import associate
from depth_ros.importers.tum import TUM_CAMERAS


def test_tum_folder_reads_back_stamps_camera_depth_and_poses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = write_tum(tmp_path)
    out = tmp_path / "t.mcap"
    code, stdout, _ = run_import(capsys, "tum", info["dir"], "-o", out, "--no-progress")
    assert code == 0 and "3 frames (3 with depth" in stdout
    msgs = read_bag(out)
    t0_ns = 1305031102 * 10**9
    assert [stamp_ns(m) for m in msgs["/camera/image_raw"]] == [t0_ns, t0_ns + 10**8, t0_ns + 2 * 10**8]
    # depth is 5 ms after colour in the files; written with the colour stamp
    assert [stamp_ns(m) for m in msgs["/camera/depth/ground_truth"]] == [stamp_ns(m) for m in msgs["/camera/image_raw"]]
    image = msgs["/camera/image_raw"][1]
    assert image.encoding == "rgb8" and (image.width, image.height) == (W, H)
    assert np.array_equal(np.asarray(image.data).reshape(H, W, 3), rgb_pattern(1))
    ci = msgs["/camera/camera_info"][0]
    fr1 = TUM_CAMERAS["fr1"]
    s = W / 640  # the 640x480 calibration scaled to the 32x24 test images (pixel edges kept)
    assert ci.distortion_model == "plumb_bob" and np.allclose(ci.d, fr1.d)
    assert np.allclose(ci.k, [fr1.fx * s, 0, (fr1.cx + 0.5) * s - 0.5, 0, fr1.fy * s, (fr1.cy + 0.5) * s - 0.5, 0, 0, 1])
    d1 = depth_m(msgs["/camera/depth/ground_truth"][1])
    assert d1[5, 7] == pytest.approx(1001 / 5000) and d1[1, 1] == pytest.approx(2.0) and np.isnan(d1[0, 0])
    # ground truth: optical frame at x = t - t0 (m), rotated 0.1 rad about its z; the bag's odometry
    # child frame composed with /tf_static gives it back
    odom = msgs["/odom"]
    k = [stamp_ns(m) for m in odom].index(t0_ns + 50_000_000)
    T = camera_pose_from_bag(out, k)
    assert np.allclose(T[:3, 3], [0.05, 0, 0], atol=1e-9)
    assert np.allclose(T[:3, :3], rpy_to_matrix(0.0, 0.0, 0.1), atol=1e-8)
    # the body frame is REP 103 (x forward = optical z) and the twist its finite difference
    assert odom[k].child_frame_id == "base_link" and odom[k].header.frame_id == "odom"
    # 1 m/s along world x = (cos 0.1, -sin 0.1, 0) in the optical frame = (0, -cos 0.1, sin 0.1) in the body
    lin = odom[k].twist.twist.linear
    assert np.allclose([lin.x, lin.y, lin.z], [0.0, -np.cos(0.1), np.sin(0.1)], atol=1e-6)


def test_stride_max_frames_and_compressed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = write_tum(tmp_path, n=5)
    out = tmp_path / "c.mcap"
    code, _, _ = run_import(capsys, "tum", info["dir"], "-o", out, "--no-progress", "--stride", "2", "--max-frames", "2", "--compressed")
    assert code == 0
    msgs = read_bag(out)
    assert "/camera/image_raw" not in msgs
    t0_ns = 1305031102 * 10**9
    comp = msgs["/camera/image_raw/compressed"]
    assert [stamp_ns(m) for m in comp] == [t0_ns, t0_ns + 2 * 10**8]  # frames 0 and 2
    assert bytes(comp[1].data) == (info["dir"] / "rgb" / f"{info['t0'] + 0.2:.6f}.png").read_bytes()
    assert comp[1].format.startswith("rgb8; png compressed")
    # only the poses of the chosen span (plus one on each side) are written
    odom_ns = [stamp_ns(m) for m in msgs["/odom"]]
    assert odom_ns[0] < t0_ns <= odom_ns[1] and odom_ns[-2] <= t0_ns + 2 * 10**8 < odom_ns[-1]


def test_association_is_one_to_one_nearest_within_tolerance() -> None:
    a = np.array([0, 100, 200, 300])
    b = np.array([5, 96, 104, 260])
    # 100 takes 96 (4 away) and 104 (4 away) is left for nobody else: 200 is 96 from 104 > 50
    assert associate(a, b, 50) == [(0, 0), (1, 1), (3, 3)]
    assert associate(a, b, 3) == []


def _broken(tmp_path: Path, case: str) -> tuple[Path, list[str]]:
    info = write_tum(tmp_path)
    d: Path = info["dir"]
    extra: list[str] = []
    if case == "missing column":
        (d / "groundtruth.txt").write_text("1305031102.0 0 0 0 0 0 1\n")
    elif case == "bad number":
        (d / "groundtruth.txt").write_text("1305031102.0 0 0 zero 0 0 0 1\n")
    elif case == "bad stamp":
        (d / "rgb.txt").write_text("noon rgb/x.png\n")
    elif case == "size mismatch":
        write_png(d / "rgb" / f"{info['t0'] + 0.1:.6f}.png", rgb_pattern(0, w=W, h=H + 2))
    elif case == "too large":
        write_png(d / "rgb" / f"{info['t0']:.6f}.png", np.zeros((3, 4097), np.uint8))
    elif case == "file limit":
        extra = ["--max-file-mb", "0.0001"]
    elif case == "depth not 16-bit":
        write_png(d / "depth" / f"{info['t0'] + 0.005:.6f}.png", rgb_pattern(3))
    elif case == "missing image":
        (d / "rgb" / f"{info['t0'] + 0.2:.6f}.png").unlink()
    elif case == "no rgb.txt":
        (d / "rgb.txt").unlink()
    elif case == "unknown site":
        d = d.rename(d.parent / "my_sequence")
    return d, extra


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing column", "groundtruth.txt:1: expected at least 8 columns"),
        ("bad number", "groundtruth.txt:1: column tz: 'zero' is not a number"),
        ("bad stamp", "rgb.txt:1: timestamp 'noon' is not a number of seconds"),
        ("size mismatch", "image is 32x26, the camera is 32x24"),
        ("too large", "image is 4097x3; at most 4096 px a side"),
        ("file limit", "bytes, more than the limit of 104"),
        ("depth not 16-bit", "depth image has pixel mode 'RGB'; expected a 16-bit grey PNG"),
        ("missing image", "1305031102.200000.png: image does not exist"),
        ("no rgb.txt", "no rgb.txt; expected a TUM RGB-D folder"),
        ("unknown site", "cannot tell fr1/fr2/fr3 from the folder name; name the camera with --camera"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_bag(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, expected: str) -> None:
    d, extra = _broken(tmp_path, case)
    assert_refused(capsys, tmp_path / "bad.mcap", expected, "tum", d, *extra)


def test_camera_flag_and_depth_correction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = write_tum(tmp_path)
    out = tmp_path / "f2.mcap"
    code, _, _ = run_import(capsys, "tum", info["dir"], "-o", out, "--no-progress", "--camera", "fr2", "--depth-correction")
    assert code == 0
    msgs = read_bag(out)
    assert np.allclose(msgs["/camera/camera_info"][0].d, TUM_CAMERAS["fr2"].d)
    assert depth_m(msgs["/camera/depth/ground_truth"][0])[5, 7] == pytest.approx(1000 / 5000 * 1.031, rel=1e-6)


@pytest.mark.parametrize(
    "flags, expected",
    [(["--stride", "0"], "bad option: stride must be >= 1, got 0"), (["--max-frames", "0"], "bad option: max_frames must be >= 1, got 0"),
     (["--tolerance", "0"], "TUM association tolerance must be > 0 s, got 0.0")],
)
def test_bad_options_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str) -> None:
    info = write_tum(tmp_path)
    assert_refused(capsys, tmp_path / "o.mcap", expected, "tum", info["dir"], *flags)


@pytest.mark.parametrize(
    "layout, needles",
    [("tum", ["rgb.txt", "groundtruth.txt", "5000 per metre"]), ("euroc", ["sensor.yaml", "T_BS", "radial-tangential"]),
     ("kitti", ["P_rect_02", "velodyne_points", "oxts"]), ("7scenes", ["pose.txt", "65535", "NOT registered"]),
     ("folder", ["--intrinsics", "camera_matrix", "--depth-scale"])],
)
def test_help_says_the_layout_expected(capsys: pytest.CaptureFixture[str], layout: str, needles: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_import(capsys, layout, "--help")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(n in text for n in needles), text


def test_progress_bar_on_stderr_summary_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = write_tum(tmp_path)
    code, out, err = run_import(capsys, "tum", info["dir"], "-o", tmp_path / "p.mcap")
    assert code == 0 and "import tum" in err and "/3 [" in err  # tqdm's bar, the total known from the start
    assert out.startswith("import tum: 3 frames (3 with depth, 11 poses)") and "/3 [" not in out
