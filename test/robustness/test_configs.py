"""Untrusted configuration files: the scene config of ``depth-ros synth`` and a bag directory's
metadata.yaml — aliases ("billion laughs"), deep nesting, non-UTF-8 bytes and huge files are
one-line errors, within an address-space limit."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from depth_ros.errors import BagError, InputError
from depth_ros.safeio import json_nesting_exceeds, load_yaml_bounded, read_text_capped
from depth_ros.synthetic.config import load_config

from harness import SMALL_AS, assert_one_line_error, run_limited


def _billion_laughs(root_key: str) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    lines.append(f"{root_key}: *i")
    return "\n".join(lines) + "\n"


def test_billion_laughs_scene_config_is_refused_within_memory(tmp_path: Path) -> None:
    cfg = tmp_path / "scene.yaml"
    cfg.write_text(_billion_laughs("frames"))
    assert len(cfg.read_bytes()) < 1024
    proc = run_limited([sys.executable, "-m", "depth_ros.cli", "synth", "-o", str(tmp_path / "s.mcap"), "--config", str(cfg)],
                       as_bytes=SMALL_AS)
    assert_one_line_error(proc, "scene.yaml", "aliases")
    assert not (tmp_path / "s.mcap").exists()


@pytest.mark.parametrize(
    "body, needle",
    [
        (b"frames: 3\nwidth: \xff\xfe\n", "not UTF-8 text (invalid byte at offset 17)"),
        (b"frames: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested more than"),
        (b"frames: [1, 2\n", "not valid YAML"),
        (b"frames: \x1b[2J\n", "not valid YAML"),
    ],
    ids=["not_utf8", "nested_5000", "unclosed", "escape"],
)
def test_bad_scene_configs_are_one_line(tmp_path: Path, body: bytes, needle: str) -> None:
    cfg = tmp_path / "scene.yaml"
    cfg.write_bytes(body)
    with pytest.raises(InputError, match="scene.yaml") as err:
        load_config(cfg)
    assert needle in str(err.value) and "\n" not in str(err.value) and "\x1b" not in str(err.value)


def test_a_huge_config_is_refused_before_it_is_read(tmp_path: Path) -> None:
    cfg = tmp_path / "scene.yaml"
    with open(cfg, "wb") as f:  # sparse: 4 GiB claimed, nothing on disk
        f.truncate(4 << 30)
    code = textwrap.dedent(f"""
        from depth_ros.synthetic.config import load_config
        from depth_ros.errors import InputError
        try:
            load_config({str(cfg)!r})
        except InputError as exc:
            print("REFUSED:", exc)
    """)
    proc = run_limited([sys.executable, "-c", code], as_bytes=SMALL_AS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "REFUSED:" in proc.stdout and "larger than" in proc.stdout


def test_safeio_primitives() -> None:
    assert json_nesting_exceeds('{"a": [[["]]]]]"]]]}', 4) is False  # brackets in strings do not count
    assert json_nesting_exceeds("[" * 10 + "]" * 10, 9) is True
    assert load_yaml_bounded("a: [1, {b: 2}]", "x", max_nesting=3) == {"a": [1, {"b": 2}]}
    with pytest.raises(InputError, match="x: YAML aliases"):
        load_yaml_bounded("a: &r 1\nb: *r\n", "x", max_nesting=3)
    with pytest.raises(InputError, match="nested more than 2"):
        load_yaml_bounded("a: [[1]]", "x", max_nesting=2)


def test_read_text_capped_refuses_directories_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not a regular file"):
        read_text_capped(tmp_path, 10)
    with pytest.raises(InputError, match="does not exist"):
        read_text_capped(tmp_path / "nope.yaml", 10)


def test_billion_laughs_bag_metadata_is_a_bag_error_within_memory(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text(_billion_laughs("rosbag2_bagfile_information"))
    code = textwrap.dedent(f"""
        from depth_ros.bag.reader import BagReader
        from depth_ros.errors import BagError
        try:
            BagReader({str(bag)!r}).open()
        except BagError as exc:
            print("REFUSED:", exc)
    """)
    proc = run_limited([sys.executable, "-c", code], as_bytes=SMALL_AS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "REFUSED:" in proc.stdout and "bag" in proc.stdout


@pytest.mark.parametrize(
    "body, needle",
    [
        (None, "aliases"),
        (b"/**/depth_node:\n  ros__parameters:\n    threads: \xff\n", "not UTF-8"),
        (b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested more than"),
    ],
    ids=["billion_laughs", "not_utf8", "nested"],
)
def test_bad_params_files_are_one_line_within_memory(tmp_path: Path, body: bytes | None, needle: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_bytes(body if body is not None else _billion_laughs("depth_node").encode())
    code = textwrap.dedent(f"""
        from depth_ros.ros.params import ParameterError
        from depth_ros.ros.runner import check_params_file
        try:
            check_params_file({str(params)!r})
        except ParameterError as exc:
            print("REFUSED:", exc)
    """)
    proc = run_limited([sys.executable, "-c", code], as_bytes=SMALL_AS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "REFUSED:" in proc.stdout and "params.yaml" in proc.stdout and needle in proc.stdout, proc.stdout
