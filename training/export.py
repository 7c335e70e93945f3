"""Checkpoint -> ``depth.onnx`` and ``pose.onnx`` with their ModelSpec embedded.

Depth: input ``image`` (1, 3, h, w) normalised per the spec, output ``depth`` = the finest
sigmoid disparity ``w`` (1, 1, h, w) (ModelSpec ``disparity_sigmoid`` with the training
min/max depth; ``metric=True``, ``scale_source="velocity_supervision"`` when trained with it).

Pose: input ``image`` (1, 6, h, w) = ``[target, source]`` channels (the runtime's
``preprocess_pair``), output ``pose`` (1, 6) = ``T_src_tgt`` as axis-angle (rad) +
translation (metres when metric), ModelSpec ``pose_6dof`` with ``pose_convention="T_src_tgt"``.

Both specs record the training camera (spec version 2): the training images' size before their
resize to the network input (after the data config's crop; its aspect is what the runtime crops
another camera to) and the focal lengths in pixels *at the network input*
(``train_fx_px``, ``train_fy_px``; a metric model on another camera is corrected by the focal
ratio). The camera is the training data's (:func:`training_camera`): given, or taken from the
data module of the trainer the module was fitted by; unknown (fields None, warned) otherwise,
e.g. for a checkpoint exported on its own.

Both files are checked against PyTorch in ONNX Runtime on a random input (inside
:func:`depth_ros.inference.onnx_export.export_onnx`) and again here on a smooth image-like input,
whose max abs error is reported. Each written file is then loaded the way the nodes and
``depth-ros infer`` load it (:func:`depth_ros.inference.backend.create_backend`, whose dry run
checks the outputs against the embedded ModelSpec), so an export that passes here is one the
runtime accepts. On a host where TensorRT and CUDA are usable, TensorRT engines
are built through the runtime's engine cache.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from depth_ros.core.camera import CameraModel
from depth_ros.errors import ModelError
from depth_ros.inference.spec import ModelSpec

__all__ = [
    "DepthExportWrapper",
    "ExportResult",
    "PoseExportWrapper",
    "export_checkpoint",
    "export_module",
    "run_training_camera",
    "specs_for",
    "training_camera",
]

log = logging.getLogger(__name__)


class DepthExportWrapper(nn.Module):
    """DispNet -> its finest sigmoid disparity only: (1, 3, h, w) -> (1, 1, h, w)."""

    def __init__(self, depth_net: nn.Module) -> None:
        super().__init__()
        self.depth_net = depth_net

    def forward(self, image: Tensor) -> Tensor:
        return self.depth_net(image)[0]


class PoseExportWrapper(nn.Module):
    """PoseNet on a 6-channel stack ``[target, source]``: (1, 6, h, w) -> (1, 6) ``T_src_tgt``."""

    def __init__(self, pose_net: nn.Module) -> None:
        super().__init__()
        self.pose_net = pose_net

    def forward(self, image: Tensor) -> Tensor:
        return self.pose_net(image[:, :3], image[:, 3:])


@dataclass
class ExportResult:
    """Written files ({"depth": path, "pose": path, "depth_engine": ...}) and the parity
    errors measured here ({"depth": max |ort - torch|, ...})."""

    paths: dict[str, Path] = field(default_factory=dict)
    parity_max_abs_error: dict[str, float] = field(default_factory=dict)
    specs: dict[str, ModelSpec] = field(default_factory=dict)


def training_camera(dataset: "object") -> CameraModel | None:
    """The camera of a training dataset's images before their resize: the (rectified) index
    camera of its bags, cropped as the data config says; None when its bags' cameras differ
    (no one training camera to record; warned).

    Args:
        dataset: a :class:`~depth_ros_training.data.dataset.BagSequenceDataset` (``indexes``,
            ``config.crop``).
    """
    crop = getattr(getattr(dataset, "config", None), "crop", None)
    cameras = []
    for index in getattr(dataset, "indexes", []):
        camera = index.camera
        cameras.append(camera.cropped(*crop) if crop is not None else camera)
    if not cameras:
        return None
    first = cameras[0]
    if any(c.size != first.size or not np.allclose(c.K, first.K, rtol=1e-6) for c in cameras[1:]):
        log.warning("the training bags' cameras differ (%s): no training camera recorded in the model spec",
                    ", ".join(sorted({f"{c.width}x{c.height} fx {c.fx:.6g}" for c in cameras})))
        return None
    return first


def _attached_training_camera(module: "object") -> CameraModel | None:
    """The training camera of the data module of the trainer ``module`` was fitted by, if any."""
    trainer = getattr(module, "_trainer", None)  # Lightning's property raises when detached
    dataset = getattr(getattr(trainer, "datamodule", None), "train_set", None)
    return training_camera(dataset) if dataset is not None else None


def _camera_fields(camera: CameraModel | None, width: int, height: int) -> dict[str, object]:
    """The spec's training camera fields: the image size and the focal lengths (px) at the
    network input (``width`` x ``height``), through :meth:`CameraModel.resized`."""
    if camera is None:
        return {}
    net = camera.resized(width, height)
    return {"train_image_width_px": camera.width, "train_image_height_px": camera.height,
            "train_fx_px": net.fx, "train_fy_px": net.fy}


def specs_for(module: "object", name: str | None = None, train_camera: CameraModel | None = None) -> tuple[ModelSpec, ModelSpec]:
    """(depth spec, pose spec) of a :class:`DepthTrainingModule` from its hyper-parameters.

    Args:
        train_camera: the training images' camera before their resize (:func:`training_camera`),
            or None (the spec's training camera fields stay unknown).
    """
    hp = module.hparams  # type: ignore[attr-defined]
    pose_supervised = float(hp.get("pose_supervision_weight", 0.0)) > 0
    metric = float(hp.velocity_weight) > 0 or pose_supervised
    extra = {
        "trained_with": "depth_ros_training",
        "pose_supervision": "odometry" if pose_supervised else "none",
        "warp_pose_source": str(hp.get("warp_pose_source", "network")),
    }
    common = dict(
        input_height=int(hp.image_height),
        input_width=int(hp.image_width),
        mean=tuple(hp.mean),
        std=tuple(hp.std),
        min_depth_m=float(hp.min_depth_m),
        max_depth_m=float(hp.max_depth_m),
        metric=metric,
        scale_source="velocity_supervision" if metric else "none",
        extra=extra,
        **_camera_fields(train_camera, int(hp.image_width), int(hp.image_height)),
    )
    base = name or f"sc_depth_resnet{hp.num_layers}_{hp.image_width}x{hp.image_height}"
    depth = ModelSpec(output_kind="disparity_sigmoid", output_name="depth", name=base, **common)
    pose = ModelSpec(
        output_kind="pose_6dof",
        output_name="pose",
        input_channels=6,
        pose_convention="T_src_tgt",
        name=base + "_pose",
        **common,
    )
    return depth, pose


def _smooth_input(spec: ModelSpec, seed: int = 1) -> np.ndarray:
    """An image-like (1, C, h, w) float32 input: low-frequency pattern, normalised per spec."""
    rng = np.random.default_rng(seed)
    c, h, w = spec.input_channels, spec.input_height, spec.input_width
    coarse = rng.random((c, max(2, h // 16), max(2, w // 16)))
    img = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0].numpy()
    mean = np.tile(np.array(spec.mean), c // 3)[:, None, None]
    std = np.tile(np.array(spec.std), c // 3)[:, None, None]
    return ((img - mean) / std)[None].astype(np.float32)


def _parity(path: Path, module: nn.Module, spec: ModelSpec) -> float:
    import onnxruntime as ort

    x = _smooth_input(spec)
    with torch.inference_mode():
        want = module(torch.from_numpy(x)).float().numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([spec.output_name], {spec.input_name: x})[0]
    if got.shape != want.shape:
        raise ModelError(f"{path}: ONNX output shape {got.shape} != torch {want.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - want)))


def export_module(module: "object", output_dir: str | Path, pose: bool = True, name: str | None = None, check_parity: bool = True, tensorrt: Literal["auto", "on", "off"] = "auto", train_camera: CameraModel | None = None) -> ExportResult:
    """Export a trained :class:`DepthTrainingModule` (see the module docstring).

    Args:
        train_camera: the training images' camera before their resize; None: the one of the
            data module the module was fitted with, when it is still attached to its trainer.

    Raises:
        ModelError: export or parity failed (atol 1e-4 on the export's own check).
        BackendError: ``tensorrt="on"`` but TensorRT/CUDA is not usable.
    """
    from depth_ros.inference.onnx_export import export_onnx

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if train_camera is None:
        train_camera = _attached_training_camera(module)
    if train_camera is None:
        log.warning("no training camera known: the model spec records no training aspect or focal length "
                    "(a run on another camera is neither cropped to the trained aspect nor focal-corrected)")
    depth_spec, pose_spec = specs_for(module, name, train_camera)
    result = ExportResult()
    jobs = [("depth", DepthExportWrapper(module.depth_net), depth_spec)]  # type: ignore[attr-defined]
    if pose:
        jobs.append(("pose", PoseExportWrapper(module.pose_net), pose_spec))  # type: ignore[attr-defined]
    for kind, wrapper, spec in jobs:
        wrapper = wrapper.eval().cpu()
        path = export_onnx(wrapper, spec, out / f"{kind}.onnx", check_atol=1e-4 if check_parity else None)
        result.paths[kind] = path
        result.specs[kind] = spec
        if check_parity:
            result.parity_max_abs_error[kind] = _parity(path, wrapper, spec)
            log.info("%s.onnx parity on an image-like input: max |ort - torch| = %.3g", kind, result.parity_max_abs_error[kind])
    for kind in list(result.paths):
        _check_loadable(result.paths[kind])
    _maybe_build_engines(result, tensorrt)
    return result


def _check_loadable(path: Path) -> None:
    """Load an exported file as the runtime does; its dry run checks the outputs against the
    embedded spec (shape and layout for the spec's input size).

    Raises:
        ModelError / ModelSpecError: the runtime would refuse the file.
    """
    from depth_ros.inference.backend import create_backend

    create_backend(path, backend="onnxruntime")


def _maybe_build_engines(result: ExportResult, tensorrt: str) -> None:
    if tensorrt == "off":
        return
    from depth_ros.errors import BackendError
    from depth_ros.inference.backend import create_backend, probe_tensorrt

    probe = probe_tensorrt()
    if not probe.available:
        if tensorrt == "on":
            raise BackendError(f"TensorRT engines requested but TensorRT is not usable: {probe.reason}")
        log.info("no TensorRT engines built: %s", probe.reason)
        return
    for kind in list(result.paths):
        # building the backend compiles the engine into the runtime's engine cache
        backend = create_backend(result.paths[kind], backend="tensorrt")
        result.paths[f"{kind}_engine"] = Path(getattr(backend, "engine_path", result.paths[kind]))
        log.info("TensorRT engine for %s: %s", kind, backend.name)


def load_module(checkpoint: str | Path) -> "object":
    """A :class:`DepthTrainingModule` from a Lightning checkpoint (CPU, eval mode).

    The file is untrusted input: it is read with ``weights_only=True`` (a pickle payload is
    refused before any of it runs), and ``encoder_weights_path`` in its hyper-parameters is
    ignored, since the state dict holds every weight (a path there would only make the
    checkpoint read a file of its choice, or fail on a machine without that file).

    Raises:
        ModelError: no such file, not a weights-only checkpoint, or not a checkpoint of this module.
    """
    from depth_ros.inference.torch_backend import load_untrusted
    from depth_ros_training.checkpoint import rebuild_module
    from depth_ros_training.module import DepthTrainingModule

    path = Path(checkpoint)
    return rebuild_module(path, load_untrusted(path), lambda hp: DepthTrainingModule(**{**hp, "encoder_weights_path": None}),
                          "a depth_ros training checkpoint")


def run_training_camera(checkpoint: str | Path) -> CameraModel | None:
    """The training camera of the ``fit`` run a checkpoint belongs to: the run's saved
    ``config.yaml`` (``<version dir>/config.yaml`` beside ``checkpoints/``) names the bags and
    the crop; their indexes (cached by training) give the camera. None, logged, when the run's
    configuration is not there or no longer loads (bags moved, another data config)."""
    path = Path(checkpoint).resolve().parent.parent / "config.yaml"
    if not path.is_file():
        log.info("%s: no config.yaml of the fit run beside the checkpoint's directory", checkpoint)
        return None
    from types import SimpleNamespace

    import yaml

    from depth_ros_training.data.bag_index import load_or_build_index
    from depth_ros_training.data.dataset import DataConfig

    try:
        data = dict((yaml.safe_load(path.read_text()) or {})["data"]["data"])
        config = DataConfig(**data)
        indexes = [load_or_build_index(bag, config.index_options, config.cache_dir) for bag in config.bags]
    except Exception as exc:  # any reason the old run's data cannot be opened: the camera stays unknown
        log.warning("%s: the training camera could not be read from the run's data (%s: %s)", path, type(exc).__name__,
                    " ".join(str(exc).split())[:200])
        return None
    return training_camera(SimpleNamespace(indexes=indexes, config=config))


def export_checkpoint(checkpoint: str | Path, output_dir: str | Path, pose: bool = True, name: str | None = None, check_parity: bool = True, tensorrt: Literal["auto", "on", "off"] = "auto", train_camera: CameraModel | None = None) -> ExportResult:
    """``depth-ros-train export``: load a checkpoint and :func:`export_module` it. A checkpoint
    does not hold its training camera: ``train_camera``, else the one of its fit run
    (:func:`run_training_camera`), is recorded."""
    if train_camera is None:
        train_camera = run_training_camera(checkpoint)
    return export_module(load_module(checkpoint), output_dir, pose=pose, name=name, check_parity=check_parity,
                         tensorrt=tensorrt, train_camera=train_camera)
