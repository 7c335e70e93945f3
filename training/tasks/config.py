"""Task configuration: the YAML tree of a labelled training task (``task: midas`` ...), read as
untrusted text, merged with ``--key value`` flags, checked key by key. Shared by the task
runners (:mod:`.run`, :mod:`.zoedepth`)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import yaml

from depth_ros.errors import DepthRosError

__all__ = ["TaskConfigError", "parse_task_argv", "task_of_argv"]

_TOP_KEYS = ("task", "seed_everything", "trainer", "checkpoint", "model", "data", "ckpt_path")
_MAX_CONFIG_BYTES = 1 << 20
_LINKS = (("height", "image_height"), ("width", "image_width"), ("mean", "mean"), ("std", "std"))


class TaskConfigError(DepthRosError, ValueError):
    """A task configuration value refused; the message names the key (``model.lr``, ``data.data.groups[0]``)."""


def _load_yaml(path: str) -> dict[str, Any]:
    from depth_ros.safeio import load_yaml_bounded, read_text_capped

    text = read_text_capped(Path(path), _MAX_CONFIG_BYTES, what="training config", error=TaskConfigError)
    loaded = load_yaml_bounded(text, path, max_nesting=16, what="training config", error=TaskConfigError)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise TaskConfigError(f"{path}: a training config is a mapping, got {type(loaded).__name__}")
    return loaded


def task_of_argv(argv: list[str]) -> str:
    """The task a ``fit``/``validate`` command line selects: ``--task T`` (last wins), else the
    ``task:`` key of the last ``--config`` file that has one, else ``sc_depth``.

    Raises:
        TaskConfigError: an unknown task (naming the choices).
    """
    from depth_ros_training.tasks import TASKS

    task = None
    configs = []
    for i, arg in enumerate(argv):
        value = argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("--task="):
            task = arg.split("=", 1)[1]
        elif arg == "--task" and value is not None:
            task = value
        elif arg.startswith("--config="):
            configs.append(arg.split("=", 1)[1])
        elif arg == "--config" and value is not None:
            configs.append(value)
    if task is None:
        for path in configs:
            if Path(path).is_file():
                found = _load_yaml(path).get("task")
                task = str(found) if found is not None else task
    task = task or "sc_depth"
    if task not in TASKS:
        raise TaskConfigError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return task


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise TaskConfigError(f"--{key}: {part} is not a mapping")
        node = child
    node[parts[-1]] = value


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_task_argv(argv: list[str]) -> dict[str, Any]:
    """The merged configuration of a labelled task's command line (``--config`` files in order,
    then ``--task``, ``--ckpt_path``, ``--seed_everything`` and dotted ``--a.b VALUE`` flags).

    Raises:
        TaskConfigError: a flag without a value, an unknown top-level key.
    """
    tree: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise TaskConfigError(f"unexpected argument {arg!r} (flags are --key VALUE)")
        key, eq, inline = arg[2:].partition("=")
        if eq:
            value_text, i = inline, i + 1
        else:
            if i + 1 >= len(argv):
                raise TaskConfigError(f"--{key} needs a value")
            value_text, i = argv[i + 1], i + 2
        if key == "config":
            tree = _merge(tree, _load_yaml(value_text))
            continue
        try:
            value = yaml.safe_load(value_text)
        except yaml.YAMLError:
            value = value_text
        _set_dotted(tree, key, value)
    unknown = sorted(set(tree) - set(_TOP_KEYS))
    if unknown:
        raise TaskConfigError(f"unknown top-level key(s) {', '.join(unknown)}; known: {', '.join(_TOP_KEYS)}")
    return tree


def _data_objects(tree: Mapping[str, Any]) -> tuple[Any, int, int]:
    from depth_ros_training.data.labelled import LabelledDataConfig
    from depth_ros_training.datamodule import check_loader_sizes

    data = dict(tree.get("data") or {})
    inner = data.pop("data", None)
    if not isinstance(inner, Mapping):
        raise TaskConfigError("data.data: a labelled task needs data.data with its label groups (data.data.groups: [{name, bags, label: {kind, gt_topic|lidar_topic|teacher}, weight}])")
    batch_size, num_workers = data.pop("batch_size", 4), data.pop("num_workers", 0)
    if data:
        raise TaskConfigError(f"data: unknown key(s) {', '.join(sorted(data))}; known: data, batch_size, num_workers")
    try:
        check_loader_sizes(batch_size, num_workers)
    except ValueError as exc:
        raise TaskConfigError(f"data.{exc}") from None
    try:
        config = LabelledDataConfig.from_dict(inner)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        raise TaskConfigError(text if text.startswith("data") else f"data.data: {text}") from None
    return config, batch_size, num_workers


def _link_sizes(tree: dict[str, Any]) -> dict[str, Any]:
    """``model.image_height`` etc. from ``data.data.height`` etc. (given once; disagreeing is an error)."""
    model = dict(tree.get("model") or {})
    inner = ((tree.get("data") or {}).get("data") or {})
    for src, dst in _LINKS:
        if src in inner:
            value = inner[src]
            if dst in model and _as_cmp(model[dst]) != _as_cmp(value):
                raise TaskConfigError(f"model.{dst} ({model[dst]}) differs from data.data.{src} ({value}); give it once, in data.data")
            model[dst] = value
    return model


def _as_cmp(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value
