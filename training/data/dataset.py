"""Training samples from bags: a target frame and its source frames at +-k.

One sample (the dictionary every part of training agrees on; B = batch, S = sources):

* ``"tgt"``: (3, h, w) float32 RGB in [0, 1], the target image resized by the runtime's
  :func:`depth_ros.core.preprocess.resize_rgb` (so what is trained is what runs); the
  photometric losses compare these, and the networks normalise them with ``DataConfig.mean`` /
  ``std`` at their input (:class:`~depth_ros_training.models.ImageNormalization`), as the
  runtime's :func:`~depth_ros.core.preprocess.preprocess` does for the exported model.
* ``"srcs"``: (S, 3, h, w) float32 in [0, 1], source images in ``DataConfig.frame_offsets`` order.
* ``"K"``: (3, 3) float32 intrinsics in pixels at the network resolution (w, h), rescaled
  from CameraInfo through ``CameraModel.cropped`` / ``CameraModel.resized`` only.
* ``"distance_m"``: (S,) float32 distance between the camera centres of target and source
  from odometry (metres), NaN where no pose is known.
* ``"T_src_tgt_odom"``: (S, 4, 4) float32 target camera frame -> source camera frame from
  odometry and the camera extrinsic (the convention of PoseNet's output), NaN where unknown.
* ``"gt_depth_m"``: (1, h, w) float32 ground-truth depth at network resolution (nearest
  neighbour), NaN where invalid or where the bag has none.
* ``"teacher_depth"``: (1, h, w) float32 pseudo-depth of the teacher (v3), only when a
  teacher cache is attached.
* ``"hint_srcs"``, ``"T_hint_src_tgt_odom"``: (S_h, 3, h, w) and (S_h, 4, 4), the frames at
  ``DataConfig.hint_offsets`` and their odometry poses, only when hint offsets are set (seen
  by the depth-hint plane sweep only).
* ``"index"``: int64 sample index.
* ``"hflip"``: bool, True where the sample was mirrored (``DataConfig.hflip``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from depth_ros.core.camera import CameraModel
from depth_ros.errors import BagError, InputError
from depth_ros.inference.spec import ModelSpec

from depth_ros_training.data.bag_index import BagIndex, BagMessageReader, IndexOptions, load_or_build_index
from depth_ros_training.data.labels import resize_nearest

__all__ = [
    "BagSequenceDataset", "DataConfig", "SampleRef", "color_jitter_sample", "hflip_sample", "plan_samples", "read_frame_rgb",
    "resize_nearest", "rgb_to_unit_chw",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    """How bags become samples.

    Args:
        bags: bag paths (.mcap / .db3 files or rosbag2 directories).
        height, width: network input size in pixels.
        crop: optional (x0, y0, width, height) crop in recorded pixels, applied before the resize.
        frame_offsets: source frames relative to the target, in units of ``stride`` frames.
        hint_offsets: further frames (same units) that only the depth-hint plane sweep sees
            (the photometric terms use ``frame_offsets`` alone): wider baselines move mid and
            far surfaces enough to be found (see :mod:`depth_ros_training.losses.hints`).
            Needs odometry poses for them; empty (the default): none.
        stride: frames between neighbours (2 = every other frame).
        image_topic, camera_info_topic, odom_topic, gt_depth_topic: see IndexOptions.
        static_filter: "odometry" (skip samples whose camera moved less than
            ``min_translation_m`` to every source), "image" (mean absolute grey-level
            change below ``min_image_change`` in [0, 1]), "auto" (odometry when the bag has
            it, else image), or "none".
        min_translation_m: static threshold for the odometry filter (metres).
        min_image_change: static threshold for the image filter (fraction of full scale).
        val_fraction: share of time segments held out for validation (0 = no validation).
        segment_s: length of the time segments the split works on (seconds); every sample
            lies inside one segment, so no frame of a validation sample is in a training sample.
        require_odometry: raise when a bag has no usable odometry (velocity supervision).
        cache_dir: where bag indexes are cached (default: next to each bag).
        cache_frames: keep decoded, preprocessed frames in memory (per worker process).
        mean, std: the networks' input normalisation of [0, 1] pixels (as in the exported
            ModelSpec); samples themselves carry [0, 1] images.
        hflip: training samples are mirrored left-right with probability 0.5 (images, ground
            truth and teacher depth, ``cx -> (w - 1) - cx``, and the odometry poses
            conjugated by the x-mirror ``S = diag(-1, 1, 1, 1)``: ``T' = S T S``), which is
            a valid sample of the mirrored world.
        color_jitter: strength ``j`` of a random brightness, contrast and saturation change,
            each factor uniform in ``[1 - j, 1 + j]``, drawn once per training sample and
            applied alike to the target and its sources (brightness constancy between them
            holds); 0 disables it.
    """

    bags: tuple[str, ...] = ()
    height: int = 128
    width: int = 416
    crop: tuple[int, int, int, int] | None = None
    frame_offsets: tuple[int, ...] = (-1, 1)
    hint_offsets: tuple[int, ...] = ()
    stride: int = 1
    image_topic: str | None = None
    camera_info_topic: str | None = None
    odom_topic: str = "/odom"
    gt_depth_topic: str = "/camera/depth/ground_truth"
    static_filter: Literal["auto", "odometry", "image", "none"] = "auto"
    min_translation_m: float = 0.02
    min_image_change: float = 0.01
    val_fraction: float = 0.2
    segment_s: float = 4.0
    require_odometry: bool = False
    cache_dir: str | None = None
    cache_frames: bool = True
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    hflip: bool = False
    color_jitter: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "bags", tuple(str(b) for b in self.bags))
        object.__setattr__(self, "frame_offsets", tuple(int(o) for o in self.frame_offsets))
        object.__setattr__(self, "hint_offsets", tuple(int(o) for o in self.hint_offsets))
        if self.crop is not None:
            object.__setattr__(self, "crop", tuple(int(c) for c in self.crop))
            if len(self.crop) != 4 or self.crop[2] <= 0 or self.crop[3] <= 0 or min(self.crop[:2]) < 0:
                raise ValueError(f"crop must be (x0, y0, width, height) with positive size, got {self.crop}")
        if not (8 <= self.height <= 4096 and 8 <= self.width <= 4096):
            raise ValueError(f"height/width must be 8..4096 px, got {self.height}x{self.width}")
        if self.height % 32 or self.width % 32:
            raise ValueError(f"height and width must be multiples of 32 (encoder stride), got {self.height}x{self.width}")
        if not self.frame_offsets or 0 in self.frame_offsets or len(set(self.frame_offsets)) != len(self.frame_offsets):
            raise ValueError(f"frame_offsets must be distinct non-zero integers, got {self.frame_offsets}")
        if 0 in self.hint_offsets or len(set(self.hint_offsets + self.frame_offsets)) != len(self.hint_offsets) + len(self.frame_offsets):
            raise ValueError(f"hint_offsets must be distinct non-zero integers not in frame_offsets, got {self.hint_offsets} (frame_offsets {self.frame_offsets})")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.static_filter not in ("auto", "odometry", "image", "none"):
            raise ValueError(f"static_filter must be auto|odometry|image|none, got {self.static_filter!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not self.segment_s > 0:
            raise ValueError(f"segment_s must be positive, got {self.segment_s}")
        if self.min_translation_m < 0 or self.min_image_change < 0:
            raise ValueError("static thresholds must be >= 0")
        if not 0.0 <= self.color_jitter < 1.0:
            raise ValueError(f"color_jitter must be in [0, 1), got {self.color_jitter}")

    @property
    def index_options(self) -> IndexOptions:
        return IndexOptions(
            image_topic=self.image_topic,
            camera_info_topic=self.camera_info_topic,
            odom_topic=self.odom_topic,
            gt_depth_topic=self.gt_depth_topic,
        )

    def model_spec(self, **overrides: Any) -> ModelSpec:
        """The depth network's input contract implied by this data configuration."""
        kwargs: dict[str, Any] = dict(
            output_kind="disparity_sigmoid",
            input_height=self.height,
            input_width=self.width,
            mean=self.mean,
            std=self.std,
        )
        kwargs.update(overrides)
        return ModelSpec(**kwargs)


@dataclass(frozen=True)
class SampleRef:
    """A sample: bag number, target frame number, source frame numbers and hint-sweep frame
    numbers in that bag."""

    bag: int
    tgt: int
    srcs: tuple[int, ...]
    hint_srcs: tuple[int, ...] = ()


def _split_of_frames(stamps_ns: np.ndarray, segment_s: float, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(segment id per frame, is-validation per frame).

    Every ``round(1 / val_fraction)``-th segment is validation, starting with the middle of the
    first period so that validation is spread over the whole bag, deterministically.
    """
    seg = ((stamps_ns - stamps_ns[0]) // int(segment_s * 1e9)).astype(np.int64)
    if val_fraction <= 0:
        return seg, np.zeros(len(seg), dtype=bool)
    period = max(2, int(round(1.0 / val_fraction)))
    return seg, (seg % period) == (period // 2)


def plan_samples(index: BagIndex, config: DataConfig, bag_number: int, thumbnails: np.ndarray | None) -> dict[str, list[SampleRef]]:
    """Samples of one bag split into {"train": [...], "val": [...]}.

    Args:
        index: the bag's index.
        config: data configuration.
        bag_number: position of the bag in ``config.bags``.
        thumbnails: (N, h, w) float32 grey thumbnails in [0, 1] for the image static filter,
            or None.
    """
    n = len(index)
    seg, is_val = _split_of_frames(index.image_stamp_ns, config.segment_s, config.val_fraction) if n else (np.zeros(0, np.int64), np.zeros(0, bool))
    offsets = np.array(config.frame_offsets) * config.stride
    hint_offsets = np.array(config.hint_offsets, dtype=np.int64) * config.stride
    reach = np.concatenate([offsets, hint_offsets])
    mode = config.static_filter
    if mode == "auto":
        mode = "odometry" if index.has_odometry and index.pose_valid.any() else ("image" if thumbnails is not None else "none")
    out: dict[str, list[SampleRef]] = {"train": [], "val": []}
    centres = index.T_odom_cam[:, :3, 3]
    for i in range(max(0, -reach.min()), n - max(0, reach.max())):
        srcs = i + offsets
        hint_srcs = i + hint_offsets
        if np.any(seg[srcs] != seg[i]) or np.any(seg[hint_srcs] != seg[i]):
            continue  # crosses a split segment boundary
        if config.require_odometry and not (index.pose_valid[i] and index.pose_valid[srcs].all()):
            continue
        if len(hint_srcs) and not (index.pose_valid[i] and index.pose_valid[hint_srcs].all()):
            continue  # the sweep warps with odometry poses
        if mode == "odometry":
            if not (index.pose_valid[i] and index.pose_valid[srcs].all()):
                continue
            moved = np.linalg.norm(centres[srcs] - centres[i], axis=1)
            if moved.min() < config.min_translation_m:
                continue
        elif mode == "image" and thumbnails is not None:
            change = np.abs(thumbnails[srcs] - thumbnails[i]).mean(axis=(1, 2))
            if change.min() < config.min_image_change:
                continue
        out["val" if is_val[i] else "train"].append(SampleRef(bag_number, int(i), tuple(int(s) for s in srcs), tuple(int(s) for s in hint_srcs)))
    return out


class BagSequenceDataset(Dataset):
    """Target/source samples from one or many bags (see the module docstring for a sample).

    Args:
        config: data configuration.
        split: "train", "val" or "all".
        teacher_depth: optional {bag path: (N, 1, h, w) float32 array-like} of teacher
            pseudo-depth per frame at network resolution (memory-mapped cache), see
            :mod:`depth_ros_training.teacher`.

    Raises:
        BagError: a bag lacks camera_info, has too few frames for one sample, or lacks
            odometry when ``config.require_odometry`` is set.
    """

    def __init__(self, config: DataConfig, split: Literal["train", "val", "all"] = "train", teacher_depth: dict[str, Any] | None = None) -> None:
        if not config.bags:
            raise ValueError("DataConfig.bags is empty: give at least one bag")
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be train|val|all, got {split!r}")
        self.config = config
        self.split = split
        self.spec = config.model_spec()
        self.indexes: list[BagIndex] = []
        self.samples: list[SampleRef] = []
        self.teacher_depth = teacher_depth
        for b, bag in enumerate(config.bags):
            index = load_or_build_index(bag, config.index_options, config.cache_dir)
            self._check_bag(index)
            thumbs = None
            if config.static_filter == "image" or (config.static_filter == "auto" and not index.has_odometry):
                thumbs = _thumbnails(index)
            planned = plan_samples(index, config, b, thumbs)
            self.indexes.append(index)
            self.samples.extend(planned["train"] + planned["val"] if split == "all" else planned[split])
        if not self.samples:
            raise BagError(
                f"no {split} samples in {list(config.bags)}: "
                f"{[len(i) for i in self.indexes]} images, offsets {config.frame_offsets} x stride {config.stride}, "
                f"static filter {config.static_filter!r}, val_fraction {config.val_fraction}, segment_s {config.segment_s} "
                "(record a longer bag, lower the thresholds or the stride)"
            )
        self.readers = [BagMessageReader(i.bag_path) for i in self.indexes]
        self._frame_cache: dict[tuple[int, int], np.ndarray] = {}
        self._gt_cache: dict[tuple[int, int], np.ndarray] = {}
        cam = self.indexes[0].camera
        self.network_cameras = [self._network_camera(i.camera) for i in self.indexes]
        log.info("%s: %d samples from %d bags (camera %dx%d)", split, len(self.samples), len(self.indexes), cam.width, cam.height)

    def _check_bag(self, index: BagIndex) -> None:
        reach = self.config.frame_offsets + self.config.hint_offsets
        need = (max(max(reach), 0) - min(min(reach), 0)) * self.config.stride + 1
        if len(index) < need:
            hints = f" and hint offsets {self.config.hint_offsets}" if self.config.hint_offsets else ""
            raise BagError(
                f"{index.bag_path}: {len(index)} images on {index.image_topic}, need at least {need} "
                f"for source offsets {self.config.frame_offsets}{hints} at stride {self.config.stride}"
            )
        if self.config.hint_offsets and not (index.has_odometry and index.pose_valid.any()):
            raise BagError(f"{index.bag_path}: hint_offsets need odometry poses (the sweep warps with them); the bag has none on {self.config.odom_topic}")
        if self.config.require_odometry and not (index.has_odometry and index.pose_valid.any()):
            why = "; ".join(index.notes) or f"no nav_msgs/Odometry on {self.config.odom_topic}"
            raise BagError(
                f"{index.bag_path}: velocity supervision needs odometry and a base -> camera transform in "
                f"/tf_static ({why}); turn velocity supervision off or record odometry"
            )

    def _network_camera(self, camera: CameraModel) -> CameraModel:
        if self.config.crop is not None:
            camera = camera.cropped(*self.config.crop)
        return camera.resized(self.config.width, self.config.height)

    def __len__(self) -> int:
        return len(self.samples)

    # -- frame loading -----------------------------------------------------------------------
    def load_rgb(self, bag: int, frame: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of a frame at recorded resolution (before crop)."""
        return read_frame_rgb(self.readers[bag], self.indexes[bag], frame)

    def load_frame(self, bag: int, frame: int) -> np.ndarray:
        """(3, h, w) float32 RGB in [0, 1] of one frame at network resolution (cached when
        configured)."""
        key = (bag, frame)
        cached = self._frame_cache.get(key)
        if cached is not None:
            return cached
        from depth_ros.core.preprocess import resize_rgb

        rgb = self.load_rgb(bag, frame)
        if self.config.crop is not None:
            x0, y0, w, h = self.config.crop
            rgb = rgb[y0 : y0 + h, x0 : x0 + w]
        x = rgb_to_unit_chw(resize_rgb(np.ascontiguousarray(rgb), self.config.width, self.config.height))
        if self.config.cache_frames:
            self._frame_cache[key] = x
        return x

    def load_gt_depth(self, bag: int, frame: int) -> np.ndarray:
        """(1, h, w) float32 ground-truth depth (metres, NaN invalid) at network resolution."""
        key = (bag, frame)
        cached = self._gt_cache.get(key)
        if cached is not None:
            return cached
        h, w = self.config.height, self.config.width
        index = self.indexes[bag]
        log_ns = int(index.gt_depth_log_ns[frame])
        if index.gt_depth_topic is None or log_ns < 0:
            out = np.full((1, h, w), np.nan, dtype=np.float32)
        else:
            from depth_ros.msgconv import image_to_depth_m

            depth = index.rectify_label(image_to_depth_m(self.readers[bag].read(index.gt_depth_topic, log_ns)))
            if self.config.crop is not None:
                x0, y0, cw, ch = self.config.crop
                depth = depth[y0 : y0 + ch, x0 : x0 + cw]
            out = resize_nearest(depth, h, w)[None]
        if self.config.cache_frames:
            self._gt_cache[key] = out
        return out

    def __getitem__(self, item: int) -> dict[str, Any]:
        ref = self.samples[item]
        index = self.indexes[ref.bag]
        tgt = self.load_frame(ref.bag, ref.tgt)
        srcs = np.stack([self.load_frame(ref.bag, s) for s in ref.srcs])
        centres = index.T_odom_cam[:, :3, 3]
        valid = index.pose_valid[ref.tgt] & index.pose_valid[list(ref.srcs)]
        distance = np.linalg.norm(centres[list(ref.srcs)] - centres[ref.tgt], axis=1)
        distance = np.where(valid, distance, np.nan).astype(np.float32)
        T_src_tgt = np.linalg.inv(index.T_odom_cam[list(ref.srcs)]) @ index.T_odom_cam[ref.tgt]
        T_src_tgt[~valid] = np.nan
        sample: dict[str, Any] = {
            "tgt": torch.from_numpy(tgt),
            "srcs": torch.from_numpy(srcs),
            "K": torch.from_numpy(self.network_cameras[ref.bag].K.astype(np.float32)),
            "distance_m": torch.from_numpy(distance),
            "T_src_tgt_odom": torch.from_numpy(T_src_tgt.astype(np.float32)),
            "gt_depth_m": torch.from_numpy(self.load_gt_depth(ref.bag, ref.tgt)),
            "index": torch.tensor(item, dtype=torch.int64),
            "hflip": torch.tensor(False),
        }
        if ref.hint_srcs:
            hint = list(ref.hint_srcs)
            sample["hint_srcs"] = torch.from_numpy(np.stack([self.load_frame(ref.bag, f) for f in hint]))
            T_hint = np.linalg.inv(index.T_odom_cam[hint]) @ index.T_odom_cam[ref.tgt]
            sample["T_hint_src_tgt_odom"] = torch.from_numpy(T_hint.astype(np.float32))
        if self.teacher_depth is not None:
            pseudo = np.asarray(self.teacher_depth[index.bag_path][ref.tgt], dtype=np.float32)
            sample["teacher_depth"] = torch.from_numpy(pseudo.reshape(1, self.config.height, self.config.width).copy())
        if self.split == "train":
            if self.config.hflip and bool(torch.rand(()) < 0.5):
                sample = hflip_sample(sample)
            if self.config.color_jitter > 0:
                sample = color_jitter_sample(sample, self.config.color_jitter)
        return sample


_MIRROR_X = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))


def hflip_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample of the left-right mirrored world (see ``DataConfig.hflip``); a new dict,
    the input's tensors are not modified."""
    out = dict(sample)
    for key in ("tgt", "srcs", "hint_srcs", "gt_depth_m", "teacher_depth"):
        if key in out:
            out[key] = out[key].flip(-1)
    out["hflip"] = torch.tensor(not bool(sample.get("hflip", False)))
    K = out["K"].clone()
    width = out["tgt"].shape[-1]
    K[0, 2] = (width - 1) - K[0, 2]
    out["K"] = K
    S = _MIRROR_X.to(out["T_src_tgt_odom"].dtype)
    out["T_src_tgt_odom"] = S @ out["T_src_tgt_odom"] @ S  # NaN rows stay NaN
    if "T_hint_src_tgt_odom" in out:
        out["T_hint_src_tgt_odom"] = S @ out["T_hint_src_tgt_odom"] @ S
    return out


def color_jitter_sample(sample: dict[str, Any], strength: float) -> dict[str, Any]:
    """Random brightness, contrast and saturation, the same for the target and its sources
    (see ``DataConfig.color_jitter``), of a sample's [0, 1] images (clamped to [0, 1])."""
    brightness, contrast, saturation = (1.0 + strength * (2.0 * torch.rand(3) - 1.0)).tolist()
    grey_mean = sample["tgt"].mean()  # contrast pivots on the target's mean, the same for every frame

    def jitter(x01: torch.Tensor) -> torch.Tensor:
        x01 = x01 * brightness
        x01 = (x01 - grey_mean * brightness) * contrast + grey_mean * brightness
        grey = x01.mean(dim=-3, keepdim=True)
        return (grey + (x01 - grey) * saturation).clamp(0.0, 1.0)

    out = dict(sample)
    out["tgt"] = jitter(sample["tgt"])
    out["srcs"] = jitter(sample["srcs"])
    if "hint_srcs" in sample:
        out["hint_srcs"] = jitter(sample["hint_srcs"])
    return out


def rgb_to_unit_chw(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 RGB -> (3, h, w) float32 in [0, 1] (``x / 255``), C-contiguous."""
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0


def read_frame_rgb(reader: BagMessageReader, index: BagIndex, frame: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB of frame ``frame`` of an indexed bag, at recorded resolution, as the
    index's camera sees it (rectified for a distorted camera: :meth:`BagIndex.rectify_image`).

    Raises:
        InputError: the image's size differs from the bag's CameraInfo.
    """
    from depth_ros.msgconv import compressed_to_rgb, image_to_rgb

    msg = reader.read(index.image_topic, int(index.image_log_ns[frame]))
    rgb = compressed_to_rgb(msg) if index.image_kind == "compressed" else image_to_rgb(msg)
    if rgb.shape[:2] != (index.camera.height, index.camera.width):
        raise InputError(
            f"{index.bag_path}: image {frame} is {rgb.shape[1]}x{rgb.shape[0]}, camera_info says "
            f"{index.camera.width}x{index.camera.height}"
        )
    return index.rectify_image(rgb)  # a distorted camera's image as index.camera (rectified) sees it


def _thumbnails(index: BagIndex, size: tuple[int, int] = (24, 32)) -> np.ndarray:
    """(N, 24, 32) float32 grey thumbnails in [0, 1] (one pass over the images; only for
    bags without odometry, where the image-change static filter needs them)."""
    from depth_ros.msgconv import compressed_to_rgb, image_to_rgb

    from depth_ros_training.data.bag_index import open_any_reader

    reader = open_any_reader(index.bag_path)
    try:
        conns = [c for c in reader.connections if c.topic == index.image_topic]
        by_log = {}
        for conn, t, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            rgb = compressed_to_rgb(msg) if index.image_kind == "compressed" else image_to_rgb(msg)
            by_log[t] = resize_nearest(rgb.mean(axis=2).astype(np.float32) / 255.0, *size)
    finally:
        reader.close()
    return np.stack([by_log[int(t)] for t in index.image_log_ns]) if len(index) else np.zeros((0,) + size, np.float32)
