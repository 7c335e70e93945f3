"""A bad parameter stops a node at start-up with exit code 1 and a message naming it."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros]


def _run(args: list[str], env: dict[str, str], timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout_s)


@pytest.mark.parametrize(
    ("params_yaml", "cli", "name"),
    [
        (None, ["-p", "max_range_m:=-1.0"], "max_range_m"),
        (None, ["-p", "backend:=cuda-magic"], "backend"),
        (None, ["-p", "cloud_decimation:=2.5"], "cloud_decimation"),
        ("/**/depth_node:\n  ros__parameters:\n    cloud_decimation: 40\n", [], "cloud_decimation"),
        ("/**/depth_node:\n  ros__parameters:\n    max_rang_m: 4.0\n", [], "max_rang_m"),
        ("/**/depth_node:\n  ros__parameters:\n    max_range_m: far\n", [], "max_range_m"),
        ("/**/depth_node:\n  ros__parameters:\n    min_range_m: 9.0\n    max_range_m: 3.0\n", [], "min_range_m"),
        (None, [], "model_path"),
        (None, ["-p", "qos_overrides./image.subscription.reliability:=sometimes"], "image"),
        (None, ["-p", "qos_overrides./depth/points.publisher.depth:=deep"], "depth/points"),
        (None, ["-p", "qos_overrides./camera_info.subscription.depth:=-3"], "camera_info"),  # refused by the rmw
    ],
)
def test_depth_node_exits_1_naming_the_parameter(ros_env: dict[str, str], models: dict[str, Path], tmp_path: Path,
                                                 params_yaml: str | None, cli: list[str], name: str) -> None:
    args = [sys.executable, "-m", "depth_ros.ros.depth_node", "--ros-args"]
    if name != "model_path":
        args += ["-p", f"model_path:={models['plane']}"]
    if params_yaml is not None:
        f = tmp_path / "params.yaml"
        f.write_text(params_yaml)
        args += ["--params-file", str(f)]
    proc = _run(args + cli, ros_env)
    assert proc.returncode == 1, proc.stderr
    assert f"'{name}'" in proc.stderr or name in proc.stderr.splitlines()[-1], proc.stderr


def test_malformed_params_file_exits_1(ros_env: dict[str, str], tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("a: [\n")
    proc = _run([sys.executable, "-m", "depth_ros.ros.depth_node", "--ros-args", "--params-file", str(f)], ros_env)
    assert proc.returncode == 1 and "params file" in proc.stderr, proc.stderr


def test_pose_node_refuses_a_depth_model(ros_env: dict[str, str], models: dict[str, Path]) -> None:
    proc = _run([sys.executable, "-m", "depth_ros.ros.pose_node", "--ros-args", "-p", f"model_path:={models['plane']}"], ros_env)
    assert proc.returncode == 1 and "pose_6dof" in proc.stderr, proc.stderr


def test_runner_checks_the_config_before_starting(ros_env: dict[str, str], tmp_path: Path) -> None:
    f = tmp_path / "depth.yaml"
    f.write_text(textwrap.dedent("""\
        /**/depth_node:
          ros__parameters:
            scale_policy: guess
    """))
    proc = _run([sys.executable, "-m", "depth_ros.cli", "run", "--config", str(f), "--model", "x.onnx"], ros_env)
    assert proc.returncode == 1
    assert "scale_policy" in proc.stderr and str(f) in proc.stderr, proc.stderr
