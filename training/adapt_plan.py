"""The checks and the plan of ``depth-ros-train adapt`` (its steps 1-3: check every bag, size
the network input to the camera, hold out the end of each bag), before anything is trained.

The sizing helpers are pure (camera and network sizes in pixels, rates in Hz, stamps in ns); the
rest reads the bags and raises one line naming the bag and topic.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from depth_ros.errors import BagError, InputError

from depth_ros_training.recipes import QUICK_INPUT_PIXELS, QUICK_RATE_HZ, QuickRecipe

__all__ = [
    "AdaptPlan", "centre_crop", "check_and_plan", "check_teacher", "holdout_cut_ns", "network_input_size", "split_bag",
    "squash_warning", "stride_for_rate",
]

log = logging.getLogger(__name__)

TF_STATIC = "/tf_static"


# -- pure helpers ------------------------------------------------------------------------------
def network_input_size(camera_width: int, camera_height: int, pixels: int = QUICK_INPUT_PIXELS, multiple: int = 32) -> tuple[int, int]:
    """(height, width) of a network input whose aspect is closest to the camera's, each a
    multiple of ``multiple`` and about ``pixels`` pixels in all.

    Among the sizes whose area is within 25 % of ``pixels`` (a wider window when the camera's
    aspect leaves none), the one with the smallest |log(aspect / camera aspect)| wins, ties going
    to the area closest to ``pixels``.

    Args:
        camera_width, camera_height: recorded image size (pixels).
        pixels: target area of the network input.
        multiple: the encoder's stride.

    Raises:
        InputError: a non-positive size, or ``pixels`` below one ``multiple`` x ``multiple`` cell.
    """
    if camera_width < 1 or camera_height < 1 or pixels < multiple * multiple:
        raise InputError(f"need a positive camera size and pixels >= {multiple * multiple}, got {camera_width}x{camera_height}, {pixels}")
    aspect = camera_width / camera_height
    window = 1.25
    while True:
        top = int(math.sqrt(window * pixels * max(aspect, 1 / aspect))) // multiple + 1
        best: tuple[float, float, int, int] | None = None
        for h in range(multiple, multiple * top + 1, multiple):
            for w in range(multiple, multiple * top + 1, multiple):
                if not pixels / window <= h * w <= pixels * window:
                    continue
                key = (round(abs(math.log((w / h) / aspect)), 9), abs(math.log(h * w / pixels)), h, w)
                if best is None or key < best:
                    best = key
        if best is not None:
            return best[2], best[3]
        window *= 2


def squash_warning(camera_width: int, camera_height: int, net_height: int, net_width: int, crop: Sequence[int] | None = None, tolerance: float = 0.1) -> str | None:
    """A one-line warning when the network input's aspect differs from the (cropped) camera's by
    more than ``tolerance`` (relative): training then squashes the images, and the size that
    keeps the camera's aspect (:func:`network_input_size` at the same pixel count); else None."""
    w, h = (crop[2], crop[3]) if crop is not None else (camera_width, camera_height)
    factor = (w / h) / (net_width / net_height)
    if abs(math.log(factor)) <= math.log1p(tolerance):
        return None
    keep_h, keep_w = network_input_size(w, h, pixels=net_height * net_width)
    direction = "horizontally" if factor < 1 else "vertically"
    return (f"the network input {net_width}x{net_height} (aspect {net_width / net_height:.2f}) stretches the camera's {w}x{h} images "
            f"(aspect {w / h:.2f}) {max(factor, 1 / factor):.2f}x {direction}; {keep_w}x{keep_h} keeps their aspect "
            f"(--data.data.height {keep_h} --data.data.width {keep_w}, or depth-ros-train adapt)")


def centre_crop(camera_width: int, camera_height: int, net_width: int, net_height: int) -> tuple[int, int, int, int] | None:
    """The largest centred (x0, y0, width, height) crop of the camera with the network's aspect
    (recorded pixels), or None when the camera already has it (to a pixel)."""
    target = net_width / net_height
    if camera_width / camera_height > target:
        w, h = int(round(camera_height * target)), camera_height
    else:
        w, h = camera_width, int(round(camera_width / target))
    if w >= camera_width and h >= camera_height:
        return None
    return (camera_width - w) // 2, (camera_height - h) // 2, w, h


def stride_for_rate(rate_hz: float, recipe: QuickRecipe) -> int:
    """The frame stride that puts source frames as far apart in time as the recipe's
    ``stride`` does at :data:`~depth_ros_training.recipes.QUICK_RATE_HZ` (0.2 s), >= 1."""
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        return recipe.stride
    return max(1, int(round(recipe.stride * rate_hz / QUICK_RATE_HZ)))


def holdout_cut_ns(image_stamp_ns: Sequence[int], holdout: float) -> int:
    """The log-time at which the held-out segment starts: ``holdout`` of the span between the
    first and the last image before the end (``image_stamp_ns`` increasing)."""
    first, last = int(image_stamp_ns[0]), int(image_stamp_ns[-1])
    return first + int(round((1.0 - holdout) * (last - first)))


# -- bags --------------------------------------------------------------------------------------
def split_bag(bag: str | Path, cut_log_ns: int, train_path: Path, heldout_path: Path) -> tuple[Path, Path]:
    """Copy a bag into two MCAPs at a log time: messages before ``cut_log_ns`` into
    ``train_path``, the others into ``heldout_path``; ``/tf_static`` and topics with one message
    (a latched camera_info) into both. Messages are copied byte for byte with the bag's own
    type definitions.

    Raises:
        BagError: unreadable input, unwritable output.
    """
    from depth_ros.bag.reader import BagReader
    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter

    with BagReader(bag) as reader:
        topics = reader.topics
        both = {t for t, info in topics.items() if t == TF_STATIC or info.count <= 1}
        with BagWriter(train_path, typestore=output_typestore(), overwrite=True) as train, \
                BagWriter(heldout_path, typestore=output_typestore(), overwrite=True) as heldout:
            for writer in (train, heldout):
                for topic, info in topics.items():
                    writer.add_topic(topic, info.msgtype, typestore=reader.typestore, offered_qos_profiles=reader.offered_qos_yaml(topic))
            for message in reader.messages(list(topics)):
                if message.topic in both:
                    targets: tuple[Any, ...] = (train, heldout)
                else:
                    targets = (train,) if message.log_time_ns < cut_log_ns else (heldout,)
                for writer in targets:
                    writer.write_raw(message.topic, message.data, message.log_time_ns)
    return train_path, heldout_path


def _bag_topics(bag: str) -> dict[str, Any]:
    from depth_ros.bag.reader import BagReader

    with BagReader(bag) as reader:
        return reader.topics


def _truth_topic(bags: Sequence[str], wanted: str | None, image_topic: str) -> str | None:
    """The truth topic every bag carries (``wanted``, or the only depth image / LiDAR cloud), or
    None when ``wanted`` is None and a bag has none.

    Raises:
        BagError: ``wanted`` is missing from a bag, or ambiguous automatic choice.
    """
    from depth_ros_training.eval.evaluate import select_truth_topic

    chosen = None
    for bag in bags:
        topics = _bag_topics(bag)
        if wanted is None and not any(t != image_topic and _could_be_truth(info) for t, info in topics.items()):
            log.info("%s: no depth image or LiDAR topic: the held-out segment is not evaluated", bag)
            return None
        topic, _ = select_truth_topic(topics, wanted, bag, exclude=(image_topic,))
        if chosen is not None and topic != chosen:
            raise BagError(f"{bag}: truth topic {topic}, but {chosen} in the other bags; name one with --truth-topic")
        chosen = topic
    return chosen


def _could_be_truth(info: Any) -> bool:
    from depth_ros.bag.reader import IMAGE_TYPE, POINTCLOUD2_TYPE, looks_like_depth

    return info.count > 0 and (info.msgtype == POINTCLOUD2_TYPE or (info.msgtype == IMAGE_TYPE and looks_like_depth(info.name)))


@dataclass
class AdaptPlan:
    """What the checks found: the camera, the input size, the stride, the truth topic."""

    camera_width: int
    camera_height: int
    rate_hz: float
    image_topic: str
    camera_info_topic: str
    compressed: bool
    height: int
    width: int
    crop: tuple[int, int, int, int] | None
    stride: int
    truth_topic: str | None
    cuts_ns: list[int]


def check_and_plan(config: Any, cache_dir: Path) -> AdaptPlan:
    """``config``: a :class:`~depth_ros_training.adapt.AdaptConfig` (not imported here: adapt imports this module).

    Every bag checked as ``fit`` checks it, and the run planned from the first bag's camera.

    Raises:
        BagError / InputError: one line naming the bag and topic.
    """
    from depth_ros.bag.reader import select_camera_topics

    from depth_ros_training.data.bag_index import IndexOptions, load_or_build_index
    from depth_ros_training.data.dataset import BagSequenceDataset
    from depth_ros_training.recipes import quick_data_config

    for bag in config.bags:
        if not Path(bag).exists():
            raise BagError(f"bag not found: {bag}")
    options = IndexOptions(image_topic=config.image_topic, camera_info_topic=config.camera_info_topic, odom_topic=config.odom_topic)
    indexes = [load_or_build_index(bag, options, cache_dir) for bag in config.bags]
    first = indexes[0]
    cam = first.camera
    for bag, index in zip(config.bags, indexes):
        if (index.camera.width, index.camera.height) != (cam.width, cam.height):
            raise InputError(f"{bag}: camera {index.camera.width}x{index.camera.height} on {index.image_topic}, but {cam.width}x{cam.height} in {config.bags[0]}; adapt one camera at a time")
        if len(index) < 2:
            raise BagError(f"{bag}: {len(index)} images on {index.image_topic}; a training bag needs a sequence")
    stamps = first.image_stamp_ns
    rate_hz = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) * 1e-9) if stamps[-1] > stamps[0] else float("nan")
    height, width = config.size or network_input_size(cam.width, cam.height)
    crop = centre_crop(cam.width, cam.height, width, height)
    stride = stride_for_rate(rate_hz, config.recipe)
    recipe = dataclasses.replace(config.recipe, stride=stride)
    data = quick_data_config(recipe, config.bags, height, width, crop=crop, cache_dir=str(cache_dir), image_topic=config.image_topic,
                             camera_info_topic=config.camera_info_topic, odom_topic=config.odom_topic)
    BagSequenceDataset(data, "all")  # camera_info, frame count, odometry and its /tf_static link: fit's checks
    truth = _truth_topic(config.bags, config.truth_topic, first.image_topic)
    image_topic = first.image_topic
    _, info_topic = select_camera_topics(_bag_topics(config.bags[0]), image_topic, config.camera_info_topic, source=config.bags[0])
    compressed = first.image_kind == "compressed"
    return AdaptPlan(
        camera_width=cam.width, camera_height=cam.height, rate_hz=rate_hz, image_topic=image_topic,
        camera_info_topic=info_topic, compressed=compressed, height=height, width=width, crop=crop,
        stride=stride, truth_topic=truth, cuts_ns=[_cut_log_ns(index, config.holdout) for index in indexes],
    )


def _cut_log_ns(index: Any, holdout: float) -> int:
    """The log time of the first held-out image of a bag (by header stamp)."""
    import numpy as np

    cut = holdout_cut_ns(index.image_stamp_ns, holdout)
    k = int(np.searchsorted(index.image_stamp_ns, cut))
    k = min(max(k, 1), len(index) - 1)  # at least one image on each side
    return int(index.image_log_ns[k])


def check_teacher(path: str) -> None:
    """The teacher is a depth model with a contract (embedded or a YAML sidecar).

    Raises:
        InputError / ModelSpecError: no such file, no contract, not a depth model.
    """
    from depth_ros.inference.spec import load_model_spec

    if not Path(path).is_file():
        raise InputError(f"--teacher {path}: no such file")
    spec = load_model_spec(path)
    if not spec.is_depth:
        raise InputError(f"--teacher {path} is a {spec.output_kind} model, not a depth model")
