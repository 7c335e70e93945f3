"""A camera whose size or intrinsics change mid-stream is followed without a restart (no ROS)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel, camera_change
from depth_ros.core.pointcloud import forget_camera, make_cloud, pixel_rays
from depth_ros.inference.spec import ModelSpec
from depth_ros.ros.depth_node import DepthPipeline
from depth_ros.ros.intake import Refused
from depth_ros.ros.params import DepthNodeConfig
from depth_ros.ros.pose_node import PoseTracker

from doubles import RecordingLogger

NET_W, NET_H = 16, 12
CAM_A = CameraModel.from_intrinsics(64, 48, 50.0, 50.0, 31.5, 23.5)
CAM_B = CameraModel.from_intrinsics(96, 72, 80.0, 78.0, 50.0, 30.0)  # another size, focal and centre
S = 1_000_000_000


class PlaneBackend:
    """depth_metric double: a fronto-parallel plane at 2 m at the network resolution."""

    name = "plane"
    spec = ModelSpec(output_kind="depth_metric", input_height=NET_H, input_width=NET_W, name="plane", metric=True)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        assert x.shape == (1, 3, NET_H, NET_W)  # whatever the camera, the network sees its own size
        return {"depth": np.full((1, 1, NET_H, NET_W), 2.0, np.float32)}


def rgb(camera: CameraModel) -> np.ndarray:
    return np.full((camera.height, camera.width, 3), 100, np.uint8)


def backproject(depth_m: np.ndarray, camera: CameraModel) -> np.ndarray:
    """Hand-written ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy`` (float64)."""
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    z = depth_m.astype(np.float64)
    return np.stack([(u - camera.cx) * z / camera.fx, (v - camera.cy) * z / camera.fy, z], axis=-1)


def test_camera_change_names_old_and_new_size_and_focal() -> None:
    assert camera_change(None, CAM_A) is None
    assert camera_change(CAM_A, CameraModel.from_intrinsics(64, 48, 50.0, 50.0, 31.5, 23.5)) is None
    text = camera_change(CAM_A, CAM_B)
    assert text is not None
    old, new = text.split(" -> ")
    assert old.startswith("64x48 fx 50 fy 50 cx 31.5 cy 23.5")
    assert new.startswith("96x72 fx 80 fy 78 cx 50 cy 30")
    # same size and focal, only the distortion: still a change, and it says so
    distorted = CameraModel(64, 48, CAM_A.K, np.array([0.1, 0, 0, 0, 0]))
    assert "distortion" in camera_change(CAM_A, distorted)


def test_depth_pipeline_follows_a_camera_change_depth_and_cloud_use_the_new_intrinsics() -> None:
    pipeline = DepthPipeline(PlaneBackend(), DepthNodeConfig(model_path="m.onnx", max_range_m=10.0))
    first = pipeline.run(rgb(CAM_A), CAM_A)
    assert first.camera_change == "" and first.depth_m.shape == (48, 64)
    again = pipeline.run(rgb(CAM_A), CAM_A)
    assert again.camera_change == ""

    second = pipeline.run(rgb(CAM_B), CAM_B)
    assert second.camera_change.startswith("64x48 fx 50 ") and " -> 96x72 fx 80 " in second.camera_change
    assert second.camera == CAM_B
    assert second.depth_m.shape == (72, 96)
    np.testing.assert_allclose(second.depth_m, 2.0, atol=1e-6)
    cloud = make_cloud(second.depth_m, second.camera)
    xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1)
    assert xyz.shape == (72, 96, 3)
    np.testing.assert_allclose(xyz, backproject(second.depth_m, CAM_B), atol=1e-5)
    # ... and not through the old K (x at the right edge differs by metres-scale amounts)
    assert abs(xyz[0, -1, 0] - (CAM_B.width - 1 - CAM_A.cx) * 2.0 / CAM_A.fx) > 0.5

    # back to the first camera: another change, followed the same way
    third = pipeline.run(rgb(CAM_A), CAM_A)
    assert third.camera_change.startswith("96x72 fx 80 ") and third.depth_m.shape == (48, 64)
    cloud = make_cloud(third.depth_m, third.camera)
    np.testing.assert_allclose(np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1),
                               backproject(third.depth_m, CAM_A), atol=1e-5)


def test_follow_camera_reports_a_change_once() -> None:
    pipeline = DepthPipeline(PlaneBackend(), DepthNodeConfig(model_path="m.onnx"))
    assert pipeline.follow_camera(CAM_A) == ""
    assert pipeline.follow_camera(CAM_B) != ""
    assert pipeline.follow_camera(CAM_B) == ""  # logged once: the next frame is no change
    assert pipeline.run(rgb(CAM_B), CAM_B).camera_change == ""


def _points_in_view(camera: CameraModel, z_m: float, n: int = 40) -> np.ndarray:
    u = np.linspace(5, camera.width - 6, n)
    v = np.linspace(5, camera.height - 6, n)
    return np.stack([(u - camera.cx) * z_m / camera.fx, (v - camera.cy) * z_m / camera.fy, np.full(n, z_m)],
                    axis=-1).astype(np.float32)


def test_scale_fitted_through_the_old_camera_is_not_reused_for_the_new_one() -> None:
    config = DepthNodeConfig(model_path="m.onnx", scale_policy="sparse_alignment", max_range_m=50.0)
    pipeline = DepthPipeline(PlaneBackend(), config)
    fitted = pipeline.run(rgb(CAM_A), CAM_A, _points_in_view(CAM_A, 4.0))
    assert fitted.scale_source == "sparse_alignment"
    np.testing.assert_allclose(fitted.depth_m, 4.0, rtol=1e-4)
    held = pipeline.run(rgb(CAM_A), CAM_A, None)  # same camera, no points: the last scale is held
    assert held.scale_source == "sparse_alignment_held"
    # another camera without points: its scale is unknown, the frame is refused (not published)
    with pytest.raises(Refused, match="no metric scale") as info:
        pipeline.run(rgb(CAM_B), CAM_B, None)
    assert info.value.reason == "no metric scale"
    refit = pipeline.run(rgb(CAM_B), CAM_B, _points_in_view(CAM_B, 6.0))
    np.testing.assert_allclose(refit.depth_m, 6.0, rtol=1e-4)


def test_the_old_cameras_rays_are_released_and_the_new_ones_are_its_own() -> None:
    cam = CameraModel.from_intrinsics(40, 30, 33.0, 33.0, 19.5, 14.5)
    old_rays = pixel_rays(cam, 2)
    assert pixel_rays(cam, 1) is not None
    assert forget_camera(cam) == 2
    assert forget_camera(cam) == 0
    new_rays = pixel_rays(cam, 2)
    assert new_rays is not old_rays
    np.testing.assert_array_equal(new_rays, old_rays)
    other = CameraModel.from_intrinsics(40, 30, 66.0, 66.0, 19.5, 14.5)
    assert pixel_rays(other)[0, 0, 0] == pytest.approx((0 - 19.5) / 66.0)
    assert pixel_rays(cam)[0, 0, 0] == pytest.approx((0 - 19.5) / 33.0)


def test_pose_tracker_resets_on_a_camera_change_with_the_reason() -> None:
    tracker = PoseTracker("T_src_tgt", max_gap_ns=S)
    assert tracker.needs_reset(0, CAM_A) == "first frame"
    tracker.reset(0, CAM_A)
    tracker.step(S // 10, np.array([0, 0, 0, 0, 0, 0.1]))
    assert tracker.needs_reset(2 * S // 10, CAM_A) is None
    why = tracker.needs_reset(2 * S // 10, CAM_B)
    assert why is not None and why.startswith("camera changed: 64x48 fx 50 ") and " -> 96x72 fx 80 " in why
    tracker.reset(2 * S // 10, CAM_B)
    np.testing.assert_array_equal(tracker.T_odom_cam, np.eye(4))
    assert tracker.resets == 2
    assert tracker.needs_reset(3 * S // 10, CAM_B) is None  # the new camera chains again
    # callers that do not pass a camera keep the old behaviour
    assert tracker.needs_reset(4 * S // 10) is None


class PoseDouble:
    """pose_6dof double at a (height, width) network size: always 0.1 m along z."""

    name = "double"

    def __init__(self, height: int, width: int) -> None:
        self.spec = ModelSpec(output_kind="pose_6dof", input_height=height, input_width=width, input_channels=6,
                              name="p", metric=True, output_name="pose", pose_convention="T_src_tgt")

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"pose": np.array([[0, 0, 0, 0, 0, 0.1]], np.float32)}


def camera_pair(stamp_ns: int, cam: CameraModel, **info_fields: Any) -> tuple[Any, Any]:
    """(CameraInfo, Image) of ``cam`` (black rgb8) stamped ``stamp_ns`` in frame "cam";
    ``info_fields`` are further CameraInfo fields (distortion_model, d, p, r)."""
    from sensor_msgs.msg import CameraInfo, Image

    info = CameraInfo(width=cam.width, height=cam.height, k=[float(v) for v in cam.K.reshape(-1)], **info_fields)
    image = Image(height=cam.height, width=cam.width, encoding="rgb8", step=cam.width * 3,
                  data=bytes(cam.height * cam.width * 3))
    for msg in (info, image):
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_ns // S, stamp_ns % S
        msg.header.frame_id = "cam"
    return info, image


def feed_frames(node: Any, ns: str, pairs: list[tuple[Any, Any]], timeout_s: float = 20.0) -> None:
    """Hand each (camera_info, image) pair to the node's subscription callbacks (camera_info
    first) and wait until the node has published or skipped that frame."""
    import time

    subs = {s.topic_name: s for s in node.subscriptions}
    for i, (info, image) in enumerate(pairs):
        subs[f"{ns}/camera_info"].callback(info)
        subs[f"{ns}/image"].callback(image)
        deadline = time.monotonic() + timeout_s
        while node.frames_published + node.frames_skipped < i + 1:
            assert time.monotonic() < deadline, f"{node.get_name()}: frame {i} neither published nor skipped"
            time.sleep(0.01)


@pytest.mark.ros
def test_both_nodes_follow_a_camera_change_in_process(tmp_path: Any) -> None:
    """The real node classes, fed in-process: after a camera_info of another size and focal the
    depth node logs the change once (info) and publishes at the new size, the pose node resets
    its odometry naming the change and goes on chaining (its previous frame was of the old size)."""
    import os
    import random

    import rclpy
    from rclpy.parameter import Parameter

    from depth_ros.ros.depth_node import create_depth_node
    from depth_ros.ros.pose_node import create_pose_node

    os.environ.setdefault("ROS_LOG_DIR", str(tmp_path))

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=random.SystemRandom().randint(0, 101))
    nodes: list[Any] = []
    try:
        depth = create_depth_node(context=ctx, namespace="/cc", backend_factory=lambda c: PlaneBackend(),
                                  parameter_overrides=[Parameter("model_path", value="d.onnx")])
        pose = create_pose_node(context=ctx, namespace="/cc", backend_factory=lambda c: PoseDouble(NET_H, NET_W),
                                parameter_overrides=[Parameter("model_path", value="p.onnx")])
        nodes = [depth, pose]
        logs = {}
        for node in nodes:
            node.configure()
            logs[node.get_name()] = rec = RecordingLogger()
            node.get_logger = lambda rec=rec: rec  # the worker's log lines, recorded
            feed_frames(node, "/cc", [camera_pair(100 * S + i * S // 10, cam)
                                      for i, cam in enumerate((CAM_A, CAM_A, CAM_B, CAM_B))])
            assert (node.frames_published, node.frames_skipped) == (4, 0), rec.lines

        changes = [(level, text) for level, text in logs["depth_node"].lines if "camera changed" in text]
        assert [level for level, _ in changes] == ["info"], logs["depth_node"].lines
        assert changes[0][1].startswith("camera changed: 64x48 fx 50 ") and " -> 96x72 fx 80 " in changes[0][1]
        assert depth.pipeline.camera == CAM_B

        resets = [text for level, text in logs["pose_node"].lines if level == "warning" and "odometry reset" in text]
        assert len(resets) == 1, logs["pose_node"].lines
        assert resets[0].startswith("odometry reset: camera changed: 64x48 fx 50 ") and " -> 96x72 fx 80 " in resets[0]
        assert pose.tracker.resets == 2  # the first frame, and the camera change
        assert pose.tracker.camera == CAM_B
    finally:
        for node in nodes:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_pose_node_rectifies_a_distorted_camera(tmp_path: Any) -> None:
    """The pose node, fed in-process a camera_info with plumb_bob distortion and a P: the frames
    it chains are of the rectified camera (D empty, K from P), as the depth node's; an unknown
    distortion model with a non-zero D is refused per frame, never run as a pinhole."""
    import os
    import random

    import rclpy
    from rclpy.parameter import Parameter

    from depth_ros.ros.pose_node import create_pose_node

    os.environ.setdefault("ROS_LOG_DIR", str(tmp_path))

    P = [45.0, 0.0, 31.5, 0.0, 0.0, 45.0, 23.5, 0.0, 0.0, 0.0, 1.0, 0.0]

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=random.SystemRandom().randint(0, 101))
    node = None
    try:
        node = create_pose_node(context=ctx, namespace="/pr", backend_factory=lambda c: PoseDouble(24, 32),
                                parameter_overrides=[Parameter("model_path", value="p.onnx")])
        node.configure()
        feed_frames(node, "/pr", [camera_pair(100 * S + i * S // 10, CAM_A, distortion_model=model,
                                              d=[-0.2, 0.05, 0.0, 0.0, 0.0], p=P, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])
                                  for i, model in enumerate(("plumb_bob", "plumb_bob", "fov"))])
        assert (node.frames_published, node.frames_skipped) == (2, 1)
        cam = node.tracker.camera
        assert cam.D.size == 0 and np.allclose(cam.K, np.array(P).reshape(3, 4)[:, :3])
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)
