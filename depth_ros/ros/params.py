"""Node configuration: typed frozen dataclasses, and ROS parameters generated from them.

Each node has one config dataclass. Every field is one ROS parameter of the same name, type
and default, declared once by :func:`declare_config` with the field's description, range and
read-only flag (fields marked ``read_only`` are set at start-up only: model, backend, input
transport, frames). The others can be changed at run time (``ros2 param set``); the change is
validated by building a new config (:func:`apply_changes`) and rejected with the reason when
it fails. The YAML files in ``config/``, the launch files and ``depth-ros run`` use the same
names; :func:`config_from_mapping` validates a plain mapping (a params file section) the same
way, so a typo or a bad value is found before any node starts.

No rclpy import at module level: the dataclasses are used by tests and the CLI without ROS.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from depth_ros.core.distortion import RECTIFY_MODES
from depth_ros.config_fields import ParameterError, ParamInfo, check_described_fields, described, param_info
from depth_ros.inference.backend import BACKEND_CHOICES
from depth_ros.pipeline import DEPTH_ENCODINGS, SCALE_POLICIES, SYNC_TOLERANCE_MS, FrameConfig
from depth_ros.ros.qos import OVERRIDE_PREFIX

__all__ = [
    "BACKENDS",
    "DEPTH_ENCODINGS",
    "DepthNodeConfig",
    "FRAME_PARAMETERS",
    "ParamInfo",
    "ParameterError",
    "PoseNodeConfig",
    "SCALE_POLICIES",
    "apply_changes",
    "config_from_mapping",
    "declare_config",
    "param_info",
    "runtime_parameter_names",
]

#: Accepted values of the ``backend`` parameter (depth_ros.inference.backend.create_backend).
BACKENDS = BACKEND_CHOICES
IMAGE_TRANSPORTS = ("raw", "compressed")
#: Parameters every rclpy node has; never reported as unknown.
_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")


def _p(default: Any, description: str, **kwargs: Any) -> Any:
    return described(default, description, **kwargs)


def _frame(name: str) -> Any:
    """The field ``name`` of :class:`~depth_ros.pipeline.FrameConfig` as a node parameter:
    the same default, description, range and choices (written once, there)."""
    for f in dataclasses.fields(FrameConfig):
        if f.name == name:
            return field(default=f.default, metadata=dict(f.metadata))
    raise KeyError(name)


# /diagnostics (depth_ros.ros.diagnostics): the same parameters in both nodes.
def _diagnostics_period() -> Any:
    return _p(1.0, "period (s) of the /diagnostics status (diagnostic_msgs/DiagnosticArray)", read_only=True,
              min_value=0.1, max_value=60.0)


def _stale_warn() -> Any:
    return _p(3.0, "/diagnostics WARN when no image arrived for this many seconds", min_value=0.1, max_value=3600.0)


def _stale_error() -> Any:
    return _p(10.0, "/diagnostics ERROR when no image arrived for this many seconds (>= diagnostics_stale_warn_s)",
              min_value=0.1, max_value=3600.0)


def _min_output_ratio() -> Any:
    return _p(0.5, "/diagnostics WARN when the output rate is below this fraction of the input rate (0 = off)",
              min_value=0.0, max_value=1.0)


def _latency_warn() -> Any:
    return _p(1000.0, "/diagnostics WARN when the latency p95 (ms, image received -> output published) over a period "
              "is above this (0 = off)", min_value=0.0, max_value=60000.0)


def _check_diagnostics(config: Any) -> None:
    if config.diagnostics_stale_error_s < config.diagnostics_stale_warn_s:
        raise ParameterError(
            f"parameter 'diagnostics_stale_error_s': must not be below diagnostics_stale_warn_s, got "
            f"{config.diagnostics_stale_error_s} < {config.diagnostics_stale_warn_s}"
        )


def _check_fields(config: Any) -> None:
    """Type, range and choice checks of every field from its metadata (ParameterError)."""
    check_described_fields(config, ParameterError, label="parameter")


@dataclass(frozen=True)
class DepthNodeConfig:
    """Parameters of the depth node (``depth_node``).

    Topics (relative, remap them): in ``image`` (sensor_msgs/Image) or ``image/compressed``,
    ``camera_info``; out ``depth/image``, ``depth/camera_info``, ``depth/points``, ``depth/info``,
    ``/diagnostics`` (levels from the ``diagnostics_*`` thresholds).
    """

    model_path: str = _p("", "depth model: .onnx (spec in metadata or a YAML sidecar) or a torch checkpoint", read_only=True)
    backend: str = _p("auto", "inference backend; auto = TensorRT > ONNX Runtime CUDA > OpenVINO CPU > ONNX Runtime CPU", read_only=True, choices=BACKENDS)
    threads: int = _p(0, "CPU threads for the backend; 0 = backend default", read_only=True, min_value=0, max_value=64)
    image_transport: str = _p("raw", "subscribe to 'image' (raw) or 'image/compressed' (jpeg/png)", read_only=True, choices=IMAGE_TRANSPORTS)
    # the frame pipeline's settings: default, description and range from FrameConfig
    min_range_m: float = _frame("min_range_m")
    max_range_m: float = _frame("max_range_m")
    depth_encoding: str = _frame("depth_encoding")
    publish_cloud: bool = _frame("publish_cloud")
    cloud_decimation: int = _frame("cloud_decimation")
    cloud_rgb: bool = _frame("cloud_rgb")
    rectify: str = _frame("rectify")
    aspect: str = _frame("aspect")
    scale_policy: str = _frame("scale_policy")
    scale_fixed: float = _frame("scale_fixed")
    camera_height_m: float = _frame("camera_height_m")
    scale_sparse_mode: str = _frame("scale_sparse_mode")
    scale_min_support: int = _frame("scale_min_support")
    scale_inlier_threshold: float = _frame("scale_inlier_threshold")
    scale_smoothing: float = _frame("scale_smoothing")
    scale_max_jump_ratio: float = _frame("scale_max_jump_ratio")
    scale_max_rejected_jumps: int = _frame("scale_max_rejected_jumps")
    scale_max_hold_frames: int = _frame("scale_max_hold_frames")
    scale_gravity_cam: tuple = _frame("scale_gravity_cam")
    scale_max_tilt_deg: float = _frame("scale_max_tilt_deg")
    scale_ground_region: float = _frame("scale_ground_region")
    scale_ground_samples: int = _frame("scale_ground_samples")
    scale_min_ground_fraction: float = _frame("scale_min_ground_fraction")
    scale_ransac_iterations: int = _frame("scale_ransac_iterations")
    scale_seed: int = _frame("scale_seed")
    sync_tolerance_ms: float = _p(SYNC_TOLERANCE_MS, "largest |image stamp - camera_info stamp| (ms) paired as one frame", min_value=0.0, max_value=1000.0)
    camera_info_timeout_s: float = _p(2.0, "only with a model that predicts its field of view: when no camera_info has arrived this many seconds "
                                      "after the first image, images run alone with the predicted camera until one arrives (0: always wait for camera_info)",
                                      min_value=0.0, max_value=3600.0)
    sparse_max_age_s: float = _p(0.2, "scale_policy sparse_alignment: use the newest 'sparse_points' cloud if its stamp is within this many seconds of the image", min_value=0.0, max_value=10.0)
    time_jump_reset_s: float = _p(1.0, "a stamp this much (s) older than the last frame resets the node (bag loop); smaller steps back are skipped", min_value=0.0, max_value=3600.0)
    diagnostics_period_s: float = _diagnostics_period()
    diagnostics_stale_warn_s: float = _stale_warn()
    diagnostics_stale_error_s: float = _stale_error()
    diagnostics_min_output_ratio: float = _min_output_ratio()
    diagnostics_latency_warn_ms: float = _latency_warn()
    publish_timing: bool = _p(False, "publish depth/timing (diagnostic_msgs/DiagnosticArray stamped as the image: ms per "
                              "stage of every frame, depth_ros.timing); start-up only", read_only=True)

    def __post_init__(self) -> None:
        _check_fields(self)
        self.frame_config()  # range order, ground_plane height, every scale field
        _check_diagnostics(self)

    def frame_config(self) -> FrameConfig:
        """The frame pipeline's config of these parameters.

        Raises:
            ParameterError: naming the parameter.
        """
        try:
            return FrameConfig(**{name: getattr(self, name) for name in FRAME_PARAMETERS})
        except ValueError as exc:
            text = str(exc)
            name = next((n for n in FRAME_PARAMETERS if text.startswith(n)), None)
            if name is not None:
                text = text[len(name):].lstrip(": ")
            else:
                name = "scale_policy"
            raise ParameterError(f"parameter '{name}': {text}") from None


@dataclass(frozen=True)
class PoseNodeConfig:
    """Parameters of the visual-odometry node (``pose_node``).

    Topics: in ``image`` (or ``image/compressed``), ``camera_info``; out ``odom``
    (nav_msgs/Odometry, pose of the camera optical frame in ``odom_frame``), ``pose``
    (geometry_msgs/PoseStamped, same pose), and TF ``odom_frame -> camera_frame`` when
    tf2_ros is importable and ``publish_tf`` is set; ``/diagnostics``.
    """

    model_path: str = _p("", "pose model (pose_6dof): .onnx or a torch checkpoint", read_only=True)
    backend: str = _p("auto", "inference backend; auto = TensorRT > ONNX Runtime CUDA > OpenVINO CPU > ONNX Runtime CPU", read_only=True, choices=BACKENDS)
    threads: int = _p(0, "CPU threads for the backend; 0 = backend default", read_only=True, min_value=0, max_value=64)
    image_transport: str = _p("raw", "subscribe to 'image' (raw) or 'image/compressed' (jpeg/png)", read_only=True, choices=IMAGE_TRANSPORTS)
    odom_frame: str = _p("odom", "frame_id of the odometry (the first frame's camera pose after a reset)", read_only=True)
    camera_frame: str = _p("", "child_frame_id; empty = the image's header.frame_id", read_only=True)
    publish_tf: bool = _p(True, "broadcast odom_frame -> camera_frame on /tf (when tf2_ros is importable)")
    max_gap_s: float = _p(0.5, "consecutive frames further apart than this (s) reset the odometry", min_value=0.0, max_value=3600.0)
    rectify: str = _p("auto", "lens distortion: auto (images whose camera_info has a non-zero D are rectified first, as the "
                      "depth node does) or off (the images are already rectified: D is ignored)", read_only=True, choices=RECTIFY_MODES)
    sync_tolerance_ms: float = _p(1.0, "largest |image stamp - camera_info stamp| (ms) paired as one frame", min_value=0.0, max_value=1000.0)
    diagnostics_period_s: float = _diagnostics_period()
    diagnostics_stale_warn_s: float = _stale_warn()
    diagnostics_stale_error_s: float = _stale_error()
    diagnostics_min_output_ratio: float = _min_output_ratio()
    diagnostics_latency_warn_ms: float = _latency_warn()

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_diagnostics(self)
        for name in ("odom_frame",):
            if not getattr(self, name):
                raise ParameterError(f"parameter '{name}': must not be empty")


#: The DepthNodeConfig parameters that are FrameConfig fields (the same names).
FRAME_PARAMETERS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(FrameConfig))

ConfigT = TypeVar("ConfigT", DepthNodeConfig, PoseNodeConfig)


def runtime_parameter_names(cls: type) -> tuple[str, ...]:
    """Names of the parameters that may change while the node runs."""
    return tuple(f.name for f in dataclasses.fields(cls) if not f.metadata["param"].read_only)


def config_from_mapping(cls: type[ConfigT], values: Mapping[str, Any], source: str = "parameters") -> ConfigT:
    """Build a config from a mapping (e.g. a params file's ``ros__parameters``).

    Raises:
        ParameterError: an unknown name (typo), a wrong type or a bad value; the message
            names the parameter and ``source``.
    """
    if not isinstance(values, Mapping):
        raise ParameterError(f"{source}: expected a mapping of parameters, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    # QoS overrides are checked when the node creates its topics
    unknown = sorted(n for n in set(values) - known - set(_BUILTIN_PARAMETERS) if not n.startswith(OVERRIDE_PREFIX))
    if unknown:
        raise ParameterError(f"{source}: unknown parameter(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**{k: v for k, v in values.items() if k in known})
    except ParameterError as exc:
        raise ParameterError(f"{source}: {exc}") from None


def apply_changes(config: ConfigT, changes: Mapping[str, Any]) -> ConfigT:
    """A new config with ``changes`` applied, validated; read-only names are refused.

    Raises:
        ParameterError: naming the parameter and the reason.
    """
    cls = type(config)
    known = {f.name: f.metadata["param"] for f in dataclasses.fields(cls)}
    for name in changes:
        if name not in known:
            raise ParameterError(f"parameter '{name}': not a parameter of {cls.__name__}")
        if known[name].read_only:
            raise ParameterError(f"parameter '{name}': read-only (set it at start-up)")
    return dataclasses.replace(config, **dict(changes))


# -- rclpy side -----------------------------------------------------------------------------
def _descriptor(f: dataclasses.Field) -> Any:
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    info: ParamInfo = f.metadata["param"]
    kind = type(f.default)
    type_code = {
        bool: ParameterType.PARAMETER_BOOL,
        int: ParameterType.PARAMETER_INTEGER,
        float: ParameterType.PARAMETER_DOUBLE,
        str: ParameterType.PARAMETER_STRING,
        tuple: ParameterType.PARAMETER_DOUBLE_ARRAY,
    }[kind]
    description = info.description
    if info.choices is not None:
        description += f" (one of: {', '.join(info.choices)})"
    d = ParameterDescriptor(name=f.name, type=type_code, description=description, read_only=info.read_only)
    if kind is float and info.min_value is not None and info.max_value is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(info.min_value), to_value=float(info.max_value), step=0.0)]
    if kind is int and info.min_value is not None and info.max_value is not None:
        d.integer_range = [IntegerRange(from_value=int(info.min_value), to_value=int(info.max_value), step=1)]
    if info.choices is not None:
        d.additional_constraints = "one of: " + ", ".join(info.choices)
    return d


def declare_config(node: Any, cls: type[ConfigT]) -> ConfigT:
    """Declare every field of ``cls`` as a parameter of ``node`` and return the config.

    Values come from the node's overrides (``--params-file``, ``-p``, launch ``parameters``).
    An integer given for a float parameter is accepted (YAML ``20`` for ``20.0``).

    Raises:
        ParameterError: an override names no parameter of this node (typo), has the wrong
            type, or is out of range; the message names the parameter.
    """
    from rclpy.exceptions import ParameterException
    from rclpy.parameter import Parameter

    fields = dataclasses.fields(cls)
    known = {f.name for f in fields}
    # rclpy keeps the overrides given to this node; unknown names would otherwise pass silently.
    overrides: dict[str, Any] = getattr(node, "_parameter_overrides", {})
    unknown = sorted(
        n for n in overrides
        if n not in known and n not in _BUILTIN_PARAMETERS and not n.startswith(OVERRIDE_PREFIX)
    )
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; known: {sorted(known)}")
    for f in fields:
        given = overrides.get(f.name)
        if (
            isinstance(f.default, float) and given is not None
            and given.type_ == Parameter.Type.INTEGER
        ):
            overrides[f.name] = Parameter(f.name, Parameter.Type.DOUBLE, float(given.value))
        try:
            node.declare_parameter(f.name, f.default, _descriptor(f))
        except ParameterException as exc:
            raise ParameterError(f"parameter '{f.name}': {exc}") from None
    values = {f.name: node.get_parameter(f.name).value for f in fields}
    return config_from_mapping(cls, values, source="parameters")


def on_set_parameters_callback(
    get_config: Callable[[], ConfigT], set_config: Callable[[ConfigT], None]
) -> Callable[[list[Any]], Any]:
    """An rclpy on-set-parameters callback: validates changes, then swaps the config.

    ``set_config`` may refuse a config by raising ValueError (the reason is returned). The swap
    is one reference assignment, so worker threads see either the old or the new config,
    never a mix.
    """

    def callback(parameters: list[Any]) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        current = get_config()
        known = {f.name for f in dataclasses.fields(current)}
        changes = {p.name: p.value for p in parameters if p.name in known}
        try:
            set_config(apply_changes(current, changes))
        except ValueError as exc:  # ParameterError, or the node refusing the new config
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    return callback


def parameter_table(cls: type) -> str:
    """A Markdown table of a config's parameters (name, type, default, range, runtime, description)."""
    rows = ["| parameter | type | default | range / choices | changeable at run time | description |",
            "|---|---|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        info: ParamInfo = f.metadata["param"]
        if info.choices is not None:
            allowed = ", ".join(info.choices)
        elif info.min_value is not None:
            allowed = f"{info.min_value} .. {info.max_value}"
        else:
            allowed = ""
        rows.append(f"| `{f.name}` | {type(f.default).__name__} | `{f.default!r}` | {allowed} | "
                    f"{'no' if info.read_only else 'yes'} | {info.description} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m depth_ros.ros.params: the tables for the README
    for _cls in (DepthNodeConfig, PoseNodeConfig):
        print(f"### {_cls.__name__}\n\n{parameter_table(_cls)}\n")
