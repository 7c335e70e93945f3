"""``depth-ros-train``: fit / validate with Lightning, export to ONNX.

Usage::

    depth-ros-train fit --config config/train.yaml [--ckpt_path last.ckpt] [--trainer.max_steps 2000]
    depth-ros-train validate --config config/train.yaml --ckpt_path CKPT
    depth-ros-train export CKPT -o DIR [--no-pose] [--tensorrt]

``fit``/``validate`` follow LightningCLI's layout (``trainer.*``, ``model.*``, ``data.*``,
``--ckpt_path``) built with jsonargparse directly: every typed constructor argument of
:class:`~depth_ros_training.module.DepthTrainingModule`, :class:`~depth_ros_training.datamodule.BagDataModule`
and ``Trainer`` is a flag or a YAML key, type-checked (``--print_config`` shows them all); the
resolved configuration is saved next to the TensorBoard logs and checkpoints.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from depth_ros.logsetup import configure_logging

__all__ = ["main"]


_TRAINER_SKIP = {"callbacks", "logger", "plugins", "profiler"}


def build_parser(command: str = "fit"):  # -> jsonargparse.ArgumentParser
    """The ``fit`` / ``validate`` parser: ``--config``, ``--seed_everything``, ``--ckpt_path`` and
    every typed constructor argument of Trainer (``trainer.*``), the module (``model.*``) and
    the data module (``data.*``). The network's input size and normalisation are linked from
    ``data.data.*`` (given once)."""
    from jsonargparse import ActionConfigFile, ArgumentParser
    from lightning.pytorch import Trainer

    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.module import DepthTrainingModule

    parser = ArgumentParser(prog=f"depth-ros-train {command}", description=__doc__.splitlines()[0], exit_on_error=True)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the keys below (safe-loaded)")
    parser.add_argument("--seed_everything", type=int | None, default=0, help="global seed (null: none)")
    parser.add_argument("--ckpt_path", type=str | None, default=None, help="checkpoint to resume from (or 'last')")
    parser.add_class_arguments(Trainer, "trainer", skip=_TRAINER_SKIP)
    parser.add_class_arguments(DepthTrainingModule, "model")
    parser.add_class_arguments(BagDataModule, "data")
    for key, target in (("height", "image_height"), ("width", "image_width"), ("mean", "mean"), ("std", "std")):
        parser.link_arguments(f"data.data.{key}", f"model.{target}")
    return parser


def _fit_or_validate(command: str, argv: list[str]) -> int:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from depth_ros_training.callbacks import DepthImageLogger, EpochProgressBar, tidy_lightning_output
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.module import DepthTrainingModule

    parser = build_parser(command)
    cfg = parser.parse_args(argv)
    if cfg.seed_everything is not None:
        pl.seed_everything(cfg.seed_everything, workers=True)
    objects = parser.instantiate(cfg, instantiate_groups=True)
    model: DepthTrainingModule = objects.model
    data: BagDataModule = objects.data
    trainer_kwargs = dict(cfg.trainer)
    root = Path(trainer_kwargs.get("default_root_dir") or ".")
    logger = TensorBoardLogger(str(root), name="lightning_logs")
    callbacks = [ModelCheckpoint(save_last=True), DepthImageLogger(model.hparams.log_images_every_n_steps), LearningRateMonitor(logging_interval="step")]
    if trainer_kwargs.get("enable_progress_bar") is not False:
        callbacks.append(EpochProgressBar())
    tidy_lightning_output()
    trainer = pl.Trainer(**trainer_kwargs, logger=logger, callbacks=callbacks)
    if trainer.is_global_zero:
        log_dir = Path(logger.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        parser.save(cfg, str(log_dir / "config.yaml"), overwrite=True, skip_validation=True)
    if command == "fit":
        trainer.fit(model, datamodule=data, ckpt_path=cfg.ckpt_path)
    else:
        trainer.validate(model, datamodule=data, ckpt_path=cfg.ckpt_path)
    return 0


def _export_main(argv: list[str]) -> int:
    from depth_ros.errors import DepthRosError

    parser = argparse.ArgumentParser(prog="depth-ros-train export", description="checkpoint -> depth.onnx (+ pose.onnx) with ModelSpec")
    parser.add_argument("checkpoint", help="Lightning checkpoint (.ckpt) of DepthTrainingModule")
    parser.add_argument("-o", "--output-dir", required=True, help="directory for depth.onnx / pose.onnx")
    parser.add_argument("--no-pose", action="store_true", help="export only the depth network")
    parser.add_argument("--name", default=None, help="model name written into the ModelSpec")
    parser.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch parity check")
    parser.add_argument("--tensorrt", choices=("auto", "on", "off"), default="auto", help="also build TensorRT engines (auto: when a CUDA GPU and tensorrt exist)")
    args = parser.parse_args(argv)
    from depth_ros_training.export import export_checkpoint

    try:
        result = export_checkpoint(
            args.checkpoint,
            args.output_dir,
            pose=not args.no_pose,
            name=args.name,
            check_parity=not args.no_check,
            tensorrt=args.tensorrt,
        )
    except (DepthRosError, FileNotFoundError) as exc:
        print(f"depth-ros-train export: error: {exc}", file=sys.stderr)
        return 1
    for kind, path in result.paths.items():
        print(f"{kind}: {path}")
    for kind, err in result.parity_max_abs_error.items():
        print(f"{kind} parity (max |onnxruntime - torch|): {err:.3g}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging()
    if argv and argv[0] == "export":
        return _export_main(argv[1:])
    if argv and argv[0] in ("fit", "validate"):
        return _fit_or_validate(argv[0], argv[1:])
    print("usage: depth-ros-train {fit,validate,export} ... (fit --help for the options)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
