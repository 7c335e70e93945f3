"""Training checkpoints: written for resume independently of validation, written atomically,
read as untrusted input.

* :class:`ResumeCheckpoint` keeps ``last.ckpt`` (weights, optimiser, schedulers, loop state)
  current every few minutes of training or every N steps. Lightning's default checkpoint is
  written only after validation, so with ``val_check_interval: 1000`` a run killed at step 165
  lost all 165 steps.
* :class:`SafeCheckpointIO` reads every checkpoint with ``weights_only=True`` (a pickle payload
  is refused, as a one-line :class:`~depth_ros.errors.ModelError` naming the file, before any of
  it runs) and writes through a temporary file in the checkpoint's directory + rename, so a
  kill while saving leaves the previous ``last.ckpt`` whole.
"""
from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["AFTER_VALIDATION", "DEFAULT_EVERY_MINUTES", "ResumeCheckpoint", "SafeCheckpointIO", "checkpoint_callbacks"]

#: Default wall-clock interval of resume checkpoints. A kill loses at most this much training
#: plus one step; a save (~320 MB for the ResNet-18 pair with Adam) takes a second or two, ~1 %
#: of the interval.
DEFAULT_EVERY_MINUTES = 2.0
#: What the after-validation checkpoint holds (:class:`ResumeCheckpoint` ``after_validation``).
AFTER_VALIDATION = ("full", "weights", "off")


class ResumeCheckpoint(ModelCheckpoint):
    """Writes ``last.ckpt`` (the full training state) every ``every_minutes`` of training or
    every ``every_n_steps`` optimiser steps, whether or not validation ran; resume with
    ``--ckpt_path <run>/checkpoints/last.ckpt``. Only ``last.ckpt`` is written (no numbered
    files), so the number of full checkpoints stays bounded whatever the run length; it is also
    written when training ends.

    Args:
        every_minutes: wall-clock interval (minutes of training, > 0); None to use
            ``every_n_steps`` instead.
        every_n_steps: step interval (>= 1); give it with ``every_minutes: null``.
        dirpath: directory of ``last.ckpt``; None -> the logger's ``checkpoints`` directory,
            the same as the after-validation checkpoint's.
        after_validation: the checkpoint written after each validation (the newest kept),
            :data:`AFTER_VALIDATION` — "full" (weights, optimiser and loop state: resumable),
            "weights" (weights and hyper-parameters only, about a third of the size: enough for
            ``depth-ros-train export`` and ``eval``), or "off". Read by
            :func:`checkpoint_callbacks`; the resume ``last.ckpt`` is always full.

    Both intervals None turns resume checkpoints off (then only validation writes checkpoints).

    Raises:
        ValueError: a non-positive or non-finite interval, both intervals given, an unknown
            ``after_validation``.
    """

    def __init__(self, every_minutes: float | None = DEFAULT_EVERY_MINUTES, every_n_steps: int | None = None, dirpath: str | None = None,
                 after_validation: str = "full") -> None:
        if after_validation not in AFTER_VALIDATION:
            raise ValueError(f"after_validation must be one of {', '.join(AFTER_VALIDATION)}, got {after_validation!r}")
        self.after_validation = after_validation
        if every_minutes is not None and every_n_steps is not None:
            raise ValueError(f"every_minutes ({every_minutes}) and every_n_steps ({every_n_steps}): give one of them, set the other to null")
        if every_minutes is not None and not (isinstance(every_minutes, (int, float)) and math.isfinite(every_minutes) and every_minutes > 0):
            raise ValueError(f"every_minutes must be a positive number of minutes (or null), got {every_minutes!r}")
        if every_n_steps is not None and (not isinstance(every_n_steps, int) or isinstance(every_n_steps, bool) or every_n_steps < 1):
            raise ValueError(f"every_n_steps must be an integer >= 1 (or null), got {every_n_steps!r}")
        self.every_minutes = every_minutes
        self.every_n_steps = every_n_steps
        super().__init__(
            dirpath=dirpath,
            save_last=True,
            save_top_k=0,  # last.ckpt only
            every_n_train_steps=every_n_steps,
            train_time_interval=timedelta(minutes=every_minutes) if every_minutes is not None else None,
            # neither interval: every_n_epochs=0 keeps Lightning from its after-validation default
            every_n_epochs=0 if every_minutes is None and every_n_steps is None else None,
            save_on_train_epoch_end=False,
            enable_version_counter=False,  # one last.ckpt, shared with the after-validation checkpoint
        )

    @property
    def enabled(self) -> bool:
        return self.every_minutes is not None or self.every_n_steps is not None

    def on_train_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """The final state too, whatever the interval: a finished run exports or continues from
        its last step."""
        if self.enabled and not trainer.fast_dev_run and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O for local files, reading with ``weights_only=True`` whatever
    the caller asks and writing atomically (see the module docstring)."""

    def load_checkpoint(self, path: Any, map_location: Callable | Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        from depth_ros.errors import ModelError
        from depth_ros.inference.torch_backend import load_untrusted

        data = load_untrusted(Path(path), map_location=map_location)
        if not isinstance(data, dict):
            raise ModelError(f"{path}: checkpoint is a {type(data).__name__}, expected a Lightning checkpoint (a dict)")
        return data

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        from depth_ros.safeio import write_atomically

        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        write_atomically(Path(path), lambda f: torch.save(checkpoint, f))


def checkpoint_callbacks(resume: ResumeCheckpoint) -> list[pl.Callback]:
    """The checkpoints of a fit: one after each validation (the newest kept; full, weights only
    or none: ``resume.after_validation``) and ``last.ckpt``, kept current by ``resume`` when it
    is enabled. A full after-validation checkpoint also writes ``last.ckpt`` (the same file as
    ``resume``'s: no ``last-v1.ckpt``), so a run holds at most two full checkpoints; a
    weights-only one never writes ``last.ckpt`` (it could not resume)."""
    out: list[pl.Callback] = []
    if resume.after_validation != "off":
        weights = resume.after_validation == "weights"
        out.append(ModelCheckpoint(save_last=not weights, save_weights_only=weights, enable_version_counter=False))
    if resume.enabled:
        out.append(resume)
    return out


def rebuild_module(path: Path, data: Any, build: Callable[[dict[str, Any]], torch.nn.Module], what: str) -> torch.nn.Module:
    """The module of a loaded Lightning checkpoint ``data`` (read with ``weights_only=True``):
    ``build(hyper_parameters)`` constructs it and the state dict must fit exactly; eval mode.

    Raises:
        ModelError: ``<path>: not <what> (<the exception>)`` when a key is missing or the
            parameters or weights do not fit.
    """
    from depth_ros.errors import ModelError

    try:
        module = build(dict(data["hyper_parameters"]))
        module.load_state_dict(data["state_dict"], strict=True)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ModelError(f"{path}: not {what} ({type(exc).__name__}: {detail})") from None
    return module.eval()
