"""``depth-ros-train``: fit / validate with Lightning, export to ONNX.

Usage::

    depth-ros-train fit --config config/train.yaml [--ckpt_path last.ckpt] [--trainer.max_steps 2000]
    depth-ros-train fit --config config/train_midas.yaml       (task: midas / depth_pro in the YAML, or --task)
    depth-ros-train validate --config config/train.yaml --ckpt_path CKPT
    depth-ros-train export CKPT -o DIR [--no-pose] [--tensorrt] [--fuse-io 640x480 [--fuse-color bgr] ...]
                           [--batch N] [--int8 --calibration-bag BAG [--int8-target tensorrt]]
    depth-ros-train eval --model M [--model M2 ...] BAG [BAG ...] [-o DIR]   (or --pred PRED.mcap)
    depth-ros-train pretrain --config config/pretrain.yaml [--data.data.bags '[a.mcap]']
    depth-ros-train adapt BAG [BAG ...] [--minutes M] [--teacher T.onnx] [--truth-topic T] [-o OUTDIR]

Add ``-v`` / ``--verbose`` anywhere for debug logging and the traceback of an error.

``fit``/``validate`` follow LightningCLI's layout (``trainer.*``, ``model.*``, ``data.*``,
``--ckpt_path``) built with jsonargparse directly: every typed constructor argument of
:class:`~depth_ros_training.module.DepthTrainingModule`, :class:`~depth_ros_training.datamodule.BagDataModule`
and ``Trainer`` is a flag or a YAML key, type-checked (``--print_config`` shows them all); the
resolved configuration is saved next to the TensorBoard logs and checkpoints.

``task:`` (a top-level YAML key, or ``--task``) picks the training task: ``sc_depth`` (the default,
:class:`~depth_ros_training.module.DepthTrainingModule`), ``midas`` or ``depth_pro`` (labelled
depth, :mod:`depth_ros_training.tasks`; same layout, ``data.data.groups`` for the label sources,
see :mod:`depth_ros_training.tasks.run`). ``export`` reads the task from the checkpoint.

Checkpoints go to ``<default_root_dir>/lightning_logs/version_N/checkpoints``: one after each
validation (``fit`` also validates at its last step, whatever ``trainer.val_check_interval``:
:class:`~depth_ros_training.validate_at_end.ValidateAtEnd`), and ``last.ckpt`` (the full training
state) also every ``checkpoint.every_minutes`` of training or ``checkpoint.every_n_steps`` steps,
independent of validation
(:class:`~depth_ros_training.checkpoint.ResumeCheckpoint`); resume a stopped or killed run with
``--ckpt_path <that dir>/last.ckpt`` or ``--ckpt_path last`` (the newest run's). Checkpoints are
read with ``weights_only=True``.

Exit codes: 0 done; 1 an expected error, printed as one line
``depth-ros-train CMD: error: ...`` naming the file, topic or parameter (``model.lr``,
``data.batch_size``, ...): a :class:`~depth_ros.errors.DepthRosError` (a bag without
camera_info, too few frames, no odometry, a checkpoint that is not weights-only, ...), a value
a constructor refused, Lightning's ``MisconfigurationException``, or the operating system
refusing a file; 2 a malformed command line; 130 interrupted. Any other exception is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import inspect
import logging
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from depth_ros.errors import DepthRosError, one_line
from depth_ros.logsetup import configure_logging

# Trainer construction and --ckpt_path last live in depth_ros_training.trainer (the task runners
# use them too); the names stay importable from here.
from depth_ros_training.trainer import ConfigError, _build_trainer, _trainer_key, resolve_last_checkpoint

__all__ = ["ConfigError", "describe_error", "main", "resolve_last_checkpoint"]

log = logging.getLogger(__name__)

_VERBOSE_FLAGS = ("-v", "--verbose")
_VERBOSE_HELP = "debug logging, and the traceback of an error"


_TRAINER_SKIP = {"callbacks", "logger", "plugins", "profiler"}


def build_parser(command: str = "fit"):  # -> jsonargparse.ArgumentParser
    """The ``fit`` / ``validate`` parser: ``--config``, ``--seed_everything``, ``--ckpt_path`` and
    every typed constructor argument of Trainer (``trainer.*``), the module (``model.*``), the
    data module (``data.*``) and the resume checkpoints (``checkpoint.*``). The network's input size and normalisation are linked from
    ``data.data.*`` (given once)."""
    from jsonargparse import ActionConfigFile, ArgumentParser
    from lightning.pytorch import Trainer

    from depth_ros_training.checkpoint import ResumeCheckpoint
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.module import DepthTrainingModule

    parser = ArgumentParser(prog=f"depth-ros-train {command}", description=__doc__.splitlines()[0] + f" (-v/--verbose: {_VERBOSE_HELP})", exit_on_error=True)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the keys below (safe-loaded)")
    parser.add_argument("--seed_everything", type=int | None, default=0, help="global seed (null: none)")
    parser.add_argument("--ckpt_path", type=str | None, default=None, help="checkpoint to resume from, or 'last': the newest last.ckpt under trainer.default_root_dir")
    parser.add_argument("--task", type=str, default="sc_depth", help="sc_depth (this parser's keys); midas / depth_pro read config/train_midas.yaml / train_depth_pro.yaml's layout (task: in the YAML also selects it)")
    parser.add_class_arguments(Trainer, "trainer", skip=_TRAINER_SKIP)
    parser.add_class_arguments(DepthTrainingModule, "model")
    parser.add_class_arguments(BagDataModule, "data")
    parser.add_class_arguments(ResumeCheckpoint, "checkpoint", skip={"dirpath"})
    for key, target in (("height", "image_height"), ("width", "image_width"), ("mean", "mean"), ("std", "std")):
        parser.link_arguments(f"data.data.{key}", f"model.{target}")
    return parser


def _config_groups() -> dict[str, type]:
    """The config groups built by constructors: a ValueError from one is a ConfigError naming ``group.key``."""
    from depth_ros_training.checkpoint import ResumeCheckpoint
    from depth_ros_training.data.dataset import DataConfig
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.module import DepthTrainingModule

    return {"model": DepthTrainingModule, "data": BagDataModule, "data.data": DataConfig, "checkpoint": ResumeCheckpoint}


def _name_key(group: str, parameters: set[str], message: str) -> str:
    """``"lr must be ..."`` from group ``model`` -> ``"model.lr must be ..."``; a message that does
    not start with one of the class's parameters -> ``"model: <message>"``."""
    match = re.match(r"[A-Za-z_]\w*", message)
    if match and match.group(0) in parameters:
        return f"{group}.{message}"
    return f"{group}: {message}"


def _refusing_instantiator(group: str, cls: type) -> Callable[..., Any]:
    """A jsonargparse instantiator of ``cls`` turning its constructor's ValueError into a ConfigError."""
    parameters = set(inspect.signature(cls).parameters)

    def instantiate(class_type: type, *args: Any, **kwargs: Any) -> Any:
        try:
            return class_type(*args, **kwargs)
        except ValueError as exc:
            if isinstance(exc, DepthRosError):
                raise
            raise ConfigError(_name_key(group, parameters, str(exc))) from exc

    return instantiate


def _fit_or_validate(command: str, argv: list[str]) -> int:
    from depth_ros_training.tasks import LABELLED_TASKS
    from depth_ros_training.tasks.run import run_task, task_of_argv

    if "-h" not in argv and "--help" not in argv and "--print_config" not in argv:
        task = task_of_argv(argv)
        if task == "zoedepth":
            from depth_ros_training.tasks.zoedepth import run_zoedepth

            return run_zoedepth(command, argv)
        if task in LABELLED_TASKS:
            return run_task(command, task, argv)
    return _fit_or_validate_sc_depth(command, argv)


def _fit_or_validate_sc_depth(command: str, argv: list[str]) -> int:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from depth_ros_training.callbacks import DepthImageLogger, EpochProgressBar, tidy_lightning_output
    from depth_ros_training.checkpoint import ResumeCheckpoint, SafeCheckpointIO, checkpoint_callbacks
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.logline import PeriodicLogLine, wants_log_lines
    from depth_ros_training.module import DepthTrainingModule
    from depth_ros_training.validate_at_end import ValidateAtEnd

    tidy_lightning_output()
    parser = build_parser(command)
    cfg = parser.parse_args(argv)
    if cfg.seed_everything is not None:
        pl.seed_everything(cfg.seed_everything, workers=True)
    instantiators = [(_refusing_instantiator(group, cls), cls, True) for group, cls in _config_groups().items()]
    objects = parser.instantiate(cfg, instantiate_groups=True, instantiators=instantiators)
    model: DepthTrainingModule = objects.model
    data: BagDataModule = objects.data
    resume: ResumeCheckpoint = objects.checkpoint
    _warn_if_stretched(data)
    trainer_kwargs = dict(cfg.trainer)
    root = Path(trainer_kwargs.get("default_root_dir") or ".")
    ckpt_path = resolve_last_checkpoint(root) if cfg.ckpt_path == "last" else cfg.ckpt_path
    logger = TensorBoardLogger(str(root), name="lightning_logs")
    checkpoints = checkpoint_callbacks(resume) if command == "fit" else [ModelCheckpoint(save_last=True)]
    callbacks = [*checkpoints, DepthImageLogger(model.hparams.log_images_every_n_steps), LearningRateMonitor(logging_interval="step")]
    if trainer_kwargs.get("enable_progress_bar") is not False:
        callbacks.append(EpochProgressBar())
    if command == "fit" and wants_log_lines():
        callbacks.append(PeriodicLogLine())  # a log file cannot show the bar
    if command == "fit":
        callbacks.append(ValidateAtEnd())  # a run shorter than the validation interval is validated once
    trainer = _build_trainer(trainer_kwargs, logger=logger, callbacks=callbacks, plugins=[SafeCheckpointIO()])
    if trainer.is_global_zero:
        log_dir = Path(logger.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        parser.save(cfg, str(log_dir / "config.yaml"), overwrite=True, skip_validation=True)
    if command == "fit":
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    else:
        trainer.validate(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    return 0


def _warn_if_stretched(data: Any) -> None:
    """Log a warning when ``data.data``'s input size squashes the first bag's camera (a 4:3
    camera under the default 416x128), naming the size that keeps its aspect."""
    from depth_ros_training.adapt import squash_warning
    from depth_ros_training.data.bag_index import load_or_build_index

    config = data.data_config
    if not config.bags:
        return
    camera = load_or_build_index(config.bags[0], config.index_options, config.cache_dir).camera
    warning = squash_warning(camera.width, camera.height, config.height, config.width, config.crop)
    if warning is not None:
        log.warning("%s: %s", config.bags[0], warning)


def _fuse_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> "object | None":
    """The :class:`~depth_ros.inference.fused_io.FusedIOConfig` of ``--fuse-io`` and its
    companions, or None without ``--fuse-io`` (a companion flag alone is a usage error)."""
    from depth_ros.inference.fused_io import FusedIOConfig

    if args.fuse_io is None:
        if args.fuse_color != "rgb" or args.fuse_aspect != "crop" or args.fuse_output_camera:
            parser.error("--fuse-color, --fuse-aspect and --fuse-output-camera need --fuse-io WxH")
        return None
    try:
        width, height = FusedIOConfig.parse_size(args.fuse_io)
        return FusedIOConfig(width, height, color_order=args.fuse_color, aspect=args.fuse_aspect,
                             output_at_camera_resolution=args.fuse_output_camera)
    except ValueError as exc:
        parser.error(f"--fuse-io: {exc}")
    return None  # parser.error exits


def _export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="depth-ros-train export", description="checkpoint -> depth.onnx (+ pose.onnx) with ModelSpec")
    parser.add_argument("checkpoint", help="Lightning checkpoint (.ckpt) of DepthTrainingModule")
    parser.add_argument("-o", "--output-dir", required=True, help="directory for depth.onnx / pose.onnx")
    parser.add_argument("--no-pose", action="store_true", help="export only the depth network")
    parser.add_argument("--name", default=None, help="model name written into the ModelSpec")
    parser.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch parity check")
    parser.add_argument("--tensorrt", choices=("auto", "on", "off"), default="auto", help="also build TensorRT engines (auto: when a CUDA GPU and tensorrt exist)")
    parser.add_argument("--batch", type=int, metavar="N", help="depth.onnx takes 1 to N frames per call (several cameras in one call: multi_depth_node); TensorRT builds its profile for N")
    parser.add_argument("--int8", action="store_true", help="also write depth.int8.onnx: ONNX Runtime static INT8 (QDQ, per-channel) for CPUs, calibrated on --calibration-bag")
    parser.add_argument("--int8-target", choices=("onnxruntime", "tensorrt"), default="onnxruntime",
                        help="onnxruntime (default): depth.int8.onnx for CPUs; tensorrt: depth.int8-tensorrt.onnx, symmetric int8 that TensorRT builds an INT8 engine from")
    parser.add_argument("--calibration-bag", metavar="BAG", help="bag whose camera frames calibrate the INT8 activation ranges (needed with --int8)")
    parser.add_argument("--calibration-frames", type=int, default=64, metavar="N", help="frames taken evenly from the bag (default 64)")
    from depth_ros.inference.quantize import CALIBRATION_METHODS

    parser.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default="minmax", help="activation range estimate (default minmax)")
    parser.add_argument("--image-topic", metavar="T", help="the calibration bag's image topic (default: as depth-ros infer chooses)")
    parser.add_argument("--fuse-io", metavar="WxH", help="also write depth.fused.onnx: takes the camera's uint8 WxH image and resizes and normalises it in the graph (docs/fused-io.md)")
    parser.add_argument("--fuse-color", choices=("rgb", "bgr"), default="rgb", help="channel order of the image the fused model takes (default rgb, what the runtime decodes to)")
    parser.add_argument("--fuse-aspect", choices=("crop", "pad", "stretch"), default="crop", help="aspect window the fused graph cuts (default crop, the runtime's default policy)")
    parser.add_argument("--fuse-output-camera", action="store_true", help="the fused model also resizes its depth back to camera resolution in the graph")
    parser.add_argument(*_VERBOSE_FLAGS, action="store_true", help=_VERBOSE_HELP)
    args = parser.parse_args(argv)
    if args.int8 != (args.calibration_bag is not None):
        parser.error("--int8 and --calibration-bag go together")
    if args.int8_target != "onnxruntime" and not args.int8:
        parser.error("--int8-target needs --int8")
    from depth_ros.inference.spec import MAX_BATCH

    if args.batch is not None and not 1 <= args.batch <= MAX_BATCH:
        parser.error(f"--batch must be in 1..{MAX_BATCH}, got {args.batch}")
    fuse = _fuse_config(parser, args)
    if fuse is not None and args.batch not in (None, 1):
        parser.error("--batch and --fuse-io: a fused model takes one camera image; export them separately")
    from depth_ros.inference.quantize import QuantizeConfig

    try:
        quant = QuantizeConfig(frames=args.calibration_frames, method=args.calibration_method, image_topic=args.image_topic,
                               target=args.int8_target) if args.int8 else None
    except ValueError as exc:
        parser.error(f"--calibration-frames: {exc}")
    from depth_ros_training.export import export_checkpoint
    from depth_ros_training.tasks.run import export_task_checkpoint

    # a MiDaS / Depth Pro checkpoint (its hyper-parameters name the task) exports depth.onnx only
    result = export_task_checkpoint(args.checkpoint, args.output_dir, name=args.name, check_parity=not args.no_check)
    if result is None:
        result = export_checkpoint(
            args.checkpoint,
            args.output_dir,
            pose=not args.no_pose,
            name=args.name,
            check_parity=not args.no_check,
            tensorrt=args.tensorrt,
        )
    if args.batch not in (None, 1):
        from depth_ros.inference.onnx_export import batch_onnx

        depth = Path(result.paths["depth"])
        batch_onnx(depth, depth, args.batch, check_atol=None if args.no_check else 1e-4)
    for kind, path in result.paths.items():
        print(f"{kind}: {path}")
    for kind, err in result.parity_max_abs_error.items():
        print(f"{kind} parity (max |onnxruntime - torch|): {err:.3g}")
    to_fuse = [Path(result.paths["depth"])]
    if quant is not None:
        from depth_ros.inference.quantize import calibration_inputs, quantize_model
        from depth_ros.inference.spec import load_model_spec

        depth = Path(result.paths["depth"])
        inputs = calibration_inputs(args.calibration_bag, load_model_spec(depth), quant)
        suffix = ".int8.onnx" if quant.target == "onnxruntime" else ".int8-tensorrt.onnx"
        out = quantize_model(depth, depth.with_name(depth.stem + suffix), inputs, quant, source=Path(args.calibration_bag).name)
        print(f"depth int8 ({quant.target}): {out} (calibrated on {len(inputs)} frames of {args.calibration_bag})")
        to_fuse.append(out)
    if fuse is not None:
        from depth_ros.inference.onnx_export import export_fused_onnx

        # with --int8 the INT8 model gets its fused version too (depth.int8.fused.onnx): the
        # resize and normalisation stay float in front of the quantised network
        for model in to_fuse:
            fused = export_fused_onnx(model, model.with_name(model.name[: -len(".onnx")] + ".fused.onnx"), fuse,
                                      check_rtol=None if args.no_check else 0.01)
            print(f"{model.stem} fused: {fused} (uint8 {fuse.camera_width_px}x{fuse.camera_height_px} {fuse.color_order} in)")
    return 0


def _run_argparse_command(command: str, description: str, module: Any, argv: list[str]) -> int:
    """A subcommand whose module provides ``add_arguments(parser)`` and ``run(args)``."""
    parser = argparse.ArgumentParser(prog=f"depth-ros-train {command}", description=description)
    module.add_arguments(parser)
    parser.add_argument(*_VERBOSE_FLAGS, action="store_true", help=_VERBOSE_HELP)
    return module.run(parser.parse_args(argv))


def _eval_main(argv: list[str]) -> int:
    from depth_ros_training.eval import cli as eval_cli

    return _run_argparse_command("eval", "depth models measured on bags with depth or LiDAR truth", eval_cli, argv)


def _adapt_main(argv: list[str]) -> int:
    from depth_ros_training import adapt

    description = "a robot's bags -> a metric depth model in minutes (the quick recipe), evaluated on a held-out segment"
    return _run_argparse_command("adapt", description, adapt, argv)


def _pretrain_main(argv: list[str]) -> int:
    from depth_ros_training.pretrain.cli import run

    return run(argv)


_WORKER_RE = re.compile(r"Caught \w+ in DataLoader worker process \d+\.")


def describe_error(exc: BaseException) -> str:
    """The message of an expected error, unwrapped, for one line.

    A DataLoader worker's exception is re-raised in the main process as the same type with the
    worker's traceback as its message; the original message is its last entry. An OSError
    without a message of its own names its file and reason.
    """
    if isinstance(exc, OSError) and not isinstance(exc, DepthRosError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror}"
    text = str(exc)
    if _WORKER_RE.match(text):
        lines = text.splitlines()
        name = type(exc).__name__
        for i in range(len(lines) - 1, -1, -1):
            head, sep, rest = lines[i].partition(": ")
            if sep and (head == name or head.endswith("." + name)):
                text = "\n".join([rest] + lines[i + 1:])
                break
    return text.strip() or type(exc).__name__


def _is_expected(exc: BaseException) -> bool:
    """A user-facing failure (one line) rather than a bug (traceback)."""
    if isinstance(exc, (DepthRosError, OSError)):
        return True
    lightning_exceptions = sys.modules.get("lightning.fabric.utilities.exceptions")
    return lightning_exceptions is not None and isinstance(exc, lightning_exceptions.MisconfigurationException)


def _message(exc: BaseException) -> str:
    text = describe_error(exc)
    lightning_exceptions = sys.modules.get("lightning.fabric.utilities.exceptions")
    if lightning_exceptions is not None and isinstance(exc, lightning_exceptions.MisconfigurationException):
        text = _trainer_key(text)
    return text


_COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "fit": lambda argv: _fit_or_validate("fit", argv),
    "validate": lambda argv: _fit_or_validate("validate", argv),
    "export": _export_main,
    "eval": _eval_main,
    "pretrain": _pretrain_main,
    "adapt": _adapt_main,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    verbose = any(a in _VERBOSE_FLAGS for a in rest)
    configure_logging(verbose)
    if command not in _COMMANDS:
        print("usage: depth-ros-train {fit,validate,export,eval,pretrain,adapt} ... [-v] (fit --help for the options)", file=sys.stderr)
        return 2
    if command not in ("export", "eval", "adapt"):  # their argparse parsers know the flag; jsonargparse's is kept free of it
        rest = [a for a in rest if a not in _VERBOSE_FLAGS]
    try:
        return _COMMANDS[command](rest)
    except KeyboardInterrupt:
        print(f"depth-ros-train {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not _is_expected(exc):
            raise
        if verbose:
            traceback.print_exception(exc)
        print(f"depth-ros-train {command}: error: {one_line(_message(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
