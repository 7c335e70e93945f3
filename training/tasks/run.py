"""``depth-ros-train fit|validate`` and ``export`` for the labelled tasks (``task: midas`` /
``task: depth_pro``), called by :mod:`depth_ros_training.cli`.

A task YAML has the SC-Depth file's layout (config/train.yaml) plus ``task:``::

    task: midas                     # or depth_pro; absent: sc_depth (the jsonargparse path)
    seed_everything: 0
    trainer: {max_steps: ..., ...}  # Trainer keywords
    checkpoint: {every_minutes: ...}  # ResumeCheckpoint keywords
    model: {...}                    # MidasConfig / DepthProConfig fields
    data:
      data: {groups: [...], height: ..., width: ...}   # LabelledDataConfig
      batch_size: 4
      num_workers: 2

The network's input size and normalisation are given once, in ``data.data`` (``height``,
``width``, ``mean``/``std`` there are copied to ``model.image_height``, ... as the SC-Depth parser
links them); giving both and disagreeing is an error. Later ``--config`` files and dotted flags
(``--trainer.max_steps 10``, ``--model.lr 3e-4``; values parsed as YAML) override earlier values.

Before the first step every group's label source is checked in every bag
(:func:`~depth_ros_training.data.labelled.check_label_sources`) and the label kinds against the
task's losses (:func:`check_task_labels`): a one-line error naming the bag, topic or key.
"""
from __future__ import annotations

import copy
import inspect
import logging
from pathlib import Path
from typing import Any, Mapping

import yaml

from depth_ros.errors import DepthRosError, ModelError

__all__ = ["TaskConfigError", "build_task", "check_task_labels", "export_task_checkpoint", "parse_task_argv", "run_task", "task_of_argv"]

log = logging.getLogger(__name__)

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


def build_task(task: str, model: Mapping[str, Any], group_names: tuple[str, ...] = ()) -> Any:
    """The LightningModule of ``task`` from its ``model:`` keys.

    Raises:
        TaskConfigError: a key the task's config refuses (``model.<key> ...``).
    """
    from depth_ros_training.tasks.depth_pro import DepthProConfig, DepthProTask
    from depth_ros_training.tasks.midas import MidasConfig, MidasTask

    tasks = {"midas": (MidasTask, MidasConfig), "depth_pro": (DepthProTask, DepthProConfig)}
    if task not in tasks:
        raise TaskConfigError(f"task {task!r} is not built here; one of {', '.join(tasks)}")
    cls, config_cls = tasks[task]
    known = {f for f in config_cls.__dataclass_fields__}
    unknown = sorted(set(model) - known)
    if unknown:
        raise TaskConfigError(f"model: unknown key(s) {', '.join(unknown)} for task {task}; known: {', '.join(sorted(known))}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in model.items()}
    try:
        return cls(group_names=group_names, **kwargs)
    except (TypeError, ValueError) as exc:
        raise TaskConfigError(f"model.{exc}") from None


def check_task_labels(task: str, model: Any, data: Any) -> None:
    """The label kinds against the task's losses, before training.

    MiDaS takes every kind (all are inverse depth up to scale and shift). Depth Pro's metric MAE
    needs at least one ``metric_depth`` group; its stage 2 trains on exact groups only, so it
    needs an exact ``metric_depth`` group.

    Raises:
        TaskConfigError: naming the groups and what was expected.
    """
    if task != "depth_pro":
        return
    metric = [g.name for g in data.groups if g.label.kind == "metric_depth"]
    if not metric:
        kinds = ", ".join(f"{g.name}: {g.label.kind}" for g in data.groups)
        raise TaskConfigError(f"data.data.groups: task depth_pro learns metric canonical inverse depth and needs a metric_depth group; got {kinds}")
    if model.config.stage == 2 and not any(g.exact and g.label.kind == "metric_depth" for g in data.groups):
        raise TaskConfigError("model.stage 2 trains on exact labels only; mark a metric_depth group exact: true (synthetic / rendered depth)")


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


def run_task(command: str, task: str, argv: list[str]) -> int:
    """``fit`` / ``validate`` of a labelled task (see the module docstring)."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from depth_ros_training.callbacks import EpochProgressBar, tidy_lightning_output
    from depth_ros_training.checkpoint import ResumeCheckpoint, SafeCheckpointIO, checkpoint_callbacks
    from depth_ros_training.cli import _build_trainer, resolve_last_checkpoint
    from depth_ros_training.data.labelled import LabelledDataModule, check_label_sources
    from depth_ros_training.logline import PeriodicLogLine, wants_log_lines

    tidy_lightning_output()
    tree = parse_task_argv(argv)
    tree["task"] = task
    seed = tree.get("seed_everything", 0)
    if seed is not None:
        pl.seed_everything(int(seed), workers=True)
    data_config, batch_size, num_workers = _data_objects(tree)
    model = build_task(task, _link_sizes(tree), tuple(g.name for g in data_config.groups))
    check_task_labels(task, model, data_config)
    check_label_sources(data_config)  # a missing label topic stops here, before any step
    try:
        resume = ResumeCheckpoint(**(tree.get("checkpoint") or {}), dirpath=None)
    except (TypeError, ValueError) as exc:
        raise TaskConfigError(f"checkpoint: {exc}") from None
    data = LabelledDataModule(data_config, batch_size=batch_size, num_workers=num_workers)
    trainer_kwargs = dict(tree.get("trainer") or {})
    allowed = set(inspect.signature(pl.Trainer).parameters) - {"callbacks", "logger", "plugins", "profiler"}
    unknown = sorted(set(trainer_kwargs) - allowed)
    if unknown:
        raise TaskConfigError(f"trainer: unknown key(s) {', '.join(unknown)} (Trainer keywords; callbacks, logger, plugins are set by depth-ros-train)")
    root = Path(trainer_kwargs.get("default_root_dir") or ".")
    ckpt = tree.get("ckpt_path")
    ckpt_path = resolve_last_checkpoint(root) if ckpt == "last" else ckpt
    logger = TensorBoardLogger(str(root), name="lightning_logs")
    callbacks: list[Any] = checkpoint_callbacks(resume) if command == "fit" else [ModelCheckpoint(save_last=True)]
    if trainer_kwargs.get("enable_progress_bar") is not False:
        callbacks.append(EpochProgressBar())
    if command == "fit" and wants_log_lines():
        callbacks.append(PeriodicLogLine())
    trainer = _build_trainer(trainer_kwargs, logger=logger, callbacks=callbacks, plugins=[SafeCheckpointIO()])
    if trainer.is_global_zero:
        log_dir = Path(logger.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "config.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    if command == "fit":
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    else:
        trainer.validate(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    return 0


def load_task_module(task: str, hparams: Mapping[str, Any], state: Mapping[str, Any], path: str | Path) -> Any:
    """A trained task module from a checkpoint's hyper-parameters and weights (CPU, eval mode).

    Raises:
        ModelError: the weights do not fit the task's networks.
    """
    hp = {k: v for k, v in hparams.items() if k not in ("task", "group_names")}
    hp["encoder_weights_path"] = None  # the state dict holds every weight; never read a path from a checkpoint
    try:
        module = build_task(task, hp, tuple(hparams.get("group_names") or ()))
        module.load_state_dict(state, strict=True)
    except (TaskConfigError, RuntimeError) as exc:
        raise ModelError(f"{path}: not a {task} checkpoint of this version ({' '.join(str(exc).split())[:300]})") from None
    return module.eval()


def export_task_checkpoint(checkpoint: str | Path, output_dir: str | Path, name: str | None = None, check_parity: bool = True) -> Any:
    """``depth-ros-train export`` of a labelled task's checkpoint, or None when the checkpoint is an
    SC-Depth one or unreadable (the caller exports it as before, with its own errors).

    Returns:
        :class:`~depth_ros_training.tasks.common.ExportedTask` or None.
    """
    from depth_ros_training.tasks import LABELLED_TASKS
    from depth_ros_training.tasks.common import load_task_checkpoint

    try:
        task, hparams, state = load_task_checkpoint(checkpoint)
    except ModelError:
        return None  # not readable as a task checkpoint: the SC-Depth export reports it as before
    if task not in LABELLED_TASKS:
        return None
    if task == "zoedepth":
        from depth_ros_training.tasks.zoedepth import export_zoedepth

        return export_zoedepth(checkpoint, output_dir, name=name, check_parity=check_parity)
    module = load_task_module(task, hparams, state, checkpoint)
    if task == "midas":
        from depth_ros_training.tasks.midas import export_midas

        return export_midas(module, output_dir, name=name, check_parity=check_parity)
    from depth_ros_training.tasks.depth_pro import export_depth_pro

    return export_depth_pro(module, output_dir, name=name, check_parity=check_parity)
