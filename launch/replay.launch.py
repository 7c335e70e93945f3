"""Replay a recorded bag into the depth (and pose) nodes, on the bag's clock.

    ros2 launch depth_ros replay.launch.py bag:=/path/run.mcap model:=/path/model.onnx [rate:=1.0] [loop:=true] \
        [image_transport:=compressed] [sparse_points_topic:=/lidar/points_in_camera]

The bag is played by the package's ``play`` executable (the same code as ``depth-ros play``:
rosbags reads MCAP and sqlite3 bags, /clock is published), and the nodes run with
use_sim_time. The topic arguments default to the layout written by ``depth-ros synth``; with
``image_transport:=compressed`` the bag's ``<image_topic>/compressed`` is played and the nodes
subscribe to it.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    bag = LaunchConfiguration("bag")
    rate = LaunchConfiguration("rate")
    transport = LaunchConfiguration("image_transport")
    # the topic the nodes read: <image_topic> (raw) or <image_topic>/compressed
    played_image = [LaunchConfiguration("image_topic"),
                    PythonExpression(["'/compressed' if '", transport, "' == 'compressed' else ''"])]
    sparse = LaunchConfiguration("sparse_points_topic")
    # the LiDAR topic is played when the bag has it (scale_policy: sparse_alignment), else skipped
    play_args = [bag, "--clock", "--rate", rate, "--topics", played_image, LaunchConfiguration("camera_info_topic"),
                 "--optional-topics", sparse]
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="rosbag2 to replay: .mcap, .db3 or bag directory"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback speed factor"),
        DeclareLaunchArgument("loop", default_value="false", description="replay until stopped"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw", description="image topic in the bag"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info", description="camera_info topic in the bag"),
        DeclareLaunchArgument(
            "image_transport", default_value="raw",
            description="raw: play and read image_topic; compressed: '<image_topic>/compressed' (CompressedImage)"),
        DeclareLaunchArgument(
            "sparse_points_topic", default_value="sparse_points",
            description="PointCloud2 in the camera optical frame (scale_policy: sparse_alignment); played when the bag has it"),
        DeclareLaunchArgument("model", default_value="", description="depth model (.onnx or torch checkpoint)"),
        DeclareLaunchArgument("pose_model", default_value="", description="pose_6dof model (with use_pose)"),
        DeclareLaunchArgument("use_pose", default_value="false", description="also run the visual-odometry node"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([FindPackageShare("depth_ros"), "config", "depth.yaml"]),
            description="ROS 2 params file for depth_node and pose_node"),
        Node(package="depth_ros", executable="play", name="play", arguments=play_args,
             output="screen", condition=UnlessCondition(LaunchConfiguration("loop"))),
        Node(package="depth_ros", executable="play", name="play", arguments=play_args + ["--loop"],
             output="screen", condition=IfCondition(LaunchConfiguration("loop"))),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("depth_ros"), "launch", "depth.launch.py"])),
            launch_arguments={
                "namespace": LaunchConfiguration("namespace"),
                "image_topic": LaunchConfiguration("image_topic"),
                "camera_info_topic": LaunchConfiguration("camera_info_topic"),
                "image_transport": transport,
                "sparse_points_topic": sparse,
                "model": LaunchConfiguration("model"),
                "pose_model": LaunchConfiguration("pose_model"),
                "use_pose": LaunchConfiguration("use_pose"),
                "params_file": LaunchConfiguration("params_file"),
                "use_sim_time": "true",
            }.items(),
        ),
    ])
