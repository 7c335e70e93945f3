"""pip / colcon build of depth_ros.

The runtime is the ``depth_ros`` package; the offline trainer in ``training/`` installs as
``depth_ros_training`` (never as a bare ``training``). ROS 2 builds use CMakeLists.txt
(messages in msg/ need rosidl); this file serves pip installs.
"""
from setuptools import find_packages, setup

package_name = "depth_ros"

runtime_packages = find_packages(include=["depth_ros", "depth_ros.*"])
training_packages = ["depth_ros_training"] + [
    "depth_ros_training." + p for p in find_packages(where="training")
]

setup(
    name=package_name,
    version="0.1.0",
    description="Monocular metric depth for ROS 2: depth/pose nodes, bag tools, self-supervised training",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=runtime_packages + training_packages,
    package_dir={"depth_ros_training": "training"},
    package_data={"depth_ros": ["py.typed"]},
    # where a colcon install puts them too (rosidl), so bag tools find the .msg text anywhere
    data_files=[("share/depth_ros/msg", ["msg/DepthInfo.msg"])],
    install_requires=["numpy", "PyYAML", "rosbags", "mcap", "mcap-ros2-support", "onnxruntime", "tqdm", "opencv-python-headless"],
    extras_require={
        "torch": ["torch", "onnx", "onnxscript", "kornia"],
        "train": ["torch", "onnx", "onnxscript", "kornia", "lightning", "jsonargparse", "tensorboard", "matplotlib"],
        "test": ["pytest"],
        "openvino": ["openvino"],
    },
    entry_points={
        "console_scripts": [
            "depth-ros = depth_ros.cli:main",
            "depth-ros-train = depth_ros_training.cli:main",
            "depth_node = depth_ros.ros.depth_node:main",
            "depth_lifecycle_node = depth_ros.ros.lifecycle:main",
            "pose_node = depth_ros.ros.pose_node:main",
            "multi_depth_node = depth_ros.ros.multi_depth_node:main",
        ],
    },
)
