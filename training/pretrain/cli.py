"""``depth-ros-train pretrain``: gradient-field contrastive pretraining of the depth encoder.

Usage::

    depth-ros-train pretrain --config config/pretrain.yaml [--ckpt_path last.ckpt] [--trainer.max_steps 2000]
    depth-ros-train fit --config config/train.yaml --model.encoder_weights_path runs/pretrain/encoder_resnet18.pt

The layout is ``fit``'s (LightningCLI-like, built with jsonargparse): ``trainer.*`` (every
``Trainer`` argument, so ``strategy: ddp`` works as in ``fit``), ``model.*``
(:class:`~depth_ros_training.pretrain.module.PretrainModule`), ``data.*``
(:class:`~depth_ros_training.pretrain.data.PretrainDataModule`), ``checkpoint.*``
(:class:`~depth_ros_training.checkpoint.ResumeCheckpoint`), ``--seed_everything``,
``--ckpt_path`` (resume; read with ``weights_only=True``) and ``--output``.

Output, under ``<trainer.default_root_dir>/lightning_logs/version_N/``: TensorBoard events
(``train/loss``, ``train/queue_top1``, ``train/lr``), ``config.yaml``, ``checkpoints/last.ckpt``
(full state: both networks, the queue, the optimiser; resume with ``--ckpt_path``), and, when
training ends, the encoder weights: a plain ``state_dict`` of the query encoder written with
``torch.save`` (``--output``, default ``<that dir>/encoder_resnet<N>.pt``), whose keys are
exactly those of ``DispNet(num_layers).encoder`` (3-channel ``conv1``), loadable with
``torch.load(..., weights_only=True)``. Resuming a finished (or killed) run with
``--ckpt_path`` and the same ``trainer.max_steps`` writes them again without training.

Errors a user can fix (a bag with no images, an image topic that does not exist, a refused
value) raise :class:`~depth_ros.errors.DepthRosError` naming the file or key; ``depth-ros-train``
prints them as one line and exits 1.
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Sequence

import torch

from depth_ros.errors import DepthRosError

__all__ = ["PretrainConfigError", "build_objects", "build_parser", "run", "write_encoder_weights"]

log = logging.getLogger(__name__)

_TRAINER_SKIP = {"callbacks", "logger", "plugins", "profiler"}


class PretrainConfigError(DepthRosError, ValueError):
    """A configuration value refused when its object was built; the message names the key."""


def build_parser():  # -> jsonargparse.ArgumentParser
    """The ``pretrain`` parser (see the module docstring)."""
    from jsonargparse import ActionConfigFile, ArgumentParser
    from lightning.pytorch import Trainer

    from depth_ros_training.checkpoint import ResumeCheckpoint
    from depth_ros_training.pretrain.data import PretrainDataModule
    from depth_ros_training.pretrain.module import PretrainModule

    parser = ArgumentParser(prog="depth-ros-train pretrain", description=__doc__.splitlines()[0], exit_on_error=True)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the keys below (safe-loaded)")
    parser.add_argument("--seed_everything", type=int | None, default=0, help="global seed (null: none)")
    parser.add_argument("--ckpt_path", type=str | None, default=None, help="checkpoint to resume from")
    parser.add_argument("--output", type=str | None, default=None, help="encoder weights file (default: <log dir>/encoder_resnet<N>.pt)")
    parser.add_class_arguments(Trainer, "trainer", skip=_TRAINER_SKIP)
    parser.add_class_arguments(PretrainModule, "model")
    parser.add_class_arguments(PretrainDataModule, "data")
    parser.add_class_arguments(ResumeCheckpoint, "checkpoint", skip={"dirpath"})
    return parser


def _build(group: str, cls: type, kwargs: dict[str, Any]) -> Any:
    """``cls(**kwargs)``; its ValueError becomes a PretrainConfigError naming ``group.key``."""
    try:
        return cls(**kwargs)
    except ValueError as exc:
        if isinstance(exc, DepthRosError):
            raise
        text = str(exc)
        first = text.split(" ", 1)[0]
        known = first in inspect.signature(cls).parameters
        raise PretrainConfigError(f"{group}.{text}" if known else f"{group}: {text}") from exc


def build_objects(cfg: Any) -> tuple[Any, Any, Any]:
    """(PretrainModule, PretrainDataModule, ResumeCheckpoint) of a parsed configuration, built
    one by one (``parser.instantiate`` would also build a Trainer of its own).

    Raises:
        PretrainConfigError: a refused value, named ``group.key``.
    """
    from depth_ros_training.checkpoint import ResumeCheckpoint
    from depth_ros_training.pretrain.data import PretrainDataConfig, PretrainDataModule
    from depth_ros_training.pretrain.module import PretrainModule

    model = _build("model", PretrainModule, cfg.model.as_dict())
    data_kwargs = cfg.data.as_dict()
    data_kwargs["data"] = _build("data.data", PretrainDataConfig, data_kwargs["data"])
    data = _build("data", PretrainDataModule, data_kwargs)
    resume = _build("checkpoint", ResumeCheckpoint, cfg.checkpoint.as_dict())
    splits = model.hparams.bn_splits
    if splits > 1 and data.batch_size % splits:
        raise PretrainConfigError(f"data.batch_size ({data.batch_size}) must be a multiple of model.bn_splits ({splits})")
    return model, data, resume


def write_encoder_weights(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    """``torch.save`` a plain state_dict atomically (:func:`depth_ros.safeio.write_atomically`)."""
    from depth_ros.safeio import write_atomically

    return write_atomically(path, lambda f: torch.save(state, f))


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` (the arguments after ``pretrain``), train, write the encoder weights.

    Raises:
        DepthRosError: bad bags or values (one-line messages); OSError: files.
    """
    import lightning.pytorch as pl
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from depth_ros_training.callbacks import EpochProgressBar, tidy_lightning_output
    from depth_ros_training.checkpoint import SafeCheckpointIO
    from depth_ros_training.logline import PeriodicLogLine, wants_log_lines

    tidy_lightning_output()  # before the first Lightning message (the seed): one handler, one line
    parser = build_parser()
    cfg = parser.parse_args(list(argv))
    if cfg.seed_everything is not None:
        pl.seed_everything(cfg.seed_everything, workers=True)
    model, data, resume = build_objects(cfg)
    trainer_kwargs = dict(cfg.trainer)
    root = Path(trainer_kwargs.get("default_root_dir") or ".")
    logger = TensorBoardLogger(str(root), name="lightning_logs")
    callbacks: list[Any] = [ModelCheckpoint(save_last=True)]
    if resume.enabled:
        callbacks.append(resume)
    if trainer_kwargs.get("enable_progress_bar") is not False:
        callbacks.append(EpochProgressBar())
    if wants_log_lines():
        callbacks.append(PeriodicLogLine())  # a log file cannot show the bar
    try:
        trainer = pl.Trainer(**trainer_kwargs, logger=logger, callbacks=callbacks, plugins=[SafeCheckpointIO()])
    except (ValueError, MisconfigurationException) as exc:
        if isinstance(exc, DepthRosError):
            raise
        raise PretrainConfigError(f"trainer: {exc}") from exc
    log_dir = Path(logger.log_dir)
    if trainer.is_global_zero:
        log_dir.mkdir(parents=True, exist_ok=True)
        parser.save(cfg, str(log_dir / "config.yaml"), overwrite=True, skip_validation=True)
    trainer.fit(model, datamodule=data, ckpt_path=cfg.ckpt_path, weights_only=True)
    if trainer.is_global_zero:
        out = Path(cfg.output) if cfg.output else log_dir / f"encoder_resnet{model.hparams.num_layers}.pt"
        write_encoder_weights(model.encoder_state_dict(), out)
        print(f"encoder weights (ResNet-{model.hparams.num_layers}): {out}")
    return 0
