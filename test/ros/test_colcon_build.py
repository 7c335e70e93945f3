"""`colcon build` of a workspace holding this repository, with the pip ROS 2 wheels, and the
built node running from the install space (its messages and code from install/, not the
source tree or the virtualenv)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Graph, Harness, NodeProcess

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workspace(ros_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cmake") is None:
        pytest.fail("cmake is needed to build the messages (apt install cmake)")
    ws = tmp_path_factory.mktemp("colcon_ws")
    (ws / "src").mkdir()
    (ws / "src" / "depth_ros").symlink_to(REPO, target_is_directory=True)
    venv_bin = str(Path(sys.executable).parent)
    env = dict(ros_env)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["AMENT_PREFIX_PATH"] = sys.prefix  # the wheels' ament index
    proc = subprocess.run(
        [str(Path(venv_bin) / "colcon"), "build", "--event-handlers", "console_direct-"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return ws


def _install_env(ws: Path, base: dict[str, str]) -> list[str]:
    return ["bash", "-c", f". '{ws}/install/setup.sh' && exec \"$@\"", "sh"]


def test_install_space_layout(workspace: Path) -> None:
    share = workspace / "install" / "depth_ros" / "share" / "depth_ros"
    lib = workspace / "install" / "depth_ros" / "lib"
    assert (share / "msg" / "DepthInfo.msg").is_file()
    assert (share / "launch" / "depth.launch.py").is_file() and (share / "config" / "depth.yaml").is_file()
    assert (workspace / "install" / "depth_ros" / "share" / "ament_index" / "resource_index" / "packages" / "depth_ros").is_file()
    for exe in ("depth_node", "pose_node"):
        assert os.access(lib / "depth_ros" / exe, os.X_OK), exe
    assert list(lib.glob("libdepth_ros__rosidl_typesupport_c.so"))


def test_installed_modules_come_from_the_install_space(workspace: Path, ros_env: dict[str, str]) -> None:
    code = "import depth_ros.msg, depth_ros.ros.depth_node as d; print(depth_ros.msg.__file__); print(d.__file__)"
    proc = subprocess.run(_install_env(workspace, ros_env) + [sys.executable, "-c", code], env=ros_env, cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    install = str(workspace / "install" / "depth_ros")
    assert all(line.startswith(install) for line in proc.stdout.split()), proc.stdout


def test_installed_depth_node_runs(workspace: Path, ros_env: dict[str, str], models: dict[str, Path], graph: Graph,
                                   tmp_path: Path) -> None:
    exe = workspace / "install" / "depth_ros" / "lib" / "depth_ros" / "depth_node"
    argv = _install_env(workspace, ros_env) + [str(exe), "--ros-args", "-r", "__ns:=/colcon",
                                                "-p", f"model_path:={models['plane']}", "-p", "backend:=onnxruntime-cpu"]
    proc = NodeProcess(argv, ros_env, tmp_path / "node.log")
    try:
        proc.wait_log("model 'plane_2m'", 60.0)
        h = Harness(graph, proc, "/colcon")
        t = h.warm_up(10 * 1_000_000_000)
        assert h.meta[-1].model == "plane_2m" and t in h.stamps(h.depth)
    finally:
        assert proc.stop() == 0
