"""``depth-ros infer --pose-model``: the pose node's visual odometry written offline.

The pose model (test/posenet_onnx.py) maps the six input channels' means linearly to a motion,
so every frame pair gives its own motion and the trajectory checks below would fail with a
wrong pairing, order, preprocess, convention or integration.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from depth_ros.cli import main
from depth_ros.core.rotation import matrix_to_quaternion
from depth_ros.inference.backend import create_backend
from depth_ros.pose_pipeline import PoseConfig, PosePipeline
from depth_ros.synthetic import SynthConfig, render_sequence

from posenet_onnx import odometry_test_files

SYNTH = SynthConfig(width=64, height=48, frames=6, texture_size_px=64, lidar_beams=0, seed=5)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return odometry_test_files(tmp_path_factory.mktemp("infer_pose"), SYNTH)


def _run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    code = main(["infer", *[str(a) for a in argv], "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def _odometry(path: Path, topic: str = "/camera/odom") -> list[Any]:
    with AnyReader([path]) as reader:
        return [reader.deserialize(d, c.msgtype) for c, _, d in reader.messages() if c.topic == topic]


def test_odometry_is_the_pose_pipeline_on_the_rendered_frames(files: dict[str, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.mcap"
    code, stdout, _ = _run(capsys, files["bag"], "-o", out, "--model", files["depth"], "--pose-model", files["pose"], "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["frames_out"] == SYNTH.frames
    assert summary["pose_model"] == "pose_linear" and summary["odometry_out"] == SYNTH.frames
    assert summary["odometry_resets"] == 0 and "/camera/odom" in summary["output_topics"]
    assert summary["timing_s"]["pose"] > 0
    msgs = _odometry(out)
    assert len(msgs) == SYNTH.frames
    assert {(m.header.frame_id, m.child_frame_id) for m in msgs} == {("odom", "camera_optical_frame")}

    # the same frames straight from the renderer through PosePipeline
    pipeline = PosePipeline(create_backend(files["pose"], backend="auto"), PoseConfig())  # infer's pick
    steps = [pipeline.process(f.stamp_ns, f.rgb, f.camera) for f in render_sequence(SYNTH)]
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in msgs] == [s.stamp_ns for s in steps]
    for msg, step in zip(msgs, steps):
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        np.testing.assert_allclose([p.x, p.y, p.z], step.T_odom_cam[:3, 3], atol=1e-9)
        np.testing.assert_allclose([q.x, q.y, q.z, q.w], matrix_to_quaternion(step.T_odom_cam[:3, :3]), atol=1e-9)
        fields = step.odometry()
        tw = msg.twist.twist
        np.testing.assert_allclose([tw.linear.x, tw.linear.y, tw.linear.z], fields.linear_mps, atol=1e-9)
    # b moves 0.05 m forward per frame and the image-driven part varies: the camera went forward,
    # not by exactly 0.05 m a frame
    z = np.array([m.pose.pose.position.z for m in msgs])
    steps_z = np.diff(z)
    assert z[0] == 0.0 and np.all(steps_z > 0) and np.ptp(steps_z) > 1e-4


def test_a_short_max_gap_restarts_the_odometry_at_every_frame(files: dict[str, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.mcap"
    period_s = (SYNTH.stamp_ns(1) - SYNTH.stamp_ns(0)) * 1e-9
    code, stdout, _ = _run(capsys, files["bag"], "-o", out, "--model", files["depth"], "--pose-model", files["pose"],
                           "--pose-max-gap", period_s / 2, "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["odometry_resets"] == SYNTH.frames - 1
    assert all(m.pose.pose.position.z == 0.0 and m.twist.twist.linear.z == 0.0 for m in _odometry(out))


def test_without_a_pose_model_there_is_no_odometry(files: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.mcap"
    code, stdout, _ = _run(capsys, files["bag"], "-o", out, "--model", files["depth"], "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["pose_model"] == "" and "pose" not in summary["timing_s"]
    assert not any(t.endswith("/odom") for t in summary["output_topics"]) and _odometry(out) == []


@pytest.mark.parametrize(
    ("pose", "match"),
    [
        ("{depth}", "output_kind 'depth_metric'; depth-ros infer --pose-model needs a pose_6dof model"),
        ("{dir}/nope.onnx", "pose model file {dir}/nope.onnx does not exist"),
    ],
)
def test_a_bad_pose_model_is_one_line_and_exit_1(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 pose: str, match: str) -> None:
    names = {**files, "dir": tmp_path}
    out = tmp_path / "o.mcap"
    code, stdout, err = _run(capsys, files["bag"], "-o", out, "--model", files["depth"], "--pose-model", pose.format(**names))
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("INFO", "WARNING"))]
    assert code == 1 and stdout == "" and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("depth-ros infer: error: ") and match.format(**names) in lines[0], err
    assert not out.exists()
