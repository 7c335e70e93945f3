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

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from depth_ros.errors import ModelError

# the configuration side lives in .config (shared with the runner); re-exported here
from depth_ros_training.tasks.config import TaskConfigError, parse_task_argv, task_of_argv

__all__ = ["TaskConfigError", "build_task", "check_task_labels", "export_task_checkpoint", "parse_task_argv", "run_task", "task_of_argv"]

log = logging.getLogger(__name__)


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


def _build_labelled(task: str, model: Mapping[str, Any], data_config: Any) -> Any:
    """:func:`build_task` then :func:`check_task_labels`: the default ``build_model`` of :func:`run_task`."""
    module = build_task(task, model, tuple(g.name for g in data_config.groups))
    check_task_labels(task, module, data_config)
    return module


def run_task(command: str, task: str, argv: list[str], build_model: Callable[[str, Mapping[str, Any], Any], Any] | None = None) -> int:
    """``fit`` / ``validate`` of a labelled task (see the module docstring): the runner of
    :mod:`depth_ros_training.tasks.runner` with ``build_model`` (None: the MiDaS / Depth Pro
    builder, :func:`build_task` then :func:`check_task_labels`)."""
    from depth_ros_training.tasks.runner import run_labelled_task

    return run_labelled_task(command, task, argv, build_model or _build_labelled)


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
    from depth_ros_training.tasks.train_camera import labelled_run_camera_fields

    canonical = task == "depth_pro" and module.config.output == "canonical"
    module.train_camera_fields = labelled_run_camera_fields(checkpoint, module.config.image_width, module.config.image_height, focal=not canonical)
    if task == "midas":
        from depth_ros_training.tasks.midas import export_midas

        return export_midas(module, output_dir, name=name, check_parity=check_parity)
    from depth_ros_training.tasks.depth_pro import export_depth_pro

    return export_depth_pro(module, output_dir, name=name, check_parity=check_parity)

