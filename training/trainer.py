"""Trainer construction shared by every ``depth-ros-train`` command and training task: a
Lightning Trainer whose refusals name the ``trainer.*`` key, and ``--ckpt_path last``."""
from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path
from typing import Any

from depth_ros.errors import DepthRosError

__all__ = ["ConfigError", "resolve_last_checkpoint"]

log = logging.getLogger("depth_ros_training.cli")


class ConfigError(DepthRosError, ValueError):
    """A configuration value refused when its object was built; the message names the key."""


def _trainer_key(message: str) -> str:
    """Lightning names a Trainer argument as ```max_steps```: say ``trainer.max_steps``
    (or prefix ``trainer:`` when it names none)."""
    from lightning.pytorch import Trainer

    parameters = set(inspect.signature(Trainer).parameters)
    named = re.sub(r"`(\w+)`", lambda m: f"trainer.{m.group(1)}" if m.group(1) in parameters else m.group(0), message)
    return named if named != message else f"trainer: {message}"


def _build_trainer(trainer_kwargs: dict[str, Any], **extra: Any):  # -> pl.Trainer
    import lightning.pytorch as pl
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return pl.Trainer(**trainer_kwargs, **extra)
    except (ValueError, MisconfigurationException) as exc:
        if isinstance(exc, DepthRosError):
            raise
        raise ConfigError(_trainer_key(str(exc))) from exc


def resolve_last_checkpoint(root: Path) -> str | None:
    """``--ckpt_path last``: the newest ``last.ckpt`` of the runs under ``root``
    (``lightning_logs/version_*/checkpoints``), or None (with a warning: a fresh start) when there
    is none. Lightning's own ``"last"`` looks only in the new run's empty directory."""
    runs = sorted(root.glob("lightning_logs/version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    if not runs:
        log.warning("--ckpt_path last: no %s to resume from; starting a new run", root / "lightning_logs/version_*/checkpoints/last.ckpt")
        return None
    log.info("--ckpt_path last: resuming from %s", runs[-1])
    return str(runs[-1])
