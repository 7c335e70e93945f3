"""The training camera a labelled task's export records in its ModelSpec: read back from the fit
run's saved ``config.yaml`` and its bags (MiDaS, Depth Pro, ZoeDepth exports)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["labelled_run_camera_fields"]

log = logging.getLogger(__name__)


def labelled_run_camera_fields(checkpoint: str | Path, width: int, height: int, focal: bool = True) -> dict[str, Any]:
    """The ModelSpec's training camera fields of a labelled task's fit run: the run's saved
    ``config.yaml`` (beside the checkpoint's directory) names the bags; their indexes give the
    cameras. The image size is recorded when every bag has the same one (the runtime then crops or
    pads another camera's image to the trained aspect); the focal lengths at the network input too
    when ``focal`` and every bag has the same K (not for Depth Pro's canonical output, trained on
    many cameras on purpose). Empty, logged, when the run's data cannot be read.
    """
    import numpy as np
    import yaml

    from depth_ros_training.data.bag_index import load_or_build_index
    from depth_ros_training.data.labelled import LabelledDataConfig

    path = Path(checkpoint).resolve().parent.parent / "config.yaml"
    try:
        data = LabelledDataConfig.from_dict(dict((yaml.safe_load(path.read_text()) or {})["data"]["data"]))
        cameras = []
        for group in data.groups:
            for bag in group.bags:
                camera = load_or_build_index(bag, data.index_options(group.label), data.cache_dir).camera
                cameras.append(camera.cropped(*data.crop) if data.crop is not None else camera)
    except Exception as exc:  # noqa: BLE001 - any reason the old run's data cannot be opened: the camera stays unknown
        log.warning("%s: the training image size could not be read from the fit run's data (%s: %s); the model spec records none",
                    path, type(exc).__name__, " ".join(str(exc).split())[:200])
        return {}
    sizes = {c.size for c in cameras}
    if len(sizes) != 1:
        log.warning("the training bags' image sizes differ (%s): no training image size recorded in the model spec",
                    ", ".join(sorted(f"{w}x{h}" for w, h in sizes)))
        return {}
    first = cameras[0]
    fields: dict[str, Any] = {"train_image_width_px": first.width, "train_image_height_px": first.height}
    if focal and all(np.allclose(c.K, first.K, rtol=1e-6) for c in cameras[1:]):
        net = first.resized(width, height)
        fields |= {"train_fx_px": net.fx, "train_fy_px": net.fy}
    return fields
