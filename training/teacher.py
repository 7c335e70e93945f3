"""SC-Depth v3 pseudo-depth: any ONNX depth model run once per frame, cached on disk.

The teacher runs through the runtime's backends (:func:`depth_ros.inference.backend.create_backend`)
with its own ModelSpec (embedded or a YAML sidecar, e.g. for a Depth Anything V2 export), on
the same cropped frames the student sees. Its output is turned into a *depth-ordered* map at
the student's resolution (only the order matters to the ranking loss, so a relative inverse
depth is simply inverted) and stored as ``(N, 1, h, w) float32`` ``.npy`` next to the bag
index, keyed by the bag fingerprint, the model file's SHA-256 and the resolution; training
memory-maps it.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from depth_ros.errors import ModelError
from depth_ros.inference.spec import ModelSpec

from depth_ros_training.data.bag_index import BagMessageReader, cache_path_for, load_or_build_index
from depth_ros_training.data.dataset import DataConfig, read_frame_rgb

__all__ = ["teacher_depth_for_bags", "teacher_output_to_depth"]

log = logging.getLogger(__name__)

_EPS = 1e-6


def teacher_output_to_depth(w: np.ndarray, spec: ModelSpec, camera_fx_px: float, camera_width_px: int) -> np.ndarray:
    """A depth-ordered map (larger = farther) from a depth model's raw output.

    Args:
        w: (h, w) raw first output of the model.
        spec: its contract.
        camera_fx_px, camera_width_px: the camera's focal length and width in pixels (for
            ``canonical_inverse_depth``).

    Returns:
        (h, w) float32, positive; metres for metric kinds, arbitrary units otherwise.
    """
    w = np.asarray(w, dtype=np.float64)
    if spec.output_kind == "disparity_sigmoid":
        min_disp, max_disp = 1.0 / spec.max_depth_m, 1.0 / spec.min_depth_m
        depth = 1.0 / (min_disp + (max_disp - min_disp) * np.clip(w, 0.0, 1.0))
    elif spec.output_kind == "inverse_depth_relative":
        depth = 1.0 / np.maximum(w - min(float(np.nanmin(w)), 0.0) + _EPS, _EPS)
    elif spec.output_kind == "depth_metric":
        depth = np.maximum(w, _EPS)
    elif spec.output_kind == "canonical_inverse_depth":
        depth = camera_fx_px / (camera_width_px * np.maximum(w, _EPS))
    else:
        raise ModelError(f"teacher must be a depth model, its spec says {spec.output_kind!r}")
    return np.nan_to_num(depth, nan=float(np.nanmax(depth)) if np.isfinite(depth).any() else 1.0).astype(np.float32)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _resize_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def teacher_depth_for_bags(config: DataConfig, model_path: str | Path, backend: str = "onnxruntime-cpu") -> dict[str, Any]:
    """{bag path (resolved): (N, 1, h, w) float32 memory-mapped pseudo-depth per indexed frame}.

    Computed on first use and cached; later calls (and other DDP ranks / workers) map the file.
    """
    from depth_ros.core.preprocess import preprocess
    from depth_ros.inference.backend import create_backend

    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"teacher model not found: {model_path}")
    digest = _file_sha256(model_path)[:16]
    runner = None
    out: dict[str, Any] = {}
    for bag in config.bags:
        index = load_or_build_index(bag, config.index_options, config.cache_dir)
        base = cache_path_for(Path(bag), config.index_options, Path(config.cache_dir) if config.cache_dir else None)
        cache = base.with_name(base.name.replace(".npz", f".teacher-{digest}-{config.width}x{config.height}-{_crop_key(config)}.npy"))
        if not cache.is_file():
            if runner is None:
                runner = create_backend(model_path, backend=backend)
                if not runner.spec.is_depth:
                    raise ModelError(f"teacher {model_path} is a {runner.spec.output_kind} model, not a depth model")
            reader = BagMessageReader(index.bag_path)
            camera = index.camera.cropped(*config.crop) if config.crop is not None else index.camera
            maps = np.empty((len(index), 1, config.height, config.width), dtype=np.float32)
            for i in range(len(index)):
                rgb = read_frame_rgb(reader, index, i)
                if config.crop is not None:
                    x0, y0, w, h = config.crop
                    rgb = np.ascontiguousarray(rgb[y0 : y0 + h, x0 : x0 + w])
                pre = preprocess(rgb, camera, runner.spec)
                raw = runner.infer(pre.tensor)[runner.spec.output_name]
                raw2d = np.asarray(raw, dtype=np.float32).reshape(raw.shape[-2:])
                depth = teacher_output_to_depth(raw2d, runner.spec, camera.fx, camera.width)
                maps[i, 0] = _resize_bilinear(depth, config.height, config.width)
            reader.close()
            tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp.npy")
            np.save(tmp, maps)
            os.replace(tmp, cache)
            log.info("teacher pseudo-depth for %s: %d frames cached at %s", bag, len(index), cache)
        out[index.bag_path] = np.load(cache, mmap_mode="r")
    return out


def _crop_key(config: DataConfig) -> str:
    return "full" if config.crop is None else "-".join(str(c) for c in config.crop)
