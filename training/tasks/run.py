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

import inspect
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from depth_ros.errors import ModelError

# the configuration side lives in .config (shared with the zoedepth runner); re-exported here
from depth_ros_training.tasks.config import (
    TaskConfigError,
    _data_objects,
    _link_sizes,
    parse_task_argv,
    task_of_argv,
)

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
    """``fit`` / ``validate`` of a labelled task (see the module docstring).

    Args:
        command: ``fit`` or ``validate``.
        task: the task's name (saved as ``task`` in the tree and the run's config.yaml).
        argv: the ``--config`` files and dotted flags.
        build_model: ``build_model(task, model_keys, data_config)`` -> the LightningModule, its
            label kinds checked, raising :class:`TaskConfigError` for a bad key; None: the MiDaS /
            Depth Pro builder (:func:`build_task`, :func:`check_task_labels`). ZoeDepth passes its own.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from depth_ros_training.callbacks import EpochProgressBar, tidy_lightning_output
    from depth_ros_training.checkpoint import ResumeCheckpoint, SafeCheckpointIO, checkpoint_callbacks
    from depth_ros_training.trainer import _build_trainer, resolve_last_checkpoint
    from depth_ros_training.data.labelled import LabelledDataModule, check_label_sources
    from depth_ros_training.logline import PeriodicLogLine, wants_log_lines

    tidy_lightning_output()
    tree = parse_task_argv(argv)
    tree["task"] = task
    seed = tree.get("seed_everything", 0)
    if seed is not None:
        pl.seed_everything(int(seed), workers=True)
    data_config, batch_size, num_workers = _data_objects(tree)
    model = (build_model or _build_labelled)(task, _link_sizes(tree), data_config)
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
