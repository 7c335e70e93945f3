"""Untrusted configuration files: the scene config of ``depth-ros synth`` and a bag directory's
metadata.yaml — aliases ("billion laughs"), deep nesting, non-UTF-8 bytes and huge files are
one-line errors, within an address-space limit."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from depth_ros.errors import InputError
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


def _refused_in_child(setup: str, call: str, error_import: str) -> str:
    """Run ``call`` in a child process under :data:`SMALL_AS` (after the import line ``setup``)
    and check that it raises the exception that ``error_import`` imports (``from m import E``),
    not a crash or ``MemoryError``. Returns the child's stdout, ``REFUSED: <message>``."""
    error = error_import.rsplit(" ", 1)[-1]
    code = textwrap.dedent(f"""
        {setup}
        {error_import}
        try:
            {call}
        except {error} as exc:
            print("REFUSED:", exc)
    """)
    proc = run_limited([sys.executable, "-c", code], as_bytes=SMALL_AS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "REFUSED:" in proc.stdout, proc.stdout
    return proc.stdout


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
    out = _refused_in_child("from depth_ros.synthetic.config import load_config", f"load_config({str(cfg)!r})",
                            "from depth_ros.errors import InputError")
    assert "larger than" in out


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
    out = _refused_in_child("from depth_ros.bag.reader import BagReader", f"BagReader({str(bag)!r}).open()",
                            "from depth_ros.errors import BagError")
    assert "bag" in out


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
    out = _refused_in_child("from depth_ros.ros.runner import check_params_file", f"check_params_file({str(params)!r})",
                            "from depth_ros.ros.params import ParameterError")
    assert "params.yaml" in out and needle in out, out
