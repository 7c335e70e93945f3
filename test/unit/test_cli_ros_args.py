"""``--ros-args`` on the ``depth-ros`` command line, as ROS tools take it: anywhere after the
command, up to a lone ``--`` or the end (the help text promises ``[--ros-args ...]``)."""
from __future__ import annotations

import pytest

from depth_ros.cli import parse_command_line, split_ros_args
from depth_ros.ros.runner import build_ros_args


@pytest.mark.parametrize(
    ("argv", "own", "ros"),
    [
        (["play", "b.mcap"], ["play", "b.mcap"], []),
        (["play", "b.mcap", "--ros-args", "-r", "__ns:=/x"], ["play", "b.mcap"], ["--ros-args", "-r", "__ns:=/x"]),
        (["play", "--ros-args", "-r", "__ns:=/x", "--", "b.mcap", "--loop"], ["play", "b.mcap", "--loop"],
         ["--ros-args", "-r", "__ns:=/x"]),
        (["run", "--ros-args", "-p", "a:=1", "--", "--model", "m", "--ros-args", "-p", "b:=2"], ["run", "--model", "m"],
         ["--ros-args", "-p", "a:=1", "--ros-args", "-p", "b:=2"]),
    ],
)
def test_split_ros_args(argv: list[str], own: list[str], ros: list[str]) -> None:
    assert split_ros_args(argv) == (own, ros)


def test_run_takes_ros_args_directly() -> None:
    args = parse_command_line(["run", "--model", "m.onnx", "--ros-args", "-p", "threads:=1", "-r", "__ns:=/front"])
    assert args.model == "m.onnx"
    assert build_ros_args(args) == ["depth-ros-run", "--ros-args", "-p", "threads:=1", "-r", "__ns:=/front"]


def test_run_still_takes_them_after_a_double_dash() -> None:
    args = parse_command_line(["run", "--model", "m.onnx", "--", "--ros-args", "-p", "threads:=1"])
    assert build_ros_args(args) == ["depth-ros-run", "--ros-args", "-p", "threads:=1"]


def test_run_options_and_ros_args_combine() -> None:
    args = parse_command_line(["run", "--namespace", "cam", "--ros-args", "-p", "threads:=2"])
    assert build_ros_args(args) == ["depth-ros-run", "--ros-args", "-r", "__ns:=/cam", "-p", "threads:=2"]


def test_play_keeps_its_ros_args_for_rclpy() -> None:
    args = parse_command_line(["play", "b.mcap", "--ros-args", "-r", "__ns:=/x", "--", "--rate", "2"])
    assert str(args.bag) == "b.mcap" and args.rate == 2.0
    assert args.ros_argv == ["depth-ros-play", "--ros-args", "-r", "__ns:=/x"]


def test_without_ros_args_nothing_is_added() -> None:
    args = parse_command_line(["play", "b.mcap"])
    assert args.ros_argv is None
    assert build_ros_args(parse_command_line(["run"])) == ["depth-ros-run"]


def test_run_lifecycle_starts_the_managed_depth_node(monkeypatch) -> None:
    """``depth-ros run --lifecycle``: the depth node kind is the managed one, with the same
    parameter overrides (its node name, depth_node, keeps params files applying)."""
    import argparse

    from depth_ros.ros import runner

    calls = []
    monkeypatch.setattr(runner, "run_nodes", lambda kinds, **kw: calls.append((kinds, kw["overrides"])) or 0)
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    for argv, kinds in ((["--model", "m.onnx"], ["depth"]), (["--lifecycle", "--model", "m.onnx", "--use-pose"], ["depth_lifecycle", "pose"])):
        calls.clear()
        assert runner.run(parser.parse_args(argv)) == 0
        [(got, overrides)] = calls
        assert got == kinds and overrides[kinds[0]]["model_path"] == "m.onnx"
    assert runner.NODE_NAMES["depth_lifecycle"] == "depth_node"
