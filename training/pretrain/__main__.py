"""``python -m depth_ros_training.pretrain``: the same as ``depth-ros-train pretrain`` (its
one-line errors, ``-v`` and exit codes)."""
from __future__ import annotations

import sys

from depth_ros_training.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
