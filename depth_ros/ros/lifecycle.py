"""The depth node as a managed (lifecycle) node, for systems that bring nodes up in order
(``nav2_lifecycle_manager``, ``launch_ros``'s ``LifecycleNode``, ``ros2 lifecycle set``).

Same topics, parameters and frame path as :class:`~depth_ros.ros.depth_node.DepthNode`; the
transitions map onto its steps (REP 2002 / the ROS 2 managed-node design):

================  ============================================================================
``configure``     validate the parameters (already done at construction), load the model (the
                  heavy step: an ONNX session or a TensorRT engine), create the publishers
``activate``      subscribe to the camera, start /diagnostics and the worker: frames flow
``deactivate``    unsubscribe and stop the worker after the frame in progress (nothing is
                  published while inactive; the model stays loaded)
``cleanup``       drop the publishers and the model (back to unconfigured)
``shutdown``      stop everything
================  ============================================================================

A model that cannot be loaded fails ``configure`` (the node stays unconfigured and says why in
its log); the node survives any message while active, as the plain node does.

    depth-ros run --lifecycle --model m.onnx      # then: ros2 lifecycle set /depth_node configure
"""
from __future__ import annotations

import sys
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from depth_ros.errors import DepthRosError
from depth_ros.ros.depth_node import DepthNode
from depth_ros.ros.runner import node_main

__all__ = ["LifecycleDepthNode", "create_lifecycle_depth_node", "main"]


class LifecycleDepthNode(DepthNode, LifecycleNode):
    """The depth node with managed states (see the module docstring)."""

    def configure(self) -> None:
        """Nothing at start-up: the lifecycle transitions load and start (``depth-ros run`` calls
        this for every node it creates)."""

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.load_model()
        except (DepthRosError, FileNotFoundError, ValueError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.pipeline = None
            return TransitionCallbackReturn.FAILURE
        self.advertise()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.start()
        self.get_logger().info("active: subscribed to the camera")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        self.get_logger().info("inactive: unsubscribed, worker stopped")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for pub in (self.depth_pub, self.info_pub, self.cloud_pub, self.meta_pub, self.timing_pub):
            if pub is not None:  # timing_pub: only with publish_timing
                self.destroy_publisher(pub)
        self.timing_pub = None
        self.pipeline = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        return TransitionCallbackReturn.SUCCESS


def create_lifecycle_depth_node(**kwargs: Any) -> LifecycleDepthNode:
    """An unconfigured lifecycle depth node; needs ``rclpy.init``."""
    return LifecycleDepthNode(**kwargs)


#: Entry point of ``depth_lifecycle_node``: exit code 0, or 1 on a configuration error.
main = node_main("depth_lifecycle", "depth_lifecycle_node")


if __name__ == "__main__":
    sys.exit(main())
