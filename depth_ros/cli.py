"""The ``depth-ros`` command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported lazily and keep heavy imports (torch, rclpy,
onnxruntime) inside ``run`` so that ``depth-ros --help`` is instant.

Exit codes: 0 done; 1 an expected error (a :class:`DepthRosError`, or the operating system
refusing a file: missing, no permission, disk full), printed as one line
``depth-ros CMD: error: ...`` naming the file, topic or parameter (``--verbose`` adds the
traceback); 2 a malformed command line (argparse); 130 interrupted. Any other exception is a
bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
import traceback
from typing import Any, Iterator, Sequence

from depth_ros.errors import DepthRosError, one_line
from depth_ros.logsetup import configure_logging

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("depth_ros.demo", "the whole story on a synthetic scene: synth, train, export, infer, metrics"),
    "synth": ("depth_ros.synthetic.cli", "render a synthetic scene seen by a moving camera into a rosbag2"),
    "infer": ("depth_ros.bag.infer_cli", "bag-to-bag inference: depth, camera_info, clouds into an MCAP"),
    "run": ("depth_ros.ros.runner", "run the depth (and pose) nodes in one process"),
    "play": ("depth_ros.ros.play", "republish a bag's topics with their recorded timing"),
    "import": ("depth_ros.importers.cli", "dataset folder (TUM RGB-D, EuRoC, KITTI raw, 7-Scenes, images + intrinsics) -> rosbag2"),
}


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so writers remove their partial output (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depth-ros", description="Monocular metric depth for ROS 2.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # subcommand not part of this install
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        # also accepted after the subcommand (``depth-ros infer ... -v``)
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging, and the traceback of an error")
        p.set_defaults(_run=module.run)
    return parser


def split_ros_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` split into the command's own arguments and the ROS ones, as rcl reads them:
    each ``--ros-args`` opens a ROS block that runs to a lone ``--`` or the end.

    Returns:
        (own arguments, ROS arguments with their ``--ros-args`` markers; [] when none).
    """
    own: list[str] = []
    ros: list[str] = []
    in_ros = False
    for token in argv:
        if token == "--ros-args":
            in_ros = True
            ros.append(token)
        elif in_ros and token == "--":
            in_ros = False
        elif in_ros:
            ros.append(token)
        else:
            own.append(token)
    return own, ros


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line; ``--ros-args ...`` may stand anywhere, as ROS tools take it,
    and is kept as ``args.ros_argv`` (program name first; None without one) for ``run`` and
    ``play`` to hand to rclpy."""
    own, ros = split_ros_args(argv)
    args = build_parser().parse_args(own)
    args.ros_argv = [f"depth-ros-{args.command}", *ros] if ros else None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command_line(sys.argv[1:] if argv is None else list(argv))
    configure_logging(args.verbose)
    try:
        with sigterm_as_interrupt():
            return int(args._run(args) or 0)
    except (DepthRosError, OSError) as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"depth-ros {args.command}: error: {one_line(_describe(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"depth-ros {args.command}: interrupted", file=sys.stderr)
        return 130


def _describe(exc: BaseException) -> str:
    """The message of an expected error; an OSError without one names its file and reason."""
    if isinstance(exc, OSError) and not isinstance(exc, DepthRosError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
