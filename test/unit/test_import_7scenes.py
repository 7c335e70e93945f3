"""``depth-ros import 7scenes``: a tiny 7-Scenes sequence written here, imported and read back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_import_support import W, assert_refused, camera_pose_from_bag, depth_m, read_bag, stamp_ns, write_7scenes

from depth_ros.cli import main


def test_7scenes_reads_back_intrinsics_millimetre_depth_and_poses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = write_7scenes(tmp_path)
    out = tmp_path / "s.mcap"
    capsys.readouterr()
    # the scene folder with its only sequence is found
    assert main(["import", "7scenes", str(info["scene"]), "-o", str(out), "--no-progress", "--rate-hz", "25"]) == 0
    stdout = capsys.readouterr().out
    assert "not registered to colour" in stdout
    msgs = read_bag(out)
    assert [stamp_ns(m) for m in msgs["/camera/image_raw"]] == [1_000_000_000, 1_040_000_000, 1_080_000_000]
    ci = msgs["/camera/camera_info"][0]
    s = W / 640  # focal 585 and the centre at 640x480, scaled to the 32x24 test images
    assert np.allclose(ci.k, [585 * s, 0, (320 + 0.5) * s - 0.5, 0, 585 * s, (240 + 0.5) * s - 0.5, 0, 0, 1])
    assert not np.any(ci.d)
    d = depth_m(msgs["/camera/depth/ground_truth"][2])
    assert d[4, 6] == pytest.approx(1.234) and d[1, 1] == pytest.approx(2.0) and np.isnan(d[0, 0])
    T = camera_pose_from_bag(out, 2)
    assert np.allclose(T, np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1.0], [0, 0, 0, 1]]), atol=1e-9)


def test_several_sequences_need_a_choice_and_a_bad_pose_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = write_7scenes(tmp_path)
    (info["scene"] / "seq-02").mkdir()
    out = tmp_path / "s.mcap"
    assert_refused(capsys, out, "several sequences (seq-01, seq-02); choose one with --sequence", "7scenes", info["scene"])
    (info["seq"] / "frame-000001.pose.txt").write_text("1 0 0\n0 1 0\n0 0 1\n")
    assert_refused(capsys, out, "frame-000001.pose.txt: expected a 4x4 matrix (4 lines of 4 numbers), found [3, 3, 3]",
                   "7scenes", info["scene"], "--sequence", "seq-01")
