"""``depth-ros synth -o OUT.mcap [--config synth.yaml] [--<field> VALUE ...]``.

One flag per :class:`SynthConfig` field, generated from the dataclass (``--width 416``,
``--moving-objects 2``, ``--jpeg true``); flags override the YAML file, which overrides the
defaults. Values are parsed and validated in :func:`run`, so a bad value is a one-line error
with exit code 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from depth_ros.synthetic.config import SynthConfig

__all__ = ["add_arguments", "run"]

_EPILOG = """\
examples:
  depth-ros synth -o corridor.mcap
  depth-ros synth -o train.mcap --width 416 --height 128 --frames 2000 --seed 3
  depth-ros synth -o room.db3 --scene room --trajectory orbit --moving-objects 3 --jpeg true
  depth-ros synth -o custom.mcap --config synth.yaml --frames 50   # flags override the file
  for s in 0 1 2 3; do depth-ros synth -o fov$s.mcap --seed $s --hfov-range-deg 50,110; done
  depth-ros synth -o rel.mcap --relative-label true   # + /camera/depth/relative_inverse

The YAML file holds SynthConfig fields (the flag names above with underscores), e.g.
  width: 640
  height: 480
  fx_px: 371.2
  scene: corridor
  moving_objects: 2
Unknown keys are errors. Topics: /camera/image_raw, /camera/image_raw/compressed (--jpeg),
/camera/camera_info, /camera/depth/ground_truth (32FC1 m), /camera/depth/relative_inverse (32FC1
scale / depth + shift, per-bag scale and shift from the seed; --relative-label true), /camera/object_mask
(16UC1 box instance ids, 0 = room; on by default, --object-mask false drops it), /odom, /lidar/points,
/tf_static.
"""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``-o``, ``--config``, ``--overwrite`` and one ``--<field>`` per SynthConfig field."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="output bag: ONE storage file, .mcap (MCAP) or .db3 (sqlite3); without a suffix the one of --storage",
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML file of SynthConfig fields")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    group = parser.add_argument_group("scene (SynthConfig fields; default in brackets)")
    for f in dataclasses.fields(SynthConfig):
        default = f.default
        group.add_argument(
            _flag(f.name),
            dest=f"cfg_{f.name}",
            metavar=f.name.upper(),
            default=None,
            help=f"{f.metadata.get('help', '')} [{default}]",
        )



def run(args: argparse.Namespace) -> int:
    """Render and write the bag; print one summary line to stdout (progress on stderr). Returns 0."""
    from depth_ros.synthetic.bagio import write_bag_summary
    from depth_ros.synthetic.config import load_config

    overrides = {
        f.name: getattr(args, f"cfg_{f.name}")
        for f in dataclasses.fields(SynthConfig)
        if getattr(args, f"cfg_{f.name}", None) is not None
    }
    config = load_config(args.config, overrides)
    bar: Any = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=config.frames, unit="frame", desc="synth", file=sys.stderr, dynamic_ncols=True, leave=False)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    t0 = time.perf_counter()
    try:
        summary = write_bag_summary(config, args.output, overwrite=args.overwrite, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    topics = ", ".join(f"{topic} ({count})" for topic, count in summary.message_counts.items())
    print(
        f"synth: {summary.frames} frames {config.width}x{config.height} @ {config.rate_hz:g} Hz, "
        f"{summary.size_bytes / 1e6:.1f} MB in {elapsed:.1f} s, topics: {topics} -> {summary.path}"
    )
    return 0
