"""``depth-ros run``: the depth (and pose) nodes in one process, for pip installs.

    depth-ros run --config config/depth.yaml [--model M] [--pose-model P] [--use-pose]
                  [--namespace NS] [--image-topic T] [--camera-info-topic T] [--backend B]
                  [--cameras NS1,NS2,... [--no-batch]] [--ros-args ...]

The options have the names of depth.launch.py's arguments. ``--config`` is a ROS 2 params
file (sections ``/**/depth_node`` and ``/**/pose_node`` with ``ros__parameters``); it is
checked against the nodes' config dataclasses before anything starts, so a typo or bad value
is reported (exit code 1) naming the parameter. The nodes share a SingleThreadedExecutor (their
callbacks never block; each node's work runs in its own worker thread); Ctrl-C shuts them down
cleanly (exit code 0). ``--cameras`` runs the multi-camera node instead
(:mod:`depth_ros.ros.multi_depth_node`: one depth output set per camera namespace, one model,
the cameras' frames batched where the model has a batch axis), with the same depth options.

:func:`run_nodes` is also the body of the node executables (``depth_node``,
``depth_lifecycle_node``, ``pose_node``, ``multi_depth_node``); :func:`node_main` makes such an entry point.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from depth_ros.errors import DepthRosError
from depth_ros.ros.params import DepthNodeConfig, ParameterError, PoseNodeConfig, config_from_mapping
from depth_ros.ros.qos import OVERRIDE_PREFIX

__all__ = ["add_arguments", "check_params_file", "node_main", "run", "run_nodes"]


NODE_NAMES = {"depth": "depth_node", "depth_lifecycle": "depth_node", "pose": "pose_node", "multi_depth": "depth_node"}
TEARDOWN_TIMEOUT_S = 10.0
SPIN_WAKE_S = 1.0  # longest wait in rcl before the main thread checks for Ctrl-C again
EXIT_TEARDOWN_HUNG = 1  # faulthandler's exit status when the teardown hung and the process ended without it
NODE_CONFIGS = {"depth_node": DepthNodeConfig, "pose_node": PoseNodeConfig}


def _node_of_key(key: str) -> str | None:
    """The node a params-file section applies to: ``depth_node``, ``/**/depth_node``,
    ``/ns/depth_node`` -> depth_node; ``/**`` -> ``*`` (all nodes)."""
    if key in ("/**", "**"):
        return "*"
    name = key.rstrip("/").rsplit("/", 1)[-1]
    return name if name in NODE_CONFIGS else None


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings of a params file as dotted names, as rcl reads them
    (``qos_overrides: {/image: {subscription: {depth: 5}}}`` -> ``qos_overrides./image.subscription.depth``)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


#: A params file holds two nodes' few dozen parameters (config/depth.yaml is ~3 KB).
MAX_PARAMS_FILE_BYTES = 1 << 20
#: node -> ros__parameters -> qos_overrides -> topic -> subscription -> policy: 6 levels.
MAX_PARAMS_NESTING = 12


def check_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Validate a ROS 2 params file against the nodes' configs.

    Returns:
        node name -> its ``ros__parameters`` (merged with ``/**`` entries).

    Raises:
        ParameterError: unreadable YAML, wrong structure, a section for an unknown node, an
            unknown parameter or an invalid value (named, with the file).
        FileNotFoundError: no such file.
    """
    from depth_ros.safeio import load_yaml_bounded, read_text_capped

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"params file not found: {path}")
    # untrusted like any config: size-capped, UTF-8, no aliases, bounded nesting
    data = load_yaml_bounded(read_text_capped(path, MAX_PARAMS_FILE_BYTES, what="params file", error=ParameterError),
                             str(path), max_nesting=MAX_PARAMS_NESTING, what="params file", error=ParameterError)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ParameterError(f"{path}: expected a mapping of node names to ros__parameters, got {type(data).__name__}")
    sections: dict[str, dict[str, Any]] = {}
    for key, section in data.items():
        node = _node_of_key(str(key))
        if node is None:
            raise ParameterError(f"{path}: section '{key}' names no depth_ros node (expected {sorted(NODE_CONFIGS)} or /**)")
        if not isinstance(section, Mapping) or set(section) != {"ros__parameters"}:
            raise ParameterError(f"{path}: section '{key}' must hold exactly one key, 'ros__parameters'")
        params = section["ros__parameters"] or {}
        if not isinstance(params, Mapping):
            raise ParameterError(f"{path}: '{key}.ros__parameters' must be a mapping")
        sections.setdefault(node, {}).update(_flatten(params))
    common = sections.pop("*", {})
    merged: dict[str, dict[str, Any]] = {}
    for node, cls in NODE_CONFIGS.items():
        values = {k: v for k, v in common.items() if k in cls.__dataclass_fields__ or k.startswith(OVERRIDE_PREFIX)}
        values.update(sections.get(node, {}))
        config_from_mapping(cls, values, source=f"{path} [{node}]")
        merged[node] = values
    return merged


#: Node kind -> (module, factory). Named, not imported: the node modules import this runner
#: for their ``main`` (the console entry points), so importing them here would be a cycle.
NODE_FACTORIES = {
    "depth": ("depth_ros.ros.depth_node", "create_depth_node"),
    "depth_lifecycle": ("depth_ros.ros.lifecycle", "create_lifecycle_depth_node"),
    "pose": ("depth_ros.ros.pose_node", "create_pose_node"),
    "multi_depth": ("depth_ros.ros.multi_depth_node", "create_multi_depth_node"),
}


def _create_node(kind: str, overrides: Mapping[str, Any]) -> Any:
    import importlib

    from rclpy.parameter import Parameter

    if kind not in NODE_FACTORIES:
        raise ValueError(f"unknown node kind {kind!r} (expected one of {sorted(NODE_NAMES)})")
    module, factory = NODE_FACTORIES[kind]
    parameter_overrides = [Parameter(k, value=v) for k, v in overrides.items()]
    return getattr(importlib.import_module(module), factory)(parameter_overrides=parameter_overrides)


def run_nodes(
    kinds: Sequence[str],
    args: Sequence[str] | None = None,
    program: str = "depth-ros run",
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    teardown_timeout_s: float = TEARDOWN_TIMEOUT_S,
) -> int:
    """Create, configure and spin nodes until Ctrl-C (or the context shuts down).

    Args:
        kinds: "depth" and/or "pose".
        args: command-line arguments for ``rclpy.init`` (None = sys.argv), may hold
            ``--ros-args ...`` (params files, remaps, ``-p``).
        program: name used in error messages.
        overrides: per node kind, parameter values that win over params files.
        teardown_timeout_s: bound on the teardown after spinning stops. Past it, every
            thread's stack goes to stderr (after ``Timeout (0:00:10)!``) and the process exits
            with ``EXIT_TEARDOWN_HUNG`` without finishing the teardown (seen in CI:
            ``destroy_node`` blocked in ``rcl`` for over 15 s, in a node whose DDS participant
            had never discovered its peers), so Ctrl-C always ends the process.

    Returns:
        0 after a clean shutdown; 1 when a parameter, the params file or the model is
        invalid (the message, naming the problem, is printed to stderr).
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    try:
        rclpy.init(args=list(args) if args is not None else None)
    except RuntimeError as exc:  # rclpy's RCLError: malformed params file or arguments
        print(f"{program}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    nodes: list[Any] = []
    executor: Any = None
    try:
        try:
            for kind in kinds:
                where = NODE_NAMES.get(kind, kind)
                node = _create_node(kind, (overrides or {}).get(kind, {}))
                nodes.append(node)
                where = node.get_fully_qualified_name()
                node.configure()
        except (DepthRosError, FileNotFoundError, ValueError) as exc:
            print(f"{program}: error: {where}: {exc}", file=sys.stderr)
            return 1
        # One executor thread: the callbacks only pair messages and fill a one-frame slot, so
        # more threads buy nothing, and rclpy's MultiThreadedExecutor spent about twice the CPU
        # per message (main thread + pool, all holding the GIL the worker needs): under a 100 Hz
        # 640x480 burst, 1.1-1.2 s of CPU per 3 s against 0.4-0.6 s, and 20-30 % fewer depth
        # frames published (bench/bench_node_latency.py's Rig driven at 100 Hz, 2 shared cores).
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
            for child in getattr(node, "child_nodes", ()):  # the multi-camera node's camera nodes
                executor.add_node(child)
        try:
            # spin() with a bounded wait: the main thread comes back to Python at least every
            # SPIN_WAKE_S, so a Ctrl-C whose wake-up of rcl_wait is lost (seen once: the main
            # thread still waiting in rcl_wait 4 s after SIGINT, rclpy's signal thread idle)
            # still raises KeyboardInterrupt here within that time.
            while executor.context.ok():
                executor.spin_once(timeout_sec=SPIN_WAKE_S)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except RuntimeError:
            # Ctrl-C shuts the context down from the signal handler; landing while the
            # executor builds its wait set, that surfaces as rclpy's RCLError ("the given
            # context is not valid") instead of ExternalShutdownException (seen in CI).
            # After a shutdown it is the same clean exit; otherwise it is a real error.
            if executor.context.ok():
                raise
        return 0
    finally:
        # A teardown that hangs prints every thread's stack to stderr and ends the process
        # (see teardown_timeout_s). faulthandler's watchdog is a C thread: it fires even when
        # the main thread is blocked inside rcl holding the GIL, where a Python timer would not.
        import faulthandler

        faulthandler.dump_traceback_later(teardown_timeout_s, exit=True)
        try:
            for node in nodes:
                try:
                    node.shutdown()
                finally:
                    node.destroy_node()
            if executor is not None:
                executor.shutdown()
            rclpy.try_shutdown()
        finally:
            faulthandler.cancel_dump_traceback_later()


# -- CLI ----------------------------------------------------------------------------------
def node_main(kind: str, program: str) -> Callable[[Sequence[str] | None], int]:
    """The console entry point of one node executable: ``main(args=None)`` runs the node of
    ``kind`` (a key of :data:`NODE_FACTORIES`) through :func:`run_nodes`, with ``program`` (the
    executable's name) in its error messages. ``main`` returns the exit code: 0 after a clean
    shutdown, 1 on a configuration error."""
    if kind not in NODE_FACTORIES:
        raise ValueError(f"unknown node kind {kind!r} (expected one of {sorted(NODE_FACTORIES)})")

    def main(args: Sequence[str] | None = None) -> int:
        return run_nodes([kind], args=args, program=program)

    main.__doc__ = f"Entry point of ``{program}``: exit code 0, or 1 on a configuration error."
    return main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "--params-file", dest="params_file", metavar="YAML",
                        help="ROS 2 params file (e.g. config/depth.yaml); checked before start")
    parser.add_argument("--model", help="depth model (sets depth_node model_path)")
    parser.add_argument("--pose-model", help="pose model (sets pose_node model_path)")
    parser.add_argument("--backend", help="inference backend for both nodes (auto, onnxruntime, tensorrt, torch, ...)")
    parser.add_argument("--use-pose", action="store_true", help="also run the visual-odometry node")
    parser.add_argument("--lifecycle", action="store_true",
                        help="run the depth node as a managed (lifecycle) node: it loads its model on 'configure' and "
                             "subscribes on 'activate' (ros2 lifecycle set /depth_node configure, then activate)")
    parser.add_argument("--namespace", default="", help="namespace of the nodes and their relative topics")
    parser.add_argument("--image-topic", default="", help="remap 'image' (and 'image/compressed') to this topic")
    parser.add_argument("--camera-info-topic", default="", help="remap 'camera_info' to this topic")
    parser.add_argument("--cameras", default="", metavar="NS1,NS2,...",
                        help="serve several camera namespaces with one model (the multi-camera node): "
                             "<ns>/image + <ns>/camera_info in, <ns>/depth/... out")
    parser.add_argument("--no-batch", action="store_true",
                        help="with --cameras: one backend call per camera even when the model has a batch axis")
    parser.add_argument("ros_args", nargs=argparse.REMAINDER,
                        help="--ros-args ... passed to ROS (remaps, -p name:=value)")


def build_ros_args(args: argparse.Namespace) -> list[str]:
    """The rclpy.init argument list for the parsed ``depth-ros run`` options."""
    ros: list[str] = []
    if args.params_file:
        ros += ["--params-file", str(args.params_file)]
    if args.namespace:
        ns = args.namespace if args.namespace.startswith("/") else "/" + args.namespace
        ros += ["-r", f"__ns:={ns}"]
    if args.image_topic:
        ros += ["-r", f"image:={args.image_topic}", "-r", f"image/compressed:={args.image_topic.rstrip('/')}/compressed"]
    if args.camera_info_topic:
        ros += ["-r", f"camera_info:={args.camera_info_topic}"]
    extra = list(args.ros_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    # `depth-ros run ... --ros-args -p a:=b` (split off by the CLI) and `... -- --ros-args ...`
    extra += list(getattr(args, "ros_argv", None) or [])[1:]
    ros += [token for token in extra if token != "--ros-args"]
    return ["depth-ros-run", "--ros-args", *ros] if ros else ["depth-ros-run"]


def run(args: argparse.Namespace) -> int:
    if args.params_file:
        check_params_file(args.params_file)  # ParameterError -> one line, exit 1
    overrides: dict[str, dict[str, Any]] = {"depth": {}, "pose": {}}
    if args.model:
        overrides["depth"]["model_path"] = str(args.model)
    if args.pose_model:
        overrides["pose"]["model_path"] = str(args.pose_model)
    if args.backend:
        overrides["depth"]["backend"] = args.backend
        overrides["pose"]["backend"] = args.backend
    for kind, cls in (("depth", DepthNodeConfig), ("pose", PoseNodeConfig)):
        for name, value in overrides[kind].items():
            config_from_mapping(cls, {name: value}, source=f"{kind} node option")
    if getattr(args, "cameras", ""):
        return _run_cameras(args, overrides["depth"])
    depth = "depth_lifecycle" if args.lifecycle else "depth"
    overrides[depth] = overrides.pop("depth")
    kinds = [depth, "pose"] if args.use_pose else [depth]
    return run_nodes(kinds, args=build_ros_args(args), program="depth-ros run", overrides=overrides)


def _run_cameras(args: argparse.Namespace, depth_overrides: dict[str, Any]) -> int:
    """``depth-ros run --cameras a,b``: the multi-camera node with the depth options."""
    cameras = [c.strip() for c in args.cameras.split(",") if c.strip()]
    single = [flag for flag, on in (("--use-pose", args.use_pose), ("--lifecycle", args.lifecycle),
                                    ("--image-topic", args.image_topic), ("--camera-info-topic", args.camera_info_topic)) if on]
    if single:
        raise ParameterError(f"--cameras: not with {', '.join(single)} (one camera's options; "
                             "the namespaces in --cameras name the topics)")
    overrides = {**depth_overrides, "cameras": cameras, "batch_cameras": not args.no_batch}
    return run_nodes(["multi_depth"], args=build_ros_args(args), program="depth-ros run", overrides={"multi_depth": overrides})
