"""Static checks of launch/*.launch.py (launch and launch_ros are not installable from pip).

* Every Node started is a depth_ros executable that CMakeLists.txt installs into
  lib/depth_ros, backed by a module with a ``main``.
* Every parameter a launch file sets is declared by that node's config dataclass.
* Every LaunchConfiguration used is a declared argument with a description; included launch
  files get only arguments they declare.
* Every package file referenced (FindPackageShare paths) exists in the repo and is installed.
* The files run: ``generate_launch_description()`` executed against recording stand-ins for
  the launch / launch_ros classes builds the expected actions.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from depth_ros.ros.multi_depth_node import OWN_PARAMETERS as MULTI_CAMERA_PARAMETERS
from depth_ros.ros.params import DepthNodeConfig, PoseNodeConfig

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
NODE_CONFIGS = {"depth_node": DepthNodeConfig, "depth_lifecycle_node": DepthNodeConfig, "pose_node": PoseNodeConfig}
BUILTIN_PARAMETERS = {"use_sim_time"}


def cmake_executables() -> dict[str, str]:
    """executable -> module, from CMakeLists.txt's "name:module" list."""
    text = (REPO / "CMakeLists.txt").read_text()
    return dict(re.findall(r'"(\w+):(depth_ros(?:\.\w+)+)"', text))


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _calls(tree: ast.AST, func_name: str) -> list[ast.Call]:
    return [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and (getattr(n.func, "id", None) == func_name or getattr(n.func, "attr", None) == func_name)
    ]


def _declared_arguments(tree: ast.AST) -> dict[str, ast.Call]:
    out = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        assert isinstance(call.args[0], ast.Constant), "argument names must be literals"
        out[call.args[0].value] = call
    return out


def test_there_are_launch_files() -> None:
    assert {p.name for p in LAUNCH_FILES} == {"depth.launch.py", "multi_depth.launch.py", "replay.launch.py"}


def test_cmake_installs_executables_launch_and_config() -> None:
    exes = cmake_executables()
    assert {"depth_node", "pose_node", "play"} <= set(exes)
    for module in exes.values():
        assert callable(getattr(importlib.import_module(module), "main", None)), module
    text = (REPO / "CMakeLists.txt").read_text()
    assert re.search(r"install\(DIRECTORY launch config DESTINATION", text)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_nodes_are_installed_executables_with_declared_parameters(path: Path) -> None:
    tree = ast.parse(path.read_text())
    exes = cmake_executables()
    nodes = _calls(tree, "Node") + _calls(tree, "LifecycleNode")
    assert nodes, f"{path.name} starts no Node"
    for call in nodes:
        package, executable = _kw(call, "package"), _kw(call, "executable")
        assert isinstance(package, ast.Constant) and package.value == "depth_ros"
        assert isinstance(executable, ast.Constant) and executable.value in exes, ast.dump(call)
        params = _kw(call, "parameters")
        if params is None:  # given through **kwargs: checked on the built actions (test_node_parameters_are_declared)
            continue
        assert isinstance(params, ast.List)
        names = _parameter_names(executable.value)
        for item in params.elts:
            if isinstance(item, ast.Dict):
                for key in item.keys:
                    assert isinstance(key, ast.Constant), "parameter names must be literals"
                    assert key.value in names, f"{path.name}: {executable.value} has no parameter {key.value!r}"


def _parameter_names(executable: str) -> set[str]:
    """The parameters the node of ``executable`` declares (its config dataclass) and the builtins;
    the multi-camera node takes its own and passes the rest to its depth nodes."""
    if executable == "multi_depth_node":
        return set(MULTI_CAMERA_PARAMETERS) | _parameter_names("depth_node")
    return {f.name for f in dataclasses.fields(NODE_CONFIGS[executable])} | BUILTIN_PARAMETERS


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_configurations_are_declared_with_descriptions(path: Path) -> None:
    tree = ast.parse(path.read_text())
    declared = _declared_arguments(tree)
    for name, call in declared.items():
        desc = _kw(call, "description")
        assert isinstance(desc, ast.Constant) and len(desc.value) > 10, f"{path.name}: {name} needs a description"
    for call in _calls(tree, "LaunchConfiguration"):
        assert call.args[0].value in declared, f"{path.name}: LaunchConfiguration({call.args[0].value!r}) not declared"


def test_depth_launch_arguments() -> None:
    declared = set(_declared_arguments(ast.parse((REPO / "launch" / "depth.launch.py").read_text())))
    assert {"namespace", "image_topic", "camera_info_topic", "model", "backend", "params_file", "use_pose"} <= declared


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_referenced_package_files_exist(path: Path) -> None:
    tree = ast.parse(path.read_text())
    found = 0
    for call in _calls(tree, "PathJoinSubstitution"):
        parts = call.args[0]
        assert isinstance(parts, ast.List)
        first = parts.elts[0]
        assert isinstance(first, ast.Call) and getattr(first.func, "id", "") == "FindPackageShare"
        assert first.args[0].value == "depth_ros"
        rel = [e.value for e in parts.elts[1:]]
        assert rel[0] in ("launch", "config"), f"{rel}: only launch/ and config/ are installed to share/"
        assert (REPO.joinpath(*rel)).is_file(), f"{path.name} references missing file {'/'.join(rel)}"
        found += 1
    assert found >= 1


# -- run the files against recording stand-ins ----------------------------------------------
class _Recorder:
    """Stands in for any launch class: records its arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def _stub_modules() -> dict[str, types.ModuleType]:
    names = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "IncludeLaunchDescription", "GroupAction", "ExecuteProcess", "Shutdown"],
        "launch.conditions": ["IfCondition", "UnlessCondition"],
        "launch.launch_description_sources": ["PythonLaunchDescriptionSource"],
        "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution", "PythonExpression", "TextSubstitution"],
        "launch_ros": [],
        "launch_ros.actions": ["Node", "LifecycleNode"],
        "launch_ros.substitutions": ["FindPackageShare"],
    }
    mods = {}
    for mod, classes in names.items():
        m = types.ModuleType(mod)
        for cls in classes:
            setattr(m, cls, type(cls, (_Recorder,), {}))
        mods[mod] = m
    return mods


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_generate_launch_description_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    actions = _built_actions(path, monkeypatch)
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    if path.name == "depth.launch.py":
        assert [n.kwargs["executable"] for n in nodes] == ["depth_node", "pose_node"]
        remaps = dict((a, b) for a, b in nodes[0].kwargs["remappings"])
        assert set(remaps) == {"image", "image/compressed", "camera_info", "sparse_points"}
        assert _render(remaps["sparse_points"], {"sparse_points_topic": "/lidar/cam"}) == "/lidar/cam"
        assert _render(remaps["image/compressed"], {"image_topic": "/cam/image"}) == "/cam/image/compressed"
        assert "condition" in nodes[1].kwargs  # pose only with use_pose
        # lifecycle:=true starts the managed depth node instead of the plain one, same set-up
        [managed] = [a for a in actions if type(a).__name__ == "LifecycleNode"]
        assert managed.kwargs["executable"] == "depth_lifecycle_node" and managed.kwargs["name"] == "depth_node"
        assert type(managed.kwargs["condition"]).__name__ == "IfCondition"
        assert type(nodes[0].kwargs["condition"]).__name__ == "UnlessCondition"
        assert managed.kwargs["remappings"] == nodes[0].kwargs["remappings"]
        nodes = nodes + [managed]
        for node in nodes:
            # a node that exits (bad model, crash) ends the launch instead of leaving the rest running
            assert type(node.kwargs.get("on_exit")).__name__ == "Shutdown", node.kwargs["executable"]
            given = {k: v for d in node.kwargs["parameters"] if isinstance(d, dict) for k, v in d.items()}
            assert _render(given["image_transport"], {"image_transport": "compressed"}) == "compressed"
    elif path.name == "multi_depth.launch.py":
        [node] = nodes
        assert node.kwargs["executable"] == "multi_depth_node" and node.kwargs["name"] == "depth_node"
        assert type(node.kwargs.get("on_exit")).__name__ == "Shutdown"
        given = {k: v for d in node.kwargs["parameters"] if isinstance(d, dict) for k, v in d.items()}
        assert _render(given["cameras"], {"cameras": "[front, rear]"}) == "[front, rear]"
        assert _render(given["model_path"], {"model": "/m.onnx"}) == "/m.onnx"
    else:
        from depth_ros.ros import play

        assert {n.kwargs["executable"] for n in nodes} == {"play"}
        parser = __import__("argparse").ArgumentParser()
        play.add_arguments(parser)
        flags = {a for n in nodes for a in n.kwargs["arguments"] if isinstance(a, str) and a.startswith("--")}
        known = {s for action in parser._actions for s in action.option_strings}
        assert flags <= known, flags - known
        for node in nodes:
            argv = node.kwargs["arguments"]
            rest = argv[argv.index("--topics") + 1:]
            played = rest[:next((i for i, a in enumerate(rest) if isinstance(a, str) and a.startswith("--")), len(rest))]
            for transport, image in (("raw", "/cam/image"), ("compressed", "/cam/image/compressed")):
                values = {"image_topic": "/cam/image", "camera_info_topic": "/cam/info", "image_transport": transport}
                assert [_render(t, values) for t in played] == [image, "/cam/info"]
            # the LiDAR topic for sparse_alignment: played only when the bag has it
            optional = argv[argv.index("--optional-topics") + 1]
            assert _render(optional, {"sparse_points_topic": "/lidar/cam"}) == "/lidar/cam"
        include = next(a for a in actions if type(a).__name__ == "IncludeLaunchDescription")
        included_args = set(_declared_arguments(ast.parse((REPO / "launch" / "depth.launch.py").read_text())))
        assert set(dict(include.kwargs["launch_arguments"])) <= included_args
        assert "image_transport" in dict(include.kwargs["launch_arguments"])
        assert "sparse_points_topic" in dict(include.kwargs["launch_arguments"])


def _built_actions(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The actions of ``generate_launch_description()``, run against the recording stand-ins."""
    for name, module in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace: dict[str, Any] = {"__name__": "launch_file"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    ld = namespace["generate_launch_description"]()
    assert type(ld).__name__ == "LaunchDescription"
    return ld.args[0]


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_node_parameters_are_declared(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every parameter a started node is given, however the launch file builds the list, is
    declared by that node's config dataclass (or is a builtin such as use_sim_time)."""
    nodes = [a for a in _built_actions(path, monkeypatch) if type(a).__name__ in ("Node", "LifecycleNode")]
    assert nodes, f"{path.name} starts no Node"
    for node in nodes:
        executable = node.kwargs["executable"]
        names = _parameter_names(executable) if executable in (*NODE_CONFIGS, "multi_depth_node") else BUILTIN_PARAMETERS
        for item in node.kwargs.get("parameters", []):
            if isinstance(item, dict):
                assert set(item) <= names, f"{path.name}: {executable} has no parameter(s) {sorted(set(item) - names)}"


def _render(value: Any, arguments: dict[str, str]) -> str:
    """A substitution of the stand-ins evaluated as launch would, with ``arguments`` given."""
    name = type(value).__name__
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "".join(_render(v, arguments) for v in value)
    if name == "LaunchConfiguration":
        return arguments[value.args[0]]
    if name == "PythonExpression":
        return str(eval(_render(value.args[0], arguments), {}))  # the launch file's own literal expression
    raise AssertionError(f"cannot render {name}")


def test_rviz_config_shows_our_depth_image_and_cloud() -> None:
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "depth.rviz").read_text())
    displays = cfg["Visualization Manager"]["Displays"]
    enabled = {(d["Class"], d.get("Topic", {}).get("Value")) for d in displays if d.get("Enabled")}
    assert ("rviz_default_plugins/Image", "/depth/image") in enabled
    assert ("rviz_default_plugins/PointCloud2", "/depth/points") in enabled
    # Our outputs are in the camera's optical frame (header copied from the image).
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"] == "camera_optical_frame"
