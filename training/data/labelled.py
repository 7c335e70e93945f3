"""Labelled depth samples from bags, and the MiDaS-style mixing of label groups.

Bags are gathered in *groups*; a group declares one label source and the kind of its label:

* ``gt_topic``: a dense depth Image registered to the camera (32FC1 metres or 16UC1 mm, the size
  of the camera), matched to each image by header stamp through the training index
  (:mod:`depth_ros_training.data.bag_index`, its ground-truth topic);
* ``lidar_topic``: a PointCloud2 put in the camera's optical frame through ``/tf_static`` and
  projected by :func:`depth_ros_training.eval.evaluate.project_points_to_depth` (sparse; the
  cloud nearest each image stamp within ``stamp_tolerance_s``, no motion compensation);
* ``teacher``: any ONNX depth model run through the runtime's backends once per frame and cached
  (:func:`depth_ros_training.teacher.teacher_depth_for_bags`, the SC-Depth v3 cache); the cached
  map is depth-ordered (metres for a metric teacher, ``1 / (shifted inverse depth)`` for a
  relative one, so ``relative_inverse_depth`` is read back as its inverse, affine in the teacher's
  output).

and the label kind (``metric_depth``, ``relative_depth``, ``relative_inverse_depth``), turned into
the loss target by :func:`depth_ros_training.data.labels.label_to_target`.

One sample (a dict; B = batch):

* ``"image"``: (3, h, w) float32 RGB in [0, 1], resized by the runtime's
  :func:`depth_ros.core.preprocess.resize_rgb` (the networks normalise with the spec's mean/std);
* ``"target"``: (1, h, w) float32 inverse-depth target (1/m for metric labels), 0 where invalid;
* ``"valid"``: (1, h, w) bool;
* ``"K"``: (3, 3) float32 intrinsics in pixels at (w, h), after the crop, resize and flip;
* ``"kind"``: int64 index into :data:`~depth_ros_training.data.labels.LABEL_KINDS`;
* ``"group"``: int64 index of the group in :attr:`LabelledDataConfig.groups`;
* ``"exact"``: bool, the group's labels are exact (synthetic renderer), see ``LabelGroup.exact``;
* ``"hflip"``: bool, the sample was mirrored.

Geometry of a sample: an optional fixed crop (``LabelledDataConfig.crop``, recorded pixels), then
in training an optional random crop (``random_crop``: a box covering a fraction in
[random_crop, 1] of each side, anywhere in the frame), a resize to (h, w) and a left-right flip
with probability 0.5 (``hflip``). The label follows every step on the same pixels: dense labels are
cropped in their own pixels and resampled by nearest neighbour (every label value is a recorded
value, a hole stays a hole, nothing is interpolated across an edge); LiDAR points are projected
straight into the final camera (no point lost to a resample); the flip mirrors image, label and
mask and maps ``cx -> (w - 1) - cx``.

Mixing: :mod:`depth_ros_training.data.mixing`; the configuration (:class:`LabelSource`,
:class:`LabelGroup`, :class:`LabelledDataConfig`): :mod:`depth_ros_training.data.labelled_config`;
both re-exported here.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from depth_ros.core.camera import CameraModel
from depth_ros.errors import BagError, InputError

from depth_ros_training.data.bag_index import BagIndex, BagMessageReader, load_or_build_index
from depth_ros_training.data.dataset import rgb_to_unit_chw
from depth_ros_training.data.labelled_config import LabelGroup, LabelledDataConfig, LabelSource
from depth_ros_training.data.labels import LABEL_KINDS, label_to_target, resize_nearest
from depth_ros_training.data.mixing import MixingBatchSampler, group_batch_counts

__all__ = [
    "LabelGroup",
    "LabelSource",
    "LabelledBagDataset",
    "LabelledDataConfig",
    "LabelledDataModule",
    "LabelledRef",
    "MixingBatchSampler",
    "check_label_sources",
    "group_batch_counts",
]

log = logging.getLogger(__name__)

POINTCLOUD2_TYPE = "sensor_msgs/msg/PointCloud2"
IMAGE_TYPE = "sensor_msgs/msg/Image"


@dataclass(frozen=True)
class LabelledRef:
    """One labelled frame: group, bag (position in the group), frame number in the bag's index,
    and the log time of its label message (-1 for a teacher label)."""

    group: int
    bag: int
    frame: int
    label_log_ns: int


@dataclass
class _BagLabels:
    index: BagIndex
    reader: BagMessageReader
    label_log_ns: np.ndarray  # (N,) int64, -1 where the frame has no label
    T_cam_lidar: np.ndarray | None = None  # (4, 4) LiDAR frame -> camera optical frame
    teacher: Any = None  # (N, 1, h, w) memory-mapped depth-ordered teacher maps
    teacher_crop_box: tuple[int, int, int, int] | None = None


def _match_stamps(stamps_ns: np.ndarray, logs_ns: np.ndarray, image_stamp_ns: np.ndarray, tolerance_s: float) -> np.ndarray:
    """(N,) log time of the message nearest each image stamp, -1 beyond ``tolerance_s``."""
    if len(stamps_ns) == 0:
        return np.full(len(image_stamp_ns), -1, dtype=np.int64)
    order = np.argsort(stamps_ns, kind="stable")
    gs, gl = stamps_ns[order], logs_ns[order]
    j = np.searchsorted(gs, image_stamp_ns).clip(0, len(gs) - 1)
    j_prev = (j - 1).clip(0)
    best = np.where(np.abs(gs[j_prev] - image_stamp_ns) < np.abs(gs[j] - image_stamp_ns), j_prev, j)
    ok = np.abs(gs[best] - image_stamp_ns) <= int(round(tolerance_s * 1e9))
    return np.where(ok, gl[best], -1).astype(np.int64)


def _lidar_labels(bag: str, index: BagIndex, topic: str, tolerance_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(label log ns per frame, T_cam_lidar) of a LiDAR topic; BagError naming bag and topic when the
    topic is missing, not a PointCloud2, empty, or its frame does not reach the camera frame."""
    from depth_ros.bag.reader import BagReader
    from depth_ros.msgconv import stamp_to_ns

    with BagReader(bag) as reader:
        info = reader.topics.get(topic)
        if info is None:
            raise BagError(f"{bag}: label topic {topic} is not in the bag (lidar_topic; expected a sensor_msgs/msg/PointCloud2)")
        if info.msgtype != POINTCLOUD2_TYPE:
            raise BagError(f"{bag}: label topic {topic} is {info.msgtype}, expected {POINTCLOUD2_TYPE}")
        stamps, logs, frame = [], [], None
        for message in reader.messages([topic]):
            msg = reader.deserialize(message)
            stamps.append(stamp_to_ns(msg.header.stamp))
            logs.append(message.log_time_ns)
            frame = str(msg.header.frame_id) if frame is None else frame
        if frame is None:
            raise BagError(f"{bag}: label topic {topic} has no messages")
        try:
            T = reader.static_transforms().lookup(index.camera_frame, frame)
        except InputError as exc:
            raise BagError(f"{bag}: LiDAR {topic} (frame {frame!r}) has no /tf_static transform to the camera frame {index.camera_frame!r}: {exc}") from None
    matched = _match_stamps(np.asarray(stamps, np.int64), np.asarray(logs, np.int64), index.image_stamp_ns, tolerance_s)
    return matched, np.asarray(T, dtype=np.float64)


def check_label_sources(config: LabelledDataConfig) -> None:
    """Check every bag of every group for its label source before any training: one-line
    :class:`BagError` naming the bag and topic (missing topic, wrong type, no message matching an
    image, LiDAR frame not connected to the camera); FileNotFoundError for a missing bag or teacher."""
    for group in config.groups:
        for bag in group.bags:
            _open_bag_labels(config, group, bag)


def _open_bag_labels(config: LabelledDataConfig, group: LabelGroup, bag: str) -> _BagLabels:
    label = group.label
    if not Path(bag).exists():
        raise FileNotFoundError(f"group {group.name}: bag not found: {bag}")
    index = load_or_build_index(bag, config.index_options(label), config.cache_dir)
    reader = BagMessageReader(index.bag_path)
    if label.gt_topic is not None:
        if index.gt_depth_topic is None:
            raise BagError(f"{bag}: label topic {label.gt_topic} is not in the bag or not a {IMAGE_TYPE} (gt_topic; expected 32FC1 m or 16UC1 mm depth)")
        logs = index.gt_depth_log_ns.astype(np.int64)
        if not (logs >= 0).any():
            raise BagError(f"{bag}: no message on label topic {label.gt_topic} within {label.stamp_tolerance_s} s of an image stamp")
        return _BagLabels(index, reader, logs)
    if label.lidar_topic is not None:
        logs, T = _lidar_labels(bag, index, label.lidar_topic, label.stamp_tolerance_s)
        if not (logs >= 0).any():
            raise BagError(f"{bag}: no message on label topic {label.lidar_topic} within {label.stamp_tolerance_s} s of an image stamp (raise stamp_tolerance_s)")
        return _BagLabels(index, reader, logs, T_cam_lidar=T)
    from depth_ros_training.data.dataset import DataConfig
    from depth_ros_training.teacher import teacher_depth_for_bags

    teacher_config = DataConfig(
        bags=(bag,), height=config.height, width=config.width, crop=config.crop,
        image_topic=config.image_topic, camera_info_topic=config.camera_info_topic,
        gt_depth_topic=config.index_options(label).gt_depth_topic, cache_dir=config.cache_dir,
    )
    maps = teacher_depth_for_bags(teacher_config, label.teacher, backend=label.teacher_backend)[index.bag_path]
    return _BagLabels(index, reader, np.full(len(index), -1, np.int64), teacher=maps)


def _split_frames(stamps_ns: np.ndarray, segment_s: float, val_fraction: float) -> np.ndarray:
    """(N,) bool, frame is validation: every round(1/val_fraction)-th time segment, starting with
    the middle of the first period (the rule of the self-supervised dataset)."""
    if len(stamps_ns) == 0 or val_fraction <= 0:
        return np.zeros(len(stamps_ns), dtype=bool)
    seg = (stamps_ns - stamps_ns[0]) // int(segment_s * 1e9)
    period = max(2, int(round(1.0 / val_fraction)))
    return (seg % period) == (period // 2)


class LabelledBagDataset(Dataset):
    """Labelled samples of all groups (see the module docstring for a sample and its geometry).

    Args:
        config: the data configuration.
        split: "train" (random crop and flip when configured), "val" or "all".

    Raises:
        BagError: a bag lacks its label topic, or a group ends up with no labelled frame of the split.
        FileNotFoundError: a bag or teacher model is missing.
    """

    def __init__(self, config: LabelledDataConfig, split: Literal["train", "val", "all"] = "train") -> None:
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be train|val|all, got {split!r}")
        self.config = config
        self.split = split
        self.bags: list[list[_BagLabels]] = []
        self.refs: list[LabelledRef] = []
        self.group_of: list[int] = []
        for g, group in enumerate(config.groups):
            opened = [_open_bag_labels(config, group, bag) for bag in group.bags]
            self.bags.append(opened)
            count = 0
            for b, bag_labels in enumerate(opened):
                is_val = _split_frames(bag_labels.index.image_stamp_ns, config.segment_s, config.val_fraction)
                has_label = bag_labels.label_log_ns >= 0 if bag_labels.teacher is None else np.ones(len(bag_labels.index), bool)
                for frame in range(0, len(bag_labels.index), config.stride):
                    if not has_label[frame] or (split == "train" and is_val[frame]) or (split == "val" and not is_val[frame]):
                        continue
                    self.refs.append(LabelledRef(g, b, frame, int(bag_labels.label_log_ns[frame])))
                    count += 1
            if count == 0:
                raise BagError(f"group {group.name}: no labelled {split} frames in {list(group.bags)} ({group.label.describe()}; val_fraction {config.val_fraction}, segment_s {config.segment_s})")
        self.group_of = [r.group for r in self.refs]
        self._frames: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.refs)

    def indices_of_group(self, group: int) -> np.ndarray:
        """(n_g,) int64 sample indices of one group."""
        return np.flatnonzero(np.asarray(self.group_of) == group)

    # -- raw frames -----------------------------------------------------------------------------
    def _rgb(self, ref: LabelledRef) -> np.ndarray:
        """(H, W, 3) uint8 at recorded resolution after the fixed crop (bounded LRU cache)."""
        key = (ref.group, ref.bag, ref.frame)
        cached = self._frames.get(key)
        if cached is not None:
            self._frames.move_to_end(key)
            return cached
        from depth_ros_training.data.dataset import read_frame_rgb

        bag = self.bags[ref.group][ref.bag]
        rgb = read_frame_rgb(bag.reader, bag.index, ref.frame)
        if self.config.crop is not None:
            x0, y0, w, h = self.config.crop
            rgb = np.ascontiguousarray(rgb[y0 : y0 + h, x0 : x0 + w])
        if self.config.max_cached_frames > 0:
            self._frames[key] = rgb
            while len(self._frames) > self.config.max_cached_frames:
                self._frames.popitem(last=False)
        return rgb

    def _base_camera(self, ref: LabelledRef) -> CameraModel:
        camera = self.bags[ref.group][ref.bag].index.camera
        return camera.cropped(*self.config.crop) if self.config.crop is not None else camera

    def _dense_label(self, ref: LabelledRef, base: CameraModel) -> np.ndarray:
        """(H, W) float label in the base frame (after the fixed crop), NaN/0 invalid."""
        from depth_ros.msgconv import image_to_depth_m

        group = self.config.groups[ref.group]
        bag = self.bags[ref.group][ref.bag]
        if bag.teacher is not None:
            depth = np.asarray(bag.teacher[ref.frame][0], dtype=np.float32)  # already at the fixed crop
            if group.label.kind == "relative_inverse_depth":
                return np.divide(1.0, depth, out=np.zeros_like(depth), where=depth > 0)
            return depth
        topic = group.label.gt_topic
        try:
            depth = image_to_depth_m(bag.reader.read(topic, ref.label_log_ns))
        except InputError as exc:
            raise BagError(f"{bag.index.bag_path}: label topic {topic}: {exc}") from None
        cam = bag.index.raw_camera or bag.index.camera  # the recorded size (raw_camera when rectified)
        if depth.shape != (cam.height, cam.width):
            raise BagError(f"{bag.index.bag_path}: label topic {topic} is {depth.shape[1]}x{depth.shape[0]}, the camera {cam.width}x{cam.height}; a gt_topic must be registered to the camera")
        depth = bag.index.rectify_label(depth)  # as the (rectified) image sees it, nearest neighbour
        if self.config.crop is not None:
            x0, y0, w, h = self.config.crop
            depth = depth[y0 : y0 + h, x0 : x0 + w]
        return depth

    def _lidar_label(self, ref: LabelledRef, camera: CameraModel) -> np.ndarray:
        """(h, w) float32 sparse depth (m, NaN where no point) projected into ``camera``."""
        from depth_ros.msgconv import pointcloud2_to_xyz

        from depth_ros_training.eval.evaluate import project_points_to_depth

        group = self.config.groups[ref.group]
        bag = self.bags[ref.group][ref.bag]
        try:
            xyz = pointcloud2_to_xyz(bag.reader.read(group.label.lidar_topic, ref.label_log_ns)).astype(np.float64)
        except InputError as exc:
            raise BagError(f"{bag.index.bag_path}: label topic {group.label.lidar_topic}: {exc}") from None
        T = bag.T_cam_lidar
        return project_points_to_depth(xyz @ T[:3, :3].T + T[:3, 3], camera.K, camera.width, camera.height)

    # -- geometry ---------------------------------------------------------------------------------
    def _crop_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) as fractions of the base frame; random in training when configured."""
        if self.split != "train" or self.config.random_crop >= 1.0:
            return (0.0, 0.0, 1.0, 1.0)
        lo = self.config.random_crop
        fw, fh = torch.empty(2).uniform_(lo, 1.0).tolist()
        x0 = float(torch.rand(())) * (1.0 - fw)
        y0 = float(torch.rand(())) * (1.0 - fh)
        return (x0, y0, x0 + fw, y0 + fh)

    def __getitem__(self, item: int) -> dict[str, Any]:
        from depth_ros.core.preprocess import resize_rgb

        ref = self.refs[item]
        group = self.config.groups[ref.group]
        h, w = self.config.height, self.config.width
        rgb = self._rgb(ref)
        base = self._base_camera(ref)
        fx0, fy0, fx1, fy1 = self._crop_box(base.width, base.height)
        box = _pixel_box((fx0, fy0, fx1, fy1), base.width, base.height)
        camera = base.cropped(*box).resized(w, h)
        x0, y0, bw, bh = box
        image = resize_rgb(np.ascontiguousarray(rgb[y0 : y0 + bh, x0 : x0 + bw]), w, h)
        if group.label.lidar_topic is not None:
            label = self._lidar_label(ref, camera)
        else:
            dense = self._dense_label(ref, base)
            lbox = _pixel_box((fx0, fy0, fx1, fy1), dense.shape[1], dense.shape[0])
            label = resize_nearest(dense[lbox[1] : lbox[1] + lbox[3], lbox[0] : lbox[0] + lbox[2]], h, w)
        target = label_to_target(label, group.label.kind)
        sample: dict[str, Any] = {
            "image": torch.from_numpy(rgb_to_unit_chw(image)),
            "target": torch.from_numpy(target.inv_depth)[None],
            "valid": torch.from_numpy(target.valid)[None],
            "K": torch.from_numpy(camera.K.astype(np.float32)),
            "kind": torch.tensor(LABEL_KINDS.index(group.label.kind), dtype=torch.int64),
            "group": torch.tensor(ref.group, dtype=torch.int64),
            "exact": torch.tensor(group.exact),
            "hflip": torch.tensor(False),
        }
        if self.split == "train" and self.config.hflip and bool(torch.rand(()) < 0.5):
            sample = hflip_labelled(sample)
        return sample


def _pixel_box(fractions: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) integer pixel box of a fractional box in a width x height image (>= 1 px)."""
    fx0, fy0, fx1, fy1 = fractions
    x0, y0 = int(round(fx0 * width)), int(round(fy0 * height))
    x1, y1 = max(x0 + 1, int(round(fx1 * width))), max(y0 + 1, int(round(fy1 * height)))
    return x0, y0, min(x1, width) - x0, min(y1, height) - y0


def hflip_labelled(sample: dict[str, Any]) -> dict[str, Any]:
    """The left-right mirrored sample (image, target and mask flipped, ``cx -> (w - 1) - cx``);
    a new dict, the input's tensors are not modified."""
    out = dict(sample)
    for key in ("image", "target", "valid"):
        out[key] = sample[key].flip(-1)
    K = sample["K"].clone()
    K[0, 2] = (sample["image"].shape[-1] - 1) - K[0, 2]
    out["K"] = K
    out["hflip"] = torch.tensor(not bool(sample["hflip"]))
    return out

class LabelledDataModule(LightningDataModule):
    """Train/val :class:`LabelledBagDataset` with the mixing sampler for training.

    Args:
        data: the labelled data configuration.
        batch_size: samples per batch.
        num_workers: DataLoader worker processes.

    Training batches come from :class:`MixingBatchSampler` (``samples_per_epoch // batch_size``
    batches, the total of all groups when 0); validation goes through every validation sample
    once, in order, unmixed (each group's metrics are logged by name).
    """

    def __init__(self, data: LabelledDataConfig, batch_size: int = 4, num_workers: int = 0) -> None:
        super().__init__()
        from depth_ros_training.datamodule import check_loader_sizes

        check_loader_sizes(batch_size, num_workers)
        self.data_config = data
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_set: LabelledBagDataset | None = None
        self.val_set: LabelledBagDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = LabelledBagDataset(self.data_config, "train")
        if stage in (None, "fit", "validate") and self.val_set is None and self.data_config.val_fraction > 0:
            self.val_set = LabelledBagDataset(self.data_config, "val")

    def train_sampler(self) -> MixingBatchSampler:
        assert self.train_set is not None, "setup('fit') not called"
        total = self.data_config.samples_per_epoch or len(self.train_set)
        groups = [self.train_set.indices_of_group(g) for g in range(len(self.data_config.groups))]
        return MixingBatchSampler(groups, self.data_config.weights, self.batch_size, max(1, total // self.batch_size), seed=self.data_config.seed)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup('fit') not called"
        return DataLoader(self.train_set, batch_sampler=self.train_sampler(), num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers, persistent_workers=self.num_workers > 0)
