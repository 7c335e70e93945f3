"""depth_ros.pose_pipeline: the pose node's per-frame step, ROS-free, against hand-computed poses."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.errors import ModelError
from depth_ros.inference.spec import ModelSpec
from depth_ros.pipeline import FrameRefused
from depth_ros.pose_pipeline import PoseConfig, PosePipeline, check_pose_kind

CAM = CameraModel(32, 24, np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]]))
S = 1_000_000_000


class ScriptedPose:
    """A pose backend returning the scripted vectors in turn; records its inputs."""

    name = "scripted"

    def __init__(self, vectors: list[list[float]], convention: str = "T_src_tgt") -> None:
        self.spec = ModelSpec(output_kind="pose_6dof", input_height=12, input_width=16, input_channels=6,
                              output_name="pose", name="scripted", metric=True, pose_convention=convention)
        self.vectors = list(vectors)
        self.inputs: list[np.ndarray] = []

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.inputs.append(x.copy())
        return {"pose": np.array([self.vectors.pop(0)], np.float32)}


def _frame(value: int) -> np.ndarray:
    return np.full((CAM.height, CAM.width, 3), value, np.uint8)


def test_defaults_are_the_pose_nodes() -> None:
    from depth_ros.ros.params import PoseNodeConfig

    node = PoseNodeConfig()
    for f in dataclasses.fields(PoseConfig):
        assert getattr(PoseConfig(), f.name) == getattr(node, f.name), f.name


def test_chained_poses_and_twist_by_hand() -> None:
    a = 0.1  # rad about the optical y axis (a yaw for the robot), then 0.2 m forward
    backend = ScriptedPose([[0, a, 0, 0, 0, 0.2], [0, 0, 0, 0.1, 0, 0]])
    pose = PosePipeline(backend)
    first = pose.process(0, _frame(10), CAM)
    assert first.reset == "first frame" and np.array_equal(first.T_odom_cam, np.eye(4)) and backend.inputs == []
    second = pose.process(S // 10, _frame(20), CAM)
    assert second.reset is None and second.dt_s == pytest.approx(0.1)
    # the network saw [current, previous]: target channels brighter than source ones
    x = backend.inputs[0]
    assert x.shape == (1, 6, 12, 16) and x[0, :3].mean() > x[0, 3:].mean()
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    np.testing.assert_allclose(second.T_odom_cam[:3, :3], R, atol=1e-7)
    np.testing.assert_allclose(second.T_odom_cam[:3, 3], [0, 0, 0.2], atol=1e-7)
    fields = second.odometry()
    np.testing.assert_allclose(fields.linear_mps, R.T @ [0, 0, 0.2] / 0.1, atol=1e-6)
    np.testing.assert_allclose(fields.angular_radps, [0, a / 0.1, 0], atol=1e-6)
    np.testing.assert_allclose(fields.orientation_xyzw, [0, np.sin(a / 2), 0, np.cos(a / 2)], atol=1e-7)
    third = pose.process(2 * S // 10, _frame(30), CAM)
    # T_odom_2 = T_odom_1 @ T_1_2: the 0.1 m along the camera's own x is rotated by R
    np.testing.assert_allclose(third.T_odom_cam[:3, 3], np.array([0, 0, 0.2]) + R @ [0.1, 0, 0], atol=1e-7)
    assert first.odometry().linear_mps.tolist() == [0, 0, 0]


def test_the_other_convention_is_inverted() -> None:
    pose = PosePipeline(ScriptedPose([[0, 0, 0, 0, 0, 0.3]], convention="T_tgt_src"))
    pose.process(0, _frame(0), CAM)
    np.testing.assert_allclose(pose.process(S // 10, _frame(0), CAM).T_odom_cam[:3, 3], [0, 0, -0.3], atol=1e-7)


def test_resets_gap_stamp_back_and_camera_change() -> None:
    pose = PosePipeline(ScriptedPose([[0, 0, 0, 0, 0, 0.1]] * 4), PoseConfig(max_gap_s=0.5))
    pose.process(0, _frame(0), CAM)
    assert pose.process(S // 10, _frame(0), CAM).T_odom_cam[2, 3] == pytest.approx(0.1)
    gap = pose.process(S, _frame(0), CAM)
    assert gap.reset == "gap of 0.900 s > max_gap_s" and gap.T_odom_cam[2, 3] == 0.0
    assert pose.process(S // 2, _frame(0), CAM).reset == "stamp went back by 0.500 s"
    other = CameraModel(32, 24, CAM.K * np.array([[2.0], [2.0], [1.0]]))
    assert pose.process(S // 2 + S // 10, _frame(0), other).reset.startswith("camera changed: 32x24 fx 30 ")
    assert pose.tracker.resets == 4


def test_a_bad_output_is_refused_and_the_track_kept() -> None:
    pose = PosePipeline(ScriptedPose([[0, 0, 0, 0, 0, float("nan")], [0, 0, 0, 0, 0, 0.1]]))
    pose.process(0, _frame(0), CAM)
    with pytest.raises(FrameRefused, match=r"pose output must be 6 finite numbers") as refused:
        pose.process(S // 10, _frame(0), CAM)
    assert refused.value.reason == "non_finite_output"
    # the next frame pairs with the last good one (stamp 0): dt 0.2 s
    step = pose.process(2 * S // 10, _frame(0), CAM)
    assert step.reset is None and step.dt_s == pytest.approx(0.2) and step.T_odom_cam[2, 3] == pytest.approx(0.1)


def test_a_depth_model_is_refused_in_one_line() -> None:
    spec = ModelSpec(output_kind="depth_metric", input_height=8, input_width=8, name="plane")
    with pytest.raises(ModelError, match=r"^plane: output_kind 'depth_metric'; the pose node needs a pose_6dof model$"):
        check_pose_kind(spec, "the pose node")

    class DepthBackend:
        name = "d"

    DepthBackend.spec = spec
    with pytest.raises(ModelError, match="needs a pose_6dof model"):
        PosePipeline(DepthBackend())  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [{"max_gap_s": -1.0}, {"max_gap_s": float("nan")}, {"odom_frame": ""}])
def test_config_is_checked(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PoseConfig(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_rectify_follows_the_config(mode: str) -> None:
    """``rectify: auto`` undistorts a camera with a non-zero D (its rectified camera has no D);
    ``off`` takes the images as already rectified: the frame passes unchanged, D is dropped."""
    distorted = CameraModel(CAM.width, CAM.height, CAM.K, D=np.array([-0.2, 0.05, 0.0, 0.0, 0.0]))
    rgb = np.random.default_rng(0).integers(0, 255, (CAM.height, CAM.width, 3), dtype=np.uint8)
    pose = PosePipeline(ScriptedPose([]), PoseConfig(rectify=mode))
    out, camera = pose.rectify(rgb, distorted)
    assert camera.D.size == 0
    if mode == "off":
        assert out is rgb and np.array_equal(camera.K, CAM.K)
    else:
        assert out.shape == rgb.shape and not np.array_equal(out, rgb)


def test_bad_rectify_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="rectify must be one of auto, off, got 'on'"):
        PoseConfig(rectify="on")
