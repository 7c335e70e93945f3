"""Files the package writes for other processes (engines, checkpoints, exported models) get the
umask's mode, as ``open`` would create them: ``mkstemp``'s 0600 made them unreadable by a node
running as another user."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from depth_ros.inference.engine_cache import atomic_write_bytes
from depth_ros.safeio import write_atomically


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_engine_cache_files_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "cache" / "model.engine"
    atomic_write_bytes(path, b"engine")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_bytes() == b"engine"
    assert [p.name for p in path.parent.iterdir()] == ["model.engine"]


def test_torch_checkpoints_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    from depth_ros.inference.spec import ModelSpec
    from depth_ros.inference.torch_backend import save_checkpoint
    from depth_ros_training.models.dispnet import DispNet

    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=64, input_width=96, name="dispnet18")
    path = save_checkpoint(tmp_path / "m.pt", DispNet(num_layers=18, num_scales=1), spec,
                           arch_kwargs={"num_layers": 18, "num_scales": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def boom(f) -> None:
        f.write(b"half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        write_atomically(path, boom)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]
