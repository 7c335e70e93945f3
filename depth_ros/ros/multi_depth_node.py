"""Several cameras, one model: a depth node per camera namespace, one backend for all.

Each name in the ``cameras`` parameter is a camera namespace (relative to this node's
namespace, or absolute). For each one a depth node (:class:`~depth_ros.ros.depth_node.DepthNode`,
``<ns>/depth_node``) subscribes ``<ns>/image`` + ``<ns>/camera_info`` and publishes
``<ns>/depth/image``, ``<ns>/depth/camera_info``, ``<ns>/depth/info`` and ``<ns>/depth/points``
exactly as the single-camera node does: the same frame pipeline and message builder, its own
pipeline state (camera, scale smoothing, sparse alignment hold), its own newest-frame slot
(drop-newest policy), counters, parameters and ``/diagnostics`` status. The model is loaded
once: the camera nodes share it through a :class:`~depth_ros.inference.batching.FrameBatcher`,
which runs the frames the cameras have in progress in one backend call when the model has a batch
axis (``batch_cameras``), else one call per camera in turn.

Parameters: ``cameras`` (string array, required, read-only), ``batch_cameras`` (bool,
read-only, default true), ``batch_max_wait_ms`` (float, read-only); every other parameter given to
this node (params file section ``depth_node``, ``-p``) is a
:class:`~depth_ros.ros.params.DepthNodeConfig` parameter and goes to every camera node (change it
at run time per camera: ``ros2 param set /<ns>/depth_node ...``). Global remaps do not reach
the camera nodes: the namespaces name their topics.

Start: ``depth-ros run --model M.onnx --cameras front,rear``, ``ros2 launch depth_ros
multi_depth.launch.py cameras:="[front, rear]" model_path:=M.onnx`` or ``python -m
depth_ros.ros.multi_depth_node --ros-args -p model_path:=M.onnx -p cameras:="[front, rear]"``.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Callable

from rclpy.node import Node

from depth_ros.config_fields import ParameterError
from depth_ros.inference.batching import BatchConfig, FrameBatcher
from depth_ros.ros.depth_node import DepthNode, default_backend_factory
from depth_ros.ros.intake import FrameWorker
from depth_ros.ros.params import DepthNodeConfig, config_from_mapping
from depth_ros.ros.runner import node_main
from depth_ros.ros.sync import Pair

__all__ = ["CameraDepthNode", "MultiCameraConfig", "MultiDepthNode", "create_multi_depth_node", "main"]

# a ROS name token per level: letters, digits, underscores, not starting with a digit
_NAMESPACE = re.compile(r"^/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_CAMERAS = 16


@dataclass(frozen=True)
class MultiCameraConfig:
    """The multi-camera node's own parameters.

    Attributes:
        cameras: camera namespaces (relative to the node's namespace, or absolute), one depth
            output set each; unique, at most 16.
        batch: the batcher's config (``batch_cameras``, ``batch_max_wait_ms``).
    """

    cameras: tuple[str, ...]
    batch: BatchConfig = BatchConfig()

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ParameterError("parameter 'cameras': not set (camera namespaces, e.g. [front, rear])")
        if len(self.cameras) > MAX_CAMERAS:
            raise ParameterError(f"parameter 'cameras': {len(self.cameras)} namespaces, at most {MAX_CAMERAS}")
        for name in self.cameras:
            if not isinstance(name, str) or not _NAMESPACE.match(name):
                raise ParameterError(f"parameter 'cameras': {name!r} is not a ROS namespace (letters, digits, _ and /)")
        if len(set(self.cameras)) != len(self.cameras):
            raise ParameterError(f"parameter 'cameras': a namespace is given twice in {list(self.cameras)}")

    def namespace_of(self, camera: str, node_namespace: str) -> str:
        """The absolute namespace of ``camera`` for a node in ``node_namespace``."""
        if camera.startswith("/"):
            return camera
        return f"{node_namespace.rstrip('/')}/{camera}"


#: This node's own parameters (the rest go to the camera nodes).
OWN_PARAMETERS = ("cameras", "batch_cameras", "batch_max_wait_ms")


class CameraDepthNode(DepthNode):
    """The depth node of one camera, its model shared through ``batcher``: each frame takes part
    in the batcher's gathering (:meth:`FrameBatcher.taking_part`) from the moment the worker
    takes it."""

    def __init__(self, batcher: FrameBatcher, **node_kwargs: Any) -> None:
        super().__init__("depth_node", backend_factory=lambda _config: batcher, **node_kwargs)
        self._batcher = batcher

    def _process(self, pair: Pair) -> None:
        with self._batcher.taking_part():
            super()._process(pair)


class MultiDepthNode(Node):
    """Serves every namespace of ``cameras`` with one backend; see the module docstring.

    Args:
        node_name: this node's name; ``depth_node`` by default, so that a params file's
            ``depth_node`` section (config/depth.yaml) configures the camera nodes.
        backend_factory: DepthNodeConfig -> backend (tests); default: create_backend.

    Attributes:
        cameras: namespace -> its :class:`CameraDepthNode` (after :meth:`configure`).
        batcher: the shared backend (after :meth:`configure`).
    """

    def __init__(self, node_name: str = "depth_node", *,
                 backend_factory: Callable[[DepthNodeConfig], Any] | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.multi_config = self._declare_own()
        overrides: dict[str, Any] = dict(getattr(self, "_parameter_overrides", {}))
        self._camera_overrides = [p for name, p in overrides.items() if name not in OWN_PARAMETERS]
        self._backend_factory = backend_factory or default_backend_factory
        self.cameras: dict[str, CameraDepthNode] = {}
        self.batcher: FrameBatcher | None = None

    def _declare_own(self) -> MultiCameraConfig:
        from rcl_interfaces.msg import ParameterDescriptor, ParameterType

        def declare(name: str, default: Any, kind: int, text: str) -> Any:
            descriptor = ParameterDescriptor(name=name, type=kind, description=text, read_only=True)
            try:
                return self.declare_parameter(name, default, descriptor).value
            except Exception as exc:  # rclpy's InvalidParameterTypeException & co
                raise ParameterError(f"parameter '{name}': {exc}") from None

        defaults = BatchConfig()
        cameras = declare("cameras", [""], ParameterType.PARAMETER_STRING_ARRAY,
                          "camera namespaces served (relative or absolute), one depth output set each")
        enabled = declare("batch_cameras", defaults.enabled, ParameterType.PARAMETER_BOOL,
                          "run the cameras' newest frames in one backend call where the model has a batch axis")
        wait = declare("batch_max_wait_ms", defaults.max_wait_ms, ParameterType.PARAMETER_DOUBLE,
                       "longest a frame waits (ms) for the other cameras' frames before its batch runs")
        try:
            batch = BatchConfig(enabled=enabled, max_wait_ms=wait)
        except ValueError as exc:
            raise ParameterError(f"parameter 'batch_*': {exc}") from None
        return MultiCameraConfig(cameras=tuple(c for c in cameras if c), batch=batch)

    @property
    def child_nodes(self) -> tuple[Node, ...]:
        """The camera nodes (the runner adds them to its executor)."""
        return tuple(self.cameras.values())

    def configure(self) -> None:
        """Load the model once, then create and start a depth node per camera.

        Raises:
            ParameterError: a depth parameter is unknown or invalid, or model_path is unset.
            ModelError, BackendError, FileNotFoundError: the model cannot be loaded.
        """
        values = {p.name: p.value for p in self._camera_overrides}
        config = config_from_mapping(DepthNodeConfig, values, source="parameters")
        if not config.model_path:
            raise ParameterError("parameter 'model_path': not set (path of an .onnx model or torch checkpoint)")
        self.batcher = FrameBatcher(self._backend_factory(config), self.multi_config.batch)
        self.get_logger().info(
            f"{len(self.multi_config.cameras)} cameras, one model on {self.batcher.name}: "
            + ("one call per camera" if self.batcher.max_batch == 1 else
               f"batches of up to {self.batcher.max_batch or len(self.multi_config.cameras)} frames"))
        for camera in self.multi_config.cameras:
            namespace = self.multi_config.namespace_of(camera, self.get_namespace())
            node = CameraDepthNode(self.batcher, namespace=namespace, context=self.context,
                                   parameter_overrides=list(self._camera_overrides), use_global_arguments=False)
            self.cameras[namespace] = node
            node.configure()

    def shutdown(self) -> None:
        """Stop every camera's worker (after the frame in progress); log the batching done."""
        for node in self.cameras.values():
            node.shutdown()
        batcher = self.batcher
        if batcher is not None and batcher.backend_calls:
            text = (f"{batcher.frames} frames in {batcher.backend_calls} backend calls "
                    f"(mean batch {batcher.frames / batcher.backend_calls:.2f})")
            if FrameWorker._context_ok(self):  # type: ignore[arg-type]  # reads only self.context
                self.get_logger().info(text)
            else:  # after Ctrl-C rosout is gone
                print(f"[{self.get_name()}] {text}", file=sys.stderr, flush=True)

    def destroy_node(self) -> None:
        for node in self.cameras.values():
            node.destroy_node()
        self.cameras.clear()
        super().destroy_node()


def create_multi_depth_node(**kwargs: Any) -> MultiDepthNode:
    """A multi-camera node, not yet :meth:`~MultiDepthNode.configure`-d; needs ``rclpy.init``."""
    return MultiDepthNode(**kwargs)


#: Entry point of ``multi_depth_node``: exit code 0, or 1 on a configuration error.
main = node_main("multi_depth", "multi_depth_node")


if __name__ == "__main__":
    sys.exit(main())
