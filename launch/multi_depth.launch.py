"""Depth from several cameras with one loaded model (depth_ros/ros/multi_depth_node.py).

    ros2 launch depth_ros multi_depth.launch.py model:=/path/model.onnx cameras:="[front, rear]" \
        [namespace:=robot] [batch_cameras:=false] [backend:=onnxruntime]

Each name in ``cameras`` is a camera namespace: ``<ns>/image`` + ``<ns>/camera_info`` in,
``<ns>/depth/{image,camera_info,info,points}`` out, as the single-camera depth node. The
``params_file`` (default: the package's config/depth.yaml) sets every camera's frame parameters
(its ``depth_node`` section applies) and wins over the arguments when it names them. When the node
exits the launch is shut down. Without a ROS install: ``depth-ros run --model M.onnx --cameras
front,rear``.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    default_params = PathJoinSubstitution([FindPackageShare("depth_ros"), "config", "depth.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node; relative camera namespaces are under it"),
        DeclareLaunchArgument("cameras", default_value="[camera]", description="camera namespaces as a YAML list, e.g. '[front, rear]'"),
        DeclareLaunchArgument("model", default_value="", description="depth model: .onnx (spec embedded or YAML sidecar) or torch checkpoint"),
        DeclareLaunchArgument("backend", default_value="auto", description="inference backend: auto, tensorrt, onnxruntime, onnxruntime-cpu, torch"),
        DeclareLaunchArgument("batch_cameras", default_value="true", description="one network call for the cameras' frames (batch axis)"),
        DeclareLaunchArgument("params_file", default_value=default_params, description="ROS 2 params file (its depth_node section) for every camera"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock (bag replay)"),
        Node(
            package="depth_ros", executable="multi_depth_node", name="depth_node",
            namespace=LaunchConfiguration("namespace"),
            # Later entries win: the params file may override the arguments.
            parameters=[
                {"model_path": LaunchConfiguration("model"), "backend": LaunchConfiguration("backend"),
                 "cameras": LaunchConfiguration("cameras"), "batch_cameras": LaunchConfiguration("batch_cameras"),
                 "use_sim_time": LaunchConfiguration("use_sim_time")},
                LaunchConfiguration("params_file"),
            ],
            output="screen",
            on_exit=Shutdown(reason="multi_depth_node exited"),
        ),
    ])
