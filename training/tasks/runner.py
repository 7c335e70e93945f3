"""The trainer of the labelled tasks' ``fit`` / ``validate`` (MiDaS, Depth Pro, ZoeDepth stage 2):
the task YAML parsed, the data checked, the task's model built by a given ``build_model``, then a
Lightning Trainer with the run's checkpoints, logs and ``config.yaml``.

Called through :func:`depth_ros_training.tasks.run.run_task` and
:func:`depth_ros_training.tasks.zoedepth.run_zoedepth` (each with its builder); it imports
neither, so neither import cycles through it.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from depth_ros_training.tasks.config import TaskConfigError, _data_objects, _link_sizes, parse_task_argv

__all__ = ["run_labelled_task"]


def run_labelled_task(command: str, task: str, argv: list[str], build_model: Callable[[str, Mapping[str, Any], Any], Any]) -> int:
    """``fit`` / ``validate`` of a labelled task.

    Args:
        command: ``fit`` or ``validate``.
        task: the task's name (saved as ``task`` in the tree and the run's config.yaml).
        argv: the ``--config`` files and dotted flags.
        build_model: ``build_model(task, model_keys, data_config)`` -> the LightningModule, its
            label kinds checked, raising :class:`~depth_ros_training.tasks.config.TaskConfigError`
            for a bad key.

    Returns:
        0 (errors are raised: a one-line DepthRosError).
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
    model = build_model(task, _link_sizes(tree), data_config)
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
