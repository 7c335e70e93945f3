"""`colcon build` of a workspace holding this repository, with the pip ROS 2 wheels, the way the
README says (the repository in ws/src, its virtualenv .venv inside it, activated), and the
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
    src = ws / "src" / "depth_ros"
    src.mkdir(parents=True)
    # the repository's files, not a symbolic link to it: CMake must see the virtualenv inside
    # its source directory, as after `git clone` + ./bootstrap.sh
    for rel in _tracked_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    venv = src / ".venv"
    # the test's virtualenv, hard-linked (no copy of its 1.5 GB): Python takes the prefix from
    # the pyvenv.cfg beside the interpreter it runs, so numpy's include directory is reported
    # inside the source tree, as for a virtualenv built there
    link = subprocess.run(["cp", "-al", sys.prefix, str(venv)], capture_output=True, text=True)
    assert link.returncode == 0, f"cannot hard-link the virtualenv into the workspace: {link.stderr}"
    venv_bin = str(venv / "bin")
    env = dict(ros_env)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(venv)
    env["AMENT_PREFIX_PATH"] = str(venv)  # the wheels' ament index
    numpy_include = subprocess.run([str(venv / "bin" / "python"), "-c", "import numpy; print(numpy.get_include())"],
                                   capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert numpy_include.startswith(str(src)), numpy_include
    proc = subprocess.run(
        [str(Path(venv_bin) / "python"), "-m", "colcon", "build", "--event-handlers", "console_direct+"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return ws


def _tracked_files() -> list[str]:
    """The repository's files (git ls-files: tracked and not ignored; the tree walked without
    build outputs where git is absent)."""
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True)
    if proc.returncode == 0 and proc.stdout:
        return [f for f in proc.stdout.decode().split("\0") if f and (REPO / f).is_file()]
    skip = {".git", ".venv", "build", "install", "log", "__pycache__"}
    return [str(p.relative_to(REPO)) for p in REPO.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(REPO).parts)]


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
