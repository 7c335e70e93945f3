"""Depth (and optionally visual odometry) from one camera.

    ros2 launch depth_ros depth.launch.py model:=/path/model.onnx \
        image_topic:=/camera/image_raw camera_info_topic:=/camera/camera_info \
        [use_pose:=true pose_model:=/path/pose.onnx] [namespace:=front]

Parameters: the ``model``, ``pose_model`` and ``backend`` arguments set model_path / backend;
``params_file`` (default: the package's config/depth.yaml) sets the rest and, if it names
model_path or backend itself, wins over the arguments. Topics and parameters: see
depth_ros/ros/depth_node.py and pose_node.py. Without a ROS install, the same set-up is
``depth-ros run --config config/depth.yaml --model ...`` (same names).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    namespace = LaunchConfiguration("namespace")
    image_topic = LaunchConfiguration("image_topic")
    params_file = LaunchConfiguration("params_file")
    use_sim_time = LaunchConfiguration("use_sim_time")
    remappings = [
        ("image", image_topic),
        ("image/compressed", [image_topic, "/compressed"]),
        ("camera_info", LaunchConfiguration("camera_info_topic")),
    ]
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes and their outputs"),
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/image_raw",
            description="camera image (sensor_msgs/Image; '<image_topic>/compressed' with image_transport: compressed)"),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="/camera/camera_info",
            description="camera intrinsics (sensor_msgs/CameraInfo) with the images' stamps"),
        DeclareLaunchArgument("model", default_value="", description="depth model: .onnx (spec embedded or YAML sidecar) or torch checkpoint"),
        DeclareLaunchArgument("pose_model", default_value="", description="pose_6dof model for the visual-odometry node"),
        DeclareLaunchArgument(
            "backend", default_value="auto",
            description="inference backend: auto, tensorrt, onnxruntime, onnxruntime-cpu, onnxruntime-cuda, torch"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([FindPackageShare("depth_ros"), "config", "depth.yaml"]),
            description="ROS 2 params file for depth_node and pose_node"),
        DeclareLaunchArgument("use_pose", default_value="false", description="also run the visual-odometry node (pose_node)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock (bag replay)"),
        Node(
            package="depth_ros",
            executable="depth_node",
            name="depth_node",
            namespace=namespace,
            # Later entries win: the params file may override the arguments.
            parameters=[
                {"model_path": LaunchConfiguration("model"), "backend": LaunchConfiguration("backend"), "use_sim_time": use_sim_time},
                params_file,
            ],
            remappings=remappings,
            output="screen",
        ),
        Node(
            package="depth_ros",
            executable="pose_node",
            name="pose_node",
            namespace=namespace,
            parameters=[
                {"model_path": LaunchConfiguration("pose_model"), "backend": LaunchConfiguration("backend"), "use_sim_time": use_sim_time},
                params_file,
            ],
            remappings=remappings,
            output="screen",
            condition=IfCondition(LaunchConfiguration("use_pose")),
        ),
    ])
