"""Unlabelled frames from bags, two augmented views per frame, for contrastive pretraining.

Any Image / CompressedImage topic of one or many rosbag2 files (MCAP, sqlite3 or a bag
directory); no camera_info, odometry or labels are needed. A bag is scanned once with
:class:`depth_ros.bag.reader.BagReader` (log times only, nothing decoded); a sample fetches its
one message by log time (:class:`~depth_ros_training.data.bag_index.BagMessageReader`, as the
depth training does) and decodes it with :mod:`depth_ros.msgconv`.

One sample:

* ``"query"``: (3, h, w) float32 RGB in [0, 1], a random resized crop (+ random horizontal flip)
  of the frame; photometric augmentation and normalisation happen on the module's device
  (:class:`~depth_ros_training.pretrain.module.PretrainModule`).
* ``"key"``: (3, h, w) float32 RGB in [0, 1], an independent crop and flip of the same frame
  (the module turns it into the gradient field, or augments it as RGB for the baseline).
* ``"index"``: int64 sample index.

The geometric augmentation is MoCo v2's ``RandomResizedCrop(scale=(0.2, 1))`` and
``RandomHorizontalFlip``, done by :mod:`kornia.augmentation` on the frame at recorded
resolution.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from depth_ros.bag.reader import COMPRESSED_IMAGE_TYPE, IMAGE_TYPE
from depth_ros.errors import BagError, DepthRosError

__all__ = ["FrameRef", "PretrainDataConfig", "PretrainDataModule", "PretrainFrames", "check_crop_ratio", "list_frames"]

log = logging.getLogger(__name__)

#: how each image message type is decoded
_KINDS = {IMAGE_TYPE: "raw", COMPRESSED_IMAGE_TYPE: "compressed"}


@dataclass(frozen=True)
class PretrainDataConfig:
    """Which frames, at what size.

    Args:
        bags: bag paths (.mcap / .db3 files or rosbag2 directories).
        image_topic: Image or CompressedImage topic, the same name in every bag; None picks each
            bag's only colour stream (depth/disparity topics and the ``/compressed`` twin of a
            raw topic are ignored).
        frame_stride: use every n-th frame (consecutive frames of a 30 Hz camera are near
            duplicates, which would sit in the queue as "negatives" of themselves).
        height, width: size of both views in pixels (multiples of 32, as the depth network's).
        crop_scale: range of the crop's area as a fraction of the frame (MoCo v2: 0.2..1).
        crop_ratio: range of the crop's aspect ratio (width / height) before the resize.
        hflip: mirror each view left-right with probability 0.5 (independently).
    """

    bags: tuple[str, ...] = ()
    image_topic: str | None = None
    frame_stride: int = 1
    height: int = 128
    width: int = 160
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 4.0 / 3.0)
    hflip: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "bags", tuple(str(b) for b in self.bags))
        object.__setattr__(self, "crop_scale", tuple(float(s) for s in self.crop_scale))
        object.__setattr__(self, "crop_ratio", tuple(float(r) for r in self.crop_ratio))
        if not isinstance(self.frame_stride, int) or self.frame_stride < 1:
            raise ValueError(f"frame_stride must be an integer >= 1, got {self.frame_stride!r}")
        if not (32 <= self.height <= 4096 and 32 <= self.width <= 4096) or self.height % 32 or self.width % 32:
            raise ValueError(f"height and width must be multiples of 32 in 32..4096 px, got {self.height}x{self.width}")
        lo, hi = self.crop_scale
        if len(self.crop_scale) != 2 or not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must be (min, max) with 0 < min <= max <= 1, got {self.crop_scale}")
        lo, hi = self.crop_ratio
        if len(self.crop_ratio) != 2 or not 0.0 < lo <= hi:
            raise ValueError(f"crop_ratio must be (min, max) with 0 < min <= max, got {self.crop_ratio}")


@dataclass(frozen=True)
class FrameRef:
    """A frame: bag path, topic, "raw" | "compressed", log time in ns."""

    bag: str
    topic: str
    kind: str
    log_ns: int


def list_frames(bag: str | Path, image_topic: str | None = None, frame_stride: int = 1) -> list[FrameRef]:
    """Every ``frame_stride``-th image of one bag, in log-time order (nothing decoded).

    Raises:
        BagError: unreadable bag, no such topic, a topic that is not an image, or no images.
    """
    from depth_ros.bag.reader import BagReader, select_image_topic

    path = Path(bag)
    with BagReader(path) as reader:
        topics = reader.topics
        # the package's one rule (depth, disparity and mask topics skipped; a raw image
        # preferred over its own transports), as fit, infer and eval choose
        topic = select_image_topic(topics, image_topic, source=str(path), option="data.data.image_topic")
        kind = _KINDS[topics[topic].msgtype]
        log_ns = [m.log_time_ns for m in reader.messages([topic])]
    if not log_ns:
        raise BagError(f"{path}: no images on {topic}; expected at least one {topics[topic].msgtype} message")
    return [FrameRef(str(path), topic, kind, int(t)) for t in log_ns[::frame_stride]]


class PretrainFrames(Dataset):
    """Frames of ``config.bags`` with two augmented views each (see the module docstring).

    Raises:
        ValueError: no bags given.
        BagError: a bag cannot be read, lacks the image topic, or has no images.
    """

    def __init__(self, config: PretrainDataConfig) -> None:
        if not config.bags:
            raise ValueError("bags is empty: give at least one bag")
        self.config = config
        self.frames: list[FrameRef] = []
        for bag in config.bags:
            self.frames.extend(list_frames(bag, config.image_topic, config.frame_stride))
        self._readers: dict[str, Any] = {}
        self._crop: Any = None
        log.info("pretraining on %d frames from %d bags", len(self.frames), len(config.bags))

    def __len__(self) -> int:
        return len(self.frames)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open their own readers
        state = dict(self.__dict__)
        state["_readers"] = {}
        state["_crop"] = None
        return state

    def load_rgb(self, item: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of frame ``item`` at recorded resolution."""
        from depth_ros.msgconv import compressed_to_rgb, image_to_rgb

        from depth_ros_training.data.bag_index import BagMessageReader

        ref = self.frames[item]
        reader = self._readers.get(ref.bag)
        if reader is None:
            reader = self._readers[ref.bag] = BagMessageReader(ref.bag)
        msg = reader.read(ref.topic, ref.log_ns)
        return compressed_to_rgb(msg) if ref.kind == "compressed" else image_to_rgb(msg)

    def _views(self, frame: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) frame -> (2, 3, h, w) two independent crops (+ flips)."""
        import kornia.augmentation as K

        if self._crop is None:
            c = self.config
            self._crop = K.AugmentationSequential(
                K.RandomResizedCrop((c.height, c.width), scale=c.crop_scale, ratio=c.crop_ratio, align_corners=False),
                K.RandomHorizontalFlip(p=0.5 if c.hflip else 0.0),
            )
        return self._crop(frame.expand(2, -1, -1, -1))

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        rgb = self.load_rgb(item)
        frame = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)  # (1, 3, H, W)
        views = self._views(frame).clamp_(0.0, 1.0)  # kornia draws each batch element's crop and flip independently
        return {"query": views[0].contiguous(), "key": views[1].contiguous(), "index": torch.tensor(item, dtype=torch.int64)}


def check_crop_ratio(config: PretrainDataConfig, frame_hw: tuple[int, int], source: str) -> str | None:
    """Warn (and return the message) when ``config.crop_ratio`` excludes the frames' aspect ratio.

    ``RandomResizedCrop`` draws crops whose width / height lies in ``crop_ratio``; on a frame of
    another shape only crops up to ``hi / aspect`` (or ``aspect / lo``) of its area fit, and the
    fallback keeps a strip of full height (or width) at a random place, so the two views of a wide
    frame often share little content. MoCo's (3/4, 4/3) suits 4:3 photographs; a 3:1 frame wants
    about (2.25, 4). None when the ratio fits.
    """
    h, w = frame_hw
    aspect = w / h
    lo, hi = config.crop_ratio
    if lo <= aspect <= hi:
        return None
    largest = hi / aspect if aspect > hi else aspect / lo
    message = (
        f"{source}: data.data.crop_ratio [{lo:.2f}, {hi:.2f}] excludes the frames' aspect ratio {aspect:.2f} ({w}x{h}): "
        f"no crop larger than {100 * largest:.0f} % of the frame fits, and the rest fall back to a full-{'height' if aspect > hi else 'width'} "
        f"strip, so the two views often share little; set crop_ratio around it, e.g. [{0.75 * aspect:.2f}, {4 * aspect / 3:.2f}]"
    )
    log.warning(message)
    return message


class PretrainDataModule(LightningDataModule):
    """Training frames for :class:`~depth_ros_training.pretrain.module.PretrainModule` (no
    validation split: the contrastive loss needs no held-out frames).

    Args:
        data: which frames, at what size (:class:`PretrainDataConfig`).
        batch_size: frames per batch (per process under DDP); MoCo v2 uses 256 over 8 GPUs.
        num_workers: DataLoader worker processes (each opens the bags itself).

    Raises (in ``setup``):
        BagError: see :class:`PretrainFrames`; also fewer frames than one batch.
    """

    def __init__(self, data: PretrainDataConfig, batch_size: int = 32, num_workers: int = 0) -> None:
        super().__init__()
        from depth_ros_training.datamodule import check_loader_sizes

        check_loader_sizes(batch_size, num_workers)
        self.data_config = data
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_set: PretrainFrames | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            frames = PretrainFrames(self.data_config)
            if len(frames) < self.batch_size:
                raise BagError(
                    f"{list(self.data_config.bags)}: {len(frames)} frames (frame_stride {self.data_config.frame_stride}), "
                    f"expected at least one batch of {self.batch_size}"
                )
            try:
                first = frames.load_rgb(0)
            except (DepthRosError, ValueError) as exc:  # a bad first frame: no check, the training decides
                log.debug("crop_ratio not checked: %s", exc)
            else:
                check_crop_ratio(self.data_config, first.shape[:2], frames.frames[0].bag)
            self.train_set = frames

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise RuntimeError("setup() was not called")
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=True,  # equal batches: the queue and split BatchNorm need them
        )
