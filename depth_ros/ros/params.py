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
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from depth_ros.errors import DepthRosError
from depth_ros.ros.qos import OVERRIDE_PREFIX

__all__ = [
    "BACKENDS",
    "DepthNodeConfig",
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
BACKENDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "torch")
#: Accepted values of ``scale_policy`` (see DepthInfo.msg, scale_source).
SCALE_POLICIES = ("model", "none", "fixed", "canonical_focal", "sparse_alignment", "ground_plane")
IMAGE_TRANSPORTS = ("raw", "compressed")
DEPTH_ENCODINGS = ("32FC1", "16UC1")
#: Parameters every rclpy node has; never reported as unknown.
_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")


class ParameterError(DepthRosError, ValueError):
    """A parameter value (or params file entry) is invalid; the message names the parameter."""


@dataclass(frozen=True)
class ParamInfo:
    """How one config field is exposed as a ROS parameter.

    Args:
        description: shown by ``ros2 param describe``; says the unit.
        read_only: set at start-up only.
        min_value, max_value: inclusive range for numbers (FloatingPointRange/IntegerRange).
        choices: the accepted strings, for string parameters.
    """

    description: str
    read_only: bool = False
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None


def _p(default: Any, description: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"param": ParamInfo(description, **kwargs)})


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


def param_info(cls: type, name: str) -> ParamInfo:
    """The :class:`ParamInfo` of field ``name`` of config class ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata["param"]
    raise KeyError(name)


def _check_fields(config: Any) -> None:
    """Type, range and choice checks of every field from its metadata (ParameterError)."""
    for f in dataclasses.fields(config):
        info: ParamInfo = f.metadata["param"]
        value = getattr(config, f.name)
        kind = type(f.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # YAML `20` for a float parameter
            object.__setattr__(config, f.name, value)
        if type(value) is not kind:
            raise ParameterError(
                f"parameter '{f.name}': expected {kind.__name__}, got {type(value).__name__} {value!r}"
            )
        if kind is float and not math.isfinite(value):
            raise ParameterError(f"parameter '{f.name}': expected a finite number, got {value}")
        if info.min_value is not None and value < info.min_value:
            raise ParameterError(f"parameter '{f.name}': {value} is below the minimum {info.min_value}")
        if info.max_value is not None and value > info.max_value:
            raise ParameterError(f"parameter '{f.name}': {value} is above the maximum {info.max_value}")
        if info.choices is not None and value not in info.choices:
            raise ParameterError(f"parameter '{f.name}': expected one of {list(info.choices)}, got {value!r}")


@dataclass(frozen=True)
class DepthNodeConfig:
    """Parameters of the depth node (``depth_node``).

    Topics (relative, remap them): in ``image`` (sensor_msgs/Image) or ``image/compressed``,
    ``camera_info``; out ``depth/image``, ``depth/camera_info``, ``depth/points``, ``depth/info``,
    ``/diagnostics`` (levels from the ``diagnostics_*`` thresholds).
    """

    model_path: str = _p("", "depth model: .onnx (spec in metadata or a YAML sidecar) or a torch checkpoint", read_only=True)
    backend: str = _p("auto", "inference backend; auto = TensorRT > ONNX Runtime CUDA > ONNX Runtime CPU", read_only=True, choices=BACKENDS)
    threads: int = _p(0, "CPU threads for the backend; 0 = backend default", read_only=True, min_value=0, max_value=64)
    image_transport: str = _p("raw", "subscribe to 'image' (raw) or 'image/compressed' (jpeg/png)", read_only=True, choices=IMAGE_TRANSPORTS)
    depth_encoding: str = _p("32FC1", "depth/image encoding: 32FC1 metres (NaN invalid) or 16UC1 millimetres (0 invalid)", choices=DEPTH_ENCODINGS)
    min_range_m: float = _p(0.1, "depth nearer than this (m) is published as invalid", min_value=0.0, max_value=1000.0)
    max_range_m: float = _p(20.0, "depth farther than this (m) is published as invalid", min_value=0.0, max_value=1000.0)
    publish_cloud: bool = _p(True, "publish depth/points (built only while someone subscribes)")
    cloud_decimation: int = _p(1, "point cloud stride in pixels (1 = every pixel)", min_value=1, max_value=16)
    cloud_rgb: bool = _p(False, "xyzrgb cloud (point_step 32) instead of xyz (point_step 16)")
    scale_policy: str = _p("model", "where metric scale comes from: model (already metric), none, fixed, canonical_focal, sparse_alignment, ground_plane", choices=SCALE_POLICIES)
    scale_fixed: float = _p(1.0, "depth multiplier for scale_policy fixed", min_value=1e-6, max_value=1e6)
    camera_height_m: float = _p(0.0, "camera height over a flat floor (m), for scale_policy ground_plane; 0 = unset", min_value=0.0, max_value=100.0)
    sync_tolerance_ms: float = _p(1.0, "largest |image stamp - camera_info stamp| (ms) paired as one frame", min_value=0.0, max_value=1000.0)
    sparse_max_age_s: float = _p(0.2, "scale_policy sparse_alignment: use the newest 'sparse_points' cloud if its stamp is within this many seconds of the image", min_value=0.0, max_value=10.0)
    time_jump_reset_s: float = _p(1.0, "a stamp this much (s) older than the last frame resets the node (bag loop); smaller steps back are skipped", min_value=0.0, max_value=3600.0)
    diagnostics_period_s: float = _diagnostics_period()
    diagnostics_stale_warn_s: float = _stale_warn()
    diagnostics_stale_error_s: float = _stale_error()
    diagnostics_min_output_ratio: float = _min_output_ratio()
    diagnostics_latency_warn_ms: float = _latency_warn()

    def __post_init__(self) -> None:
        _check_fields(self)
        if not self.min_range_m < self.max_range_m:
            raise ParameterError(
                f"parameter 'min_range_m': must be below max_range_m, got min_range_m={self.min_range_m}, "
                f"max_range_m={self.max_range_m}"
            )
        _check_diagnostics(self)
        if self.scale_policy == "ground_plane" and self.camera_height_m <= 0.0:
            raise ParameterError("parameter 'camera_height_m': scale_policy ground_plane needs camera_height_m > 0")


@dataclass(frozen=True)
class PoseNodeConfig:
    """Parameters of the visual-odometry node (``pose_node``).

    Topics: in ``image`` (or ``image/compressed``), ``camera_info``; out ``odom``
    (nav_msgs/Odometry, pose of the camera optical frame in ``odom_frame``), ``pose``
    (geometry_msgs/PoseStamped, same pose), and TF ``odom_frame -> camera_frame`` when
    tf2_ros is importable and ``publish_tf`` is set; ``/diagnostics``.
    """

    model_path: str = _p("", "pose model (pose_6dof): .onnx or a torch checkpoint", read_only=True)
    backend: str = _p("auto", "inference backend; auto = TensorRT > ONNX Runtime CUDA > ONNX Runtime CPU", read_only=True, choices=BACKENDS)
    threads: int = _p(0, "CPU threads for the backend; 0 = backend default", read_only=True, min_value=0, max_value=64)
    image_transport: str = _p("raw", "subscribe to 'image' (raw) or 'image/compressed' (jpeg/png)", read_only=True, choices=IMAGE_TRANSPORTS)
    odom_frame: str = _p("odom", "frame_id of the odometry (the first frame's camera pose after a reset)", read_only=True)
    camera_frame: str = _p("", "child_frame_id; empty = the image's header.frame_id", read_only=True)
    publish_tf: bool = _p(True, "broadcast odom_frame -> camera_frame on /tf (when tf2_ros is importable)")
    max_gap_s: float = _p(0.5, "consecutive frames further apart than this (s) reset the odometry", min_value=0.0, max_value=3600.0)
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
