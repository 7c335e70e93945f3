"""Depth (and optionally visual odometry) from one camera.

    ros2 launch depth_ros depth.launch.py model:=/path/model.onnx \
        image_topic:=/camera/image_raw camera_info_topic:=/camera/camera_info \
        [use_pose:=true pose_model:=/path/pose.onnx] [namespace:=front] \
        [image_transport:=compressed] [sparse_points_topic:=/lidar/points_in_camera] [lifecycle:=true]

Parameters: the ``model``, ``pose_model`` and ``backend`` arguments set model_path / backend;
``params_file`` (default: the package's config/depth.yaml) sets the rest and, if it names
model_path, backend or image_transport itself, wins over the arguments. When a node exits (a
bad model, a crash) the whole launch is shut down, so a supervisor sees the failure. Topics and parameters: see
depth_ros/ros/depth_node.py and pose_node.py. Without a ROS install, the same set-up is
``depth-ros run --config config/depth.yaml --model ...`` (same names).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
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
    depth_remappings = remappings + [("sparse_points", LaunchConfiguration("sparse_points_topic"))]
    image_transport = LaunchConfiguration("image_transport")
    lifecycle = LaunchConfiguration("lifecycle")

    def node_arguments(name, model, node_remappings):
        """Everything but the executable and the condition: the node's name, parameters, remappings."""
        return dict(
            name=name,
            namespace=namespace,
            # Later entries win: the params file may override the arguments.
            parameters=[
                {"model_path": model, "backend": LaunchConfiguration("backend"),
                 "image_transport": image_transport, "use_sim_time": use_sim_time},
                params_file,
            ],
            remappings=node_remappings,
            output="screen",
            on_exit=Shutdown(reason=f"{name} exited"),
        )

    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes and their outputs"),
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/image_raw",
            description="camera image (sensor_msgs/Image; '<image_topic>/compressed' with image_transport: compressed)"),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="/camera/camera_info",
            description="camera intrinsics (sensor_msgs/CameraInfo) with the images' stamps"),
        DeclareLaunchArgument(
            "image_transport", default_value="raw",
            description="raw: subscribe image_topic (sensor_msgs/Image); compressed: '<image_topic>/compressed' (CompressedImage)"),
        DeclareLaunchArgument(
            "sparse_points_topic", default_value="sparse_points",
            description="PointCloud2 in the camera optical frame for scale_policy: sparse_alignment"),
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
        DeclareLaunchArgument(
            "lifecycle", default_value="false",
            description="run the depth node as a managed (lifecycle) node: it loads the model on 'configure' and "
                        "subscribes on 'activate' (a lifecycle manager or `ros2 lifecycle set` drives it)"),
        Node(package="depth_ros", executable="depth_node", condition=UnlessCondition(lifecycle),
             **node_arguments("depth_node", LaunchConfiguration("model"), depth_remappings)),
        # the same node, managed (depth_ros/ros/lifecycle.py)
        LifecycleNode(package="depth_ros", executable="depth_lifecycle_node", condition=IfCondition(lifecycle),
                      **node_arguments("depth_node", LaunchConfiguration("model"), depth_remappings)),
        Node(package="depth_ros", executable="pose_node", condition=IfCondition(LaunchConfiguration("use_pose")),
             **node_arguments("pose_node", LaunchConfiguration("pose_model"), remappings)),
    ])
