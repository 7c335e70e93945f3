"""Small rosbag2 files for training tests: synthetic frames -> the `depth-ros synth` layout,
with switches to leave topics out (error-path tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_ros.bag.writer import BagWriter
from depth_ros.core.rotation import matrix_to_quaternion
from depth_ros.synthetic import SynthConfig, render_sequence


def _rot_to_quat(R: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix."""
    return tuple(float(v) for v in matrix_to_quaternion(R))  # type: ignore[return-value]


def write_test_bag(
    path: Path,
    config: SynthConfig,
    camera_info: bool = True,
    odometry: bool = True,
    tf_static: bool = True,
    gt_depth: bool = True,
    compressed: bool = False,
) -> Path:
    """Render ``config`` and write /camera/image_raw (or /compressed), /camera/camera_info,
    /camera/depth/ground_truth, /odom and /tf_static (each optional)."""
    from rosbags.typesys import Stores, get_typestore

    from depth_ros.msgconv import depth_image_fields

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    Time, Header = T["builtin_interfaces/msg/Time"], T["std_msgs/msg/Header"]
    image_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    with BagWriter(path, typestore=ts, overwrite=True) as w:
        w.add_topic(image_topic, "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image")
        if camera_info:
            w.add_topic("/camera/camera_info", "sensor_msgs/msg/CameraInfo")
        if gt_depth:
            w.add_topic("/camera/depth/ground_truth", "sensor_msgs/msg/Image")
        if odometry:
            w.add_topic("/odom", "nav_msgs/msg/Odometry")
        if tf_static:
            w.add_topic("/tf_static", "tf2_msgs/msg/TFMessage")
        T_base_cam = None
        for f in render_sequence(config):
            sec, nsec = divmod(f.stamp_ns, 1_000_000_000)
            hdr = Header(stamp=Time(sec=sec, nanosec=nsec), frame_id="camera_optical_frame")
            h, wd = f.rgb.shape[:2]
            if compressed:
                import io

                from PIL import Image as PILImage

                buf = io.BytesIO()
                PILImage.fromarray(f.rgb).save(buf, format="JPEG", quality=95)
                msg = T["sensor_msgs/msg/CompressedImage"](header=hdr, format="jpeg", data=np.frombuffer(buf.getvalue(), np.uint8))
            else:
                msg = T["sensor_msgs/msg/Image"](header=hdr, height=h, width=wd, encoding="rgb8", is_bigendian=0, step=wd * 3, data=f.rgb.reshape(-1).copy())
            w.write(image_topic, msg, f.stamp_ns)
            if camera_info:
                K = f.camera.K
                P = np.zeros(12)
                P[[0, 1, 2, 4, 5, 6, 10]] = [K[0, 0], 0, K[0, 2], K[1, 1], K[1, 2], 0, 1.0]
                RoI = T["sensor_msgs/msg/RegionOfInterest"]
                info = T["sensor_msgs/msg/CameraInfo"](
                    header=hdr, height=h, width=wd, distortion_model="plumb_bob", d=np.zeros(5),
                    k=K.reshape(-1).copy(), r=np.eye(3).reshape(-1), p=P, binning_x=0, binning_y=0,
                    roi=RoI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
                )
                w.write("/camera/camera_info", info, f.stamp_ns)
            if gt_depth:
                fields = depth_image_fields(f.depth_m, "32FC1")
                fields["data"] = np.asarray(fields["data"], dtype=np.uint8)
                w.write("/camera/depth/ground_truth", T["sensor_msgs/msg/Image"](header=hdr, **fields), f.stamp_ns)
            T_wb = f.T_world_base
            if T_base_cam is None:
                T_base_cam = np.linalg.inv(T_wb) @ f.T_world_cam
            if odometry:
                P3, Q4 = T["geometry_msgs/msg/Point"], T["geometry_msgs/msg/Quaternion"]
                q = _rot_to_quat(T_wb[:3, :3])
                pose = T["geometry_msgs/msg/PoseWithCovariance"](
                    pose=T["geometry_msgs/msg/Pose"](position=P3(x=T_wb[0, 3], y=T_wb[1, 3], z=T_wb[2, 3]), orientation=Q4(x=q[0], y=q[1], z=q[2], w=q[3])),
                    covariance=np.zeros(36),
                )
                V3 = T["geometry_msgs/msg/Vector3"]
                twist = T["geometry_msgs/msg/TwistWithCovariance"](
                    twist=T["geometry_msgs/msg/Twist"](linear=V3(x=0.0, y=0.0, z=0.0), angular=V3(x=0.0, y=0.0, z=0.0)), covariance=np.zeros(36)
                )
                odom = T["nav_msgs/msg/Odometry"](header=Header(stamp=hdr.stamp, frame_id="odom"), child_frame_id="base_link", pose=pose, twist=twist)
                w.write("/odom", odom, f.stamp_ns)
            if tf_static and f.index == 0:
                q = _rot_to_quat(T_base_cam[:3, :3])
                tf = T["geometry_msgs/msg/TransformStamped"](
                    header=Header(stamp=hdr.stamp, frame_id="base_link"),
                    child_frame_id="camera_optical_frame",
                    transform=T["geometry_msgs/msg/Transform"](
                        translation=T["geometry_msgs/msg/Vector3"](x=T_base_cam[0, 3], y=T_base_cam[1, 3], z=T_base_cam[2, 3]),
                        rotation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
                    ),
                )
                w.write("/tf_static", T["tf2_msgs/msg/TFMessage"](transforms=[tf]), f.stamp_ns)
    return path
