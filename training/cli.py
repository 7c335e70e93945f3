"""``depth-ros-train``: fit / validate with Lightning, export to ONNX.

Usage::

    depth-ros-train fit --config config/train.yaml [--ckpt_path last.ckpt] [--trainer.max_steps 2000]
    depth-ros-train validate --config config/train.yaml --ckpt_path CKPT
    depth-ros-train export CKPT -o DIR [--no-pose] [--tensorrt]

``fit``/``validate`` are LightningCLI (every constructor argument of
:class:`~depth_ros_training.module.DepthTrainingModule`, :class:`~depth_ros_training.datamodule.BagDataModule`
and ``Trainer`` is a flag or a YAML key, type-checked; ``--print_config`` shows them all).
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

__all__ = ["main"]


def _lightning_cli(argv: list[str]) -> int:
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    from depth_ros_training.callbacks import DepthImageLogger
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.module import DepthTrainingModule

    class DepthCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (jsonargparse parser)
            # the network's input contract comes from the data configuration, once
            for key in ("height", "width", "mean", "std"):
                target = {"height": "image_height", "width": "image_width"}.get(key, key)
                parser.link_arguments(f"data.data.{key}", f"model.{target}")

    DepthCLI(
        DepthTrainingModule,
        BagDataModule,
        args=argv,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "callbacks": [
                ModelCheckpoint(save_last=True, every_n_train_steps=None),
                DepthImageLogger(),
                LearningRateMonitor(logging_interval="step"),
            ],
        },
        auto_configure_optimizers=False,
    )
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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if argv and argv[0] == "export":
        return _export_main(argv[1:])
    return _lightning_cli(argv)


if __name__ == "__main__":
    sys.exit(main())
