"""rosbag2 tools: reading (MCAP / sqlite3), atomic MCAP writing, bag-to-bag inference.

Modules: :mod:`~depth_ros.bag.reader` (open bags, choose camera topics),
:mod:`~depth_ros.bag.writer` (atomic storage files), :mod:`~depth_ros.bag.mcap_writer`
(streaming MCAP), :mod:`~depth_ros.bag.sync` (image / camera_info / LiDAR pairing),
:mod:`~depth_ros.bag.tf` (static transforms), :mod:`~depth_ros.bag.typestore` (ROS 2 types +
depth_ros messages), :mod:`~depth_ros.bag.infer` and :mod:`~depth_ros.bag.infer_cli`
(``depth-ros infer``). Nothing is imported here, so ``import depth_ros.bag.x`` stays light.
"""
