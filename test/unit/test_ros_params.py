"""Node configs: validation from metadata, params-file checks, runtime changes (no ROS graph)."""
from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from depth_ros.ros.params import (
    DepthNodeConfig,
    ParameterError,
    PoseNodeConfig,
    apply_changes,
    config_from_mapping,
    param_info,
    runtime_parameter_names,
)
from depth_ros.ros.runner import check_params_file

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_valid_and_every_field_is_described() -> None:
    for cls in (DepthNodeConfig, PoseNodeConfig):
        cls()  # defaults validate
        for f in dataclasses.fields(cls):
            info = param_info(cls, f.name)
            assert len(info.description) > 10, f.name
            if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
                assert info.min_value is not None and info.max_value is not None, f.name


def test_read_only_split() -> None:
    runtime = set(runtime_parameter_names(DepthNodeConfig))
    assert {"min_range_m", "max_range_m", "cloud_decimation", "publish_cloud", "scale_policy"} <= runtime
    assert not {"model_path", "backend", "image_transport"} & runtime


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"max_range_m": -1.0}, "max_range_m"),
        ({"min_range_m": 5.0, "max_range_m": 2.0}, "min_range_m"),
        ({"cloud_decimation": 0}, "cloud_decimation"),
        ({"cloud_decimation": 2.5}, "cloud_decimation"),
        ({"backend": "cuda-magic"}, "backend"),
        ({"scale_policy": "guess"}, "scale_policy"),
        ({"publish_cloud": "yes"}, "publish_cloud"),
        ({"max_range_m": float("nan")}, "max_range_m"),
        ({"scale_policy": "ground_plane"}, "camera_height_m"),
        ({"depth_encoding": "16UC2"}, "depth_encoding"),
    ],
)
def test_invalid_values_name_the_parameter(values: dict, name: str) -> None:
    with pytest.raises(ParameterError, match=f"'{name}'"):
        config_from_mapping(DepthNodeConfig, values)


def test_unknown_name_is_reported() -> None:
    with pytest.raises(ParameterError, match="max_rang_m"):
        config_from_mapping(DepthNodeConfig, {"max_rang_m": 3.0})


def test_int_accepted_for_float() -> None:
    cfg = config_from_mapping(DepthNodeConfig, {"max_range_m": 20})
    assert cfg.max_range_m == 20.0 and isinstance(cfg.max_range_m, float)


def test_apply_changes_validates_and_refuses_read_only() -> None:
    cfg = DepthNodeConfig()
    new = apply_changes(cfg, {"max_range_m": 5.0, "cloud_decimation": 4})
    assert (new.max_range_m, new.cloud_decimation) == (5.0, 4)
    assert cfg.max_range_m == 20.0  # frozen original untouched
    with pytest.raises(ParameterError, match="read-only"):
        apply_changes(cfg, {"model_path": "x.onnx"})
    with pytest.raises(ParameterError, match="min_range_m"):
        apply_changes(cfg, {"max_range_m": 0.05})


def test_shipped_config_is_valid() -> None:
    sections = check_params_file(REPO / "config" / "depth.yaml")
    assert set(sections) == {"depth_node", "pose_node"}


def test_params_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        /**/depth_node:
          ros__parameters:
            cloud_decimation: 40
    """))
    with pytest.raises(ParameterError, match="cloud_decimation.*above the maximum 16"):
        check_params_file(bad)
    bad.write_text("/**/dept_node:\n  ros__parameters: {}\n")
    with pytest.raises(ParameterError, match="dept_node"):
        check_params_file(bad)
    bad.write_text("a: [\n")
    with pytest.raises(ParameterError, match="not valid YAML"):
        check_params_file(bad)
    common = tmp_path / "common.yaml"
    common.write_text("/**:\n  ros__parameters:\n    backend: torch\n    max_range_m: 9.0\n")
    sections = check_params_file(common)
    assert sections["depth_node"] == {"backend": "torch", "max_range_m": 9.0}
    assert sections["pose_node"] == {"backend": "torch"}  # pose has no max_range_m


def test_params_file_qos_overrides_pass_through(tmp_path: Path) -> None:
    f = tmp_path / "qos.yaml"
    f.write_text(textwrap.dedent("""\
        /**/depth_node:
          ros__parameters:
            max_range_m: 9.0
            qos_overrides:
              /camera/image_raw:
                subscription:
                  reliability: reliable
                  depth: 50
            qos_overrides./camera/camera_info.subscription.reliability: reliable
    """))
    sections = check_params_file(f)
    # nested and dotted spellings both reach the node as rcl's dotted names
    assert sections["depth_node"] == {
        "max_range_m": 9.0,
        "qos_overrides./camera/image_raw.subscription.reliability": "reliable",
        "qos_overrides./camera/image_raw.subscription.depth": 50,
        "qos_overrides./camera/camera_info.subscription.reliability": "reliable",
    }
    assert sections["pose_node"] == {}
    f.write_text("/**/depth_node:\n  ros__parameters:\n    qos_override:\n      /image: {subscription: {depth: 5}}\n")
    with pytest.raises(ParameterError, match=r"qos_override\./image\.subscription\.depth"):
        check_params_file(f)  # misspelt prefix: an unknown parameter


def test_parameter_table_lists_every_parameter() -> None:
    from depth_ros.ros.params import parameter_table

    table = parameter_table(DepthNodeConfig).splitlines()
    assert len(table) == 2 + len(dataclasses.fields(DepthNodeConfig))
    row = next(r for r in table if r.startswith("| `cloud_decimation`"))
    assert "| int | `1` | 1 .. 16 | yes |" in row
    assert "| no |" in next(r for r in table if r.startswith("| `model_path`"))
