"""depth_ros.bag (and the rotation math it uses) imports and reads a bag without torch or rclpy:
the bag tools run on machines with only onnxruntime, and outside a ROS install."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from test_bag_support import camera_records, write_bag

from depth_ros.core.camera import CameraModel

_BLOCKED = ("torch", "rclpy", "lightning", "kornia", "torchvision")

_SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    BLOCKED = {blocked!r}

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("blocked " + name)
            return None

    sys.meta_path.insert(0, Block())
    import depth_ros.bag
    names = sorted(m.name for m in pkgutil.iter_modules(depth_ros.bag.__path__, "depth_ros.bag."))
    for name in names + ["depth_ros.core.rotation"]:
        importlib.import_module(name)
    from depth_ros.bag.reader import BagReader, select_camera_topics
    with BagReader({bag!r}) as reader:
        print(select_camera_topics(reader.topics), len(reader.static_transforms()))
        print(sum(1 for m in reader.messages(["/cam/image_raw"]) if reader.deserialize(m).width == 8))
    print(len(names), sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
    """
)


def test_bag_package_imports_and_reads_without_torch_and_rclpy(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "b.mcap", camera_records(2, CameraModel.from_intrinsics(8, 6, 5.0, 5.0, 3.5, 2.5)))
    script = _SCRIPT.format(blocked=_BLOCKED, bag=str(bag))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "('/cam/image_raw', '/cam/camera_info') 0"
    assert lines[1] == "2"
    count, loaded = lines[2].split(" ", 1)
    assert int(count) >= 7 and loaded == "[]"  # every module of the package, none of the blocked ones
