"""One configuration of the frame path: FrameConfig is where the node parameters, config/depth.yaml
and the ``depth-ros infer`` flags come from, and the same defaults give the same depth live and
offline."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from depth_ros.bag.infer import InferConfig, infer_bag
from depth_ros.bag.infer_cli import add_arguments, config_from_args, frame_flag
from depth_ros.config_fields import param_info
from depth_ros.core.scale import ScaleConfig
from depth_ros.inference.spec import ModelSpec
from depth_ros.pipeline import (
    SCALE_FIELDS,
    SCALE_POLICIES,
    FrameConfig,
    FramePipeline,
    parse_scale,
    resolve_scale_config,
)
from depth_ros.ros.params import DepthNodeConfig, ParameterError, config_from_mapping

REPO = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infer")
    add_arguments(parser)
    return parser


def _non_default(f: dataclasses.Field) -> Any:
    """A valid value of field ``f`` other than its default."""
    info = param_info(FrameConfig, f.name)
    d = f.default
    if isinstance(d, bool):
        return not d
    if isinstance(d, tuple):
        return (0.0, 0.9, 0.1)
    if info.choices is not None:
        return next(c for c in info.choices if c != d and c not in ("ground_plane", "sparse_alignment", "model"))
    if f.name == "max_range_m":
        return 35.0
    if f.name == "scale_max_jump_ratio":
        return 2.5
    if isinstance(d, int):
        return d + 1
    return d * 0.5 if d > 0 else 1.25


# -- every ScaleConfig field is a FrameConfig field ----------------------------------------
def test_frame_config_exposes_every_scale_config_field_with_its_default() -> None:
    core = {f.name for f in dataclasses.fields(ScaleConfig)} - {"policy"}
    assert set(SCALE_FIELDS.values()) == core
    assert set(SCALE_FIELDS) <= {f.name for f in dataclasses.fields(FrameConfig)}
    # the defaults are the core's (camera_height_m 0 = unset = the core's None)
    assert FrameConfig().scale_config("none") == ScaleConfig(policy="none")
    assert SCALE_POLICIES[0] == "auto" and set(SCALE_POLICIES[1:]) == {"model", "none", "fixed", "canonical_focal",
                                                                     "sparse_alignment", "ground_plane"}


def test_every_scale_field_reaches_the_core_config() -> None:
    values = {name: _non_default(f) for f in dataclasses.fields(FrameConfig)
              if (name := f.name) in SCALE_FIELDS}
    core = FrameConfig(**values).scale_config("fixed")
    for name, core_name in SCALE_FIELDS.items():
        assert getattr(core, core_name) == values[name], name


@pytest.mark.parametrize(
    ("values", "match"),
    [({"scale_smoothing": 0.0}, "scale_smoothing"), ({"scale_gravity_cam": (0, 0, 0)}, "scale_gravity_cam"),
     ({"scale_max_jump_ratio": 1.0}, "scale_max_jump_ratio"), ({"min_range_m": 3.0, "max_range_m": 2.0}, "min_range_m"),
     ({"scale_policy": "ground_plane"}, "camera_height_m"), ({"scale_policy": "lidar"}, "scale_policy")],
)
def test_bad_values_name_the_field(values: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FrameConfig(**values)


# -- the node's parameters ---------------------------------------------------------------------
def test_node_parameters_are_the_frame_fields_with_the_same_defaults_and_ranges() -> None:
    node = {f.name: f for f in dataclasses.fields(DepthNodeConfig)}
    for f in dataclasses.fields(FrameConfig):
        assert f.name in node, f.name
        assert node[f.name].default == f.default, f.name
        assert param_info(DepthNodeConfig, f.name) == param_info(FrameConfig, f.name), f.name
    assert DepthNodeConfig().frame_config() == FrameConfig()
    # a runtime parameter reaches the pipeline's config
    changed = {f.name: _non_default(f) for f in dataclasses.fields(FrameConfig) if f.name != "scale_policy"}
    assert dataclasses.asdict(DepthNodeConfig(**changed).frame_config()) == {
        **dataclasses.asdict(FrameConfig()), **changed}


def test_node_parameter_errors_name_the_parameter() -> None:
    with pytest.raises(ParameterError, match="parameter 'scale_max_jump_ratio'"):
        DepthNodeConfig(scale_max_jump_ratio=1.0)
    with pytest.raises(ParameterError, match="parameter 'scale_gravity_cam'"):
        DepthNodeConfig(scale_gravity_cam=[0.0, 1.0])
    # a ROS double array (list) is accepted for the gravity vector
    assert DepthNodeConfig(scale_gravity_cam=[0.0, 1.0, 0.5]).scale_gravity_cam == (0.0, 1.0, 0.5)


def test_shipped_yaml_lists_every_frame_field_at_its_default() -> None:
    data = yaml.safe_load((REPO / "config" / "depth.yaml").read_text())
    params = data["/**/depth_node"]["ros__parameters"]
    for f in dataclasses.fields(FrameConfig):
        assert f.name in params, f"config/depth.yaml lacks {f.name}"
        value = tuple(params[f.name]) if isinstance(f.default, tuple) else params[f.name]
        assert value == f.default, f.name
    config = config_from_mapping(DepthNodeConfig, params, source="depth.yaml")
    assert config.frame_config() == FrameConfig()


# -- the infer flags ---------------------------------------------------------------------------
def test_infer_has_one_flag_per_frame_field_and_its_defaults_are_the_nodes() -> None:
    parser = _parser()
    options = {s for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(FrameConfig):
        assert frame_flag(f.name, f.default) in options, f.name
    base = ["in.mcap", "-o", "out.mcap", "--model", "m.onnx"]
    config = config_from_args(parser.parse_args(base))
    node = DepthNodeConfig()
    assert config.frame == node.frame_config() == InferConfig().frame
    assert config.stamp_tolerance_ns == InferConfig().stamp_tolerance_ns == int(node.sync_tolerance_ms * 1e6)
    text = parser.format_help()
    assert "(default: 0.1)" in text and "(default: 20.0)" in text and "(default: auto)" in text


def test_every_frame_flag_sets_its_field() -> None:
    parser = _parser()
    argv = ["in.mcap", "-o", "out.mcap", "--model", "m.onnx"]
    expected = {"cloud_rgb": False}  # (--cloud-rgb needs the cloud, which --no-publish-cloud turns off)
    for f in dataclasses.fields(FrameConfig):
        if f.name == "cloud_rgb":
            continue
        value = _non_default(f)
        expected[f.name] = value
        flag = frame_flag(f.name, f.default)
        if isinstance(f.default, bool):
            argv.append(flag)
        elif isinstance(f.default, tuple):
            argv += [flag, *[str(v) for v in value]]
        else:
            argv += [flag, str(value)]
    frame = config_from_args(parser.parse_args(argv)).frame
    assert dataclasses.asdict(frame) == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--min-range", "0.5", "--max-range", "9"], {"min_range_m": 0.5, "max_range_m": 9.0}),
        (["--no-cloud"], {"publish_cloud": False}),
        (["--rgb-cloud", "--decimation", "2"], {"cloud_rgb": True, "cloud_decimation": 2}),
        (["--scale", "fixed:2.5"], {"scale_policy": "fixed", "scale_fixed": 2.5}),
        (["--scale", "ground:1.2"], {"scale_policy": "ground_plane", "camera_height_m": 1.2}),
        (["--scale", "lidar", "--lidar-topic", "/l"], {"scale_policy": "sparse_alignment", "scale_sparse_mode": "scale"}),
        (["--scale", "lidar_shift", "--lidar-topic", "/l"],
         {"scale_policy": "sparse_alignment", "scale_sparse_mode": "scale_shift"}),
        (["--scale-policy", "none"], {"scale_policy": "none"}),
        # an alias first, then a field flag refines it
        (["--scale", "lidar", "--scale-sparse-mode", "auto", "--lidar-topic", "/l"],
         {"scale_policy": "sparse_alignment", "scale_sparse_mode": "auto"}),
    ],
)
def test_short_spellings_are_aliases_of_the_frame_fields(argv: list[str], expected: dict[str, Any]) -> None:
    args = _parser().parse_args(["in.mcap", "-o", "out.mcap", "--model", "m.onnx", *argv])
    frame = config_from_args(args).frame
    assert dataclasses.asdict(frame) == {**dataclasses.asdict(FrameConfig()), **expected}


def test_auto_resolves_the_same_way_for_every_caller() -> None:
    metric = ModelSpec(output_kind="depth_metric", input_height=8, input_width=8, metric=True)
    relative = ModelSpec(output_kind="inverse_depth_relative", input_height=8, input_width=8)
    auto = FrameConfig()
    assert resolve_scale_config(auto, metric, has_sparse=False).policy == "model"
    assert resolve_scale_config(auto, relative, has_sparse=True).policy == "sparse_alignment"
    assert resolve_scale_config(auto, relative, has_sparse=False).policy == "none"
    assert parse_scale("ground_plane:2").fields() == {"scale_policy": "ground_plane", "camera_height_m": 2.0}


# -- the same depth live and offline -------------------------------------------------------------
class RampBackend:
    """depth_metric: a ramp from 0.05 m to 30 m across the image (beyond both range limits)."""

    name = "ramp"

    def __init__(self, height: int, width: int) -> None:
        self.spec = ModelSpec(output_kind="depth_metric", input_height=height, input_width=width, name="ramp", metric=True)
        self._depth = np.linspace(0.05, 30.0, height * width, dtype=np.float32).reshape(1, 1, height, width)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"depth": self._depth}


def test_the_node_pipeline_and_infer_give_the_same_depth_with_their_defaults(tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader

    from depth_ros.ros.depth_node import DepthPipeline
    from depth_ros.synthetic import SynthConfig, render_sequence, write_bag

    synth = SynthConfig(width=32, height=24, frames=2, texture_size_px=32, jpeg=False, lidar_beams=0, object_mask=False)
    bag = write_bag(synth, tmp_path / "s.mcap")
    out = tmp_path / "o.mcap"
    infer_bag(bag, out, RampBackend(24, 32), InferConfig(cloud=False))
    offline = {}
    with AnyReader([out]) as reader:
        for conn, _, data in reader.messages():
            msg = reader.deserialize(data, conn.msgtype)
            if conn.topic == "/camera/depth/image":
                offline[len(offline)] = np.frombuffer(bytes(msg.data), "<f4").reshape(24, 32)
            if conn.topic == "/camera/depth/info":
                assert (msg.min_range_m, msg.max_range_m) == pytest.approx((0.1, 20.0)) and msg.scale_source == "model"
    live = DepthPipeline(RampBackend(24, 32), DepthNodeConfig(model_path="m.onnx"))
    frames = list(render_sequence(synth))
    assert len(offline) == len(frames) == 2
    for i, frame in enumerate(frames):
        result = live.run(frame.rgb, frame.camera)
        np.testing.assert_array_equal(result.depth_m, offline[i])
        # and the range limits were applied (the ramp reaches 0.05 m and 30 m)
        assert np.isnan(result.depth_m).any() and np.nanmin(result.depth_m) >= 0.1 and np.nanmax(result.depth_m) <= 20.0


def test_the_pipeline_checks_the_contract_once_at_construction() -> None:
    class Counting(RampBackend):
        calls = 0

        def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
            Counting.calls += 1
            return {"depth": np.zeros((1, 1, 5, 5), np.float32)}  # not the spec's 8x8

    from depth_ros.errors import ModelError

    with pytest.raises(ModelError, match="depth"):
        FramePipeline(Counting(8, 8), FrameConfig())
    assert Counting.calls == 1
    FramePipeline(Counting(8, 8), FrameConfig(), contract_checked=True)  # the loader did it
    assert Counting.calls == 1


def test_aspect_policy_is_a_parameter_a_flag_and_old_files_without_it_still_load() -> None:
    assert FrameConfig().aspect == "crop"
    assert param_info(DepthNodeConfig, "aspect").choices == ("crop", "pad", "stretch")
    args = _parser().parse_args(["in.mcap", "-o", "out.mcap", "--model", "m.onnx", "--aspect", "stretch"])
    assert config_from_args(args).frame.aspect == "stretch"
    with pytest.raises(SystemExit):
        _parser().parse_args(["in.mcap", "-o", "out.mcap", "--model", "m.onnx", "--aspect", "squash"])
    # a params file written before the aspect policy existed
    data = yaml.safe_load((REPO / "config" / "depth.yaml").read_text())
    params = dict(data["/**/depth_node"]["ros__parameters"])
    del params["aspect"]
    assert config_from_mapping(DepthNodeConfig, params, source="old.yaml").frame_config().aspect == "crop"
    with pytest.raises(ParameterError, match="parameter 'aspect'"):
        DepthNodeConfig(aspect="squash")
