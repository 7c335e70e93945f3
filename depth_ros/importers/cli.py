"""``depth-ros import {tum,euroc,kitti,7scenes,folder} SRC -o OUT.mcap [...]``.

Reads a dataset folder and writes one rosbag2 file with the package's topics (see
:mod:`depth_ros.importers.bagout`). Every problem with the dataset's files is one line naming the
file and what was expected, exit code 1; nothing is left under the output name then.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

from depth_ros.errors import DepthRosError

__all__ = ["add_arguments", "run"]

_COMMON_EPILOG = """\
Output topics: /camera/image_raw (rgb8 / mono8; --compressed: /camera/image_raw/compressed with the
source JPEG/PNG bytes), /camera/camera_info (K, D and distortion model as the dataset declares them),
/camera/depth/ground_truth (32FC1 metres, NaN invalid, stamped as its image), /odom (ground-truth
poses, odom -> base_link) and /tf_static (base_link -> camera_optical_frame). Files over
--max-file-mb and images over 4096 px a side are refused.
"""

_LAYOUTS: dict[str, str] = {
    "tum": """TUM RGB-D sequence folder:
  SRC/rgb.txt, SRC/depth.txt, SRC/groundtruth.txt   ('timestamp filename' / 'timestamp tx ty tz qx qy qz qw')
  SRC/rgb/*.png, SRC/depth/*.png                   (depth: 16-bit, 5000 per metre, 0 invalid)
Colour and depth are associated by nearest stamp within --tolerance. The camera (fr1, fr2, fr3: the
intrinsics and plumb_bob distortion published by TUM) is taken from the folder name
rgbd_dataset_freiburgN_* or --camera.""",
    "euroc": """EuRoC / ASL folder (SRC is the folder holding mav0/, or mav0/ itself):
  mav0/cam0/data.csv                     ('#timestamp [ns],filename')
  mav0/cam0/data/*.png                   (mono8)
  mav0/cam0/sensor.yaml                  (resolution, intrinsics [fu, fv, cu, cv], distortion_model
                                          radial-tangential or equidistant, distortion_coefficients, T_BS)
  mav0/state_groundtruth_estimate0/data.csv  (timestamp, p_RS_R xyz, q_RS wxyz, ...; optional)
Odometry is the ground-truth body (IMU) pose; /tf_static holds T_BS of the camera.""",
    "kitti": """KITTI raw drive folder (SRC = .../2011_09_26/2011_09_26_drive_0001_sync):
  SRC/image_02/data/*.png, SRC/image_02/timestamps.txt
  SRC/velodyne_points/data/*.bin         (float32 x, y, z, reflectance; projected to sparse depth)
  SRC/oxts/data/*.txt                    (optional: poses from lat, lon, alt, roll, pitch, yaw)
  calib_cam_to_cam.txt (P_rect_02, R_rect_00), calib_velo_to_cam.txt, calib_imu_to_velo.txt
                                         (in SRC or its parent, or --calib-dir)
Images are the rectified ones (D = 0, K from P_rect_02).""",
    "7scenes": """Microsoft 7-Scenes sequence (SRC = a seq-XX folder, or a scene folder with --sequence):
  SRC/frame-XXXXXX.color.png, .depth.png (16-bit mm, 65535 invalid), .pose.txt (4x4 camera-to-world)
Intrinsics: the published focal length 585 px at 640x480, principal point at the centre. The depth
is NOT registered to colour (another camera, uncalibrated offset): use it for coarse evaluation only.
No stamps are recorded: frames are --rate-hz apart.""",
    "folder": """A plain folder of images (SRC/*.png|jpg, sorted by name) and an intrinsics file:
  --intrinsics FILE  YAML or JSON: ROS camera_calibration YAML (image_width, image_height,
                     camera_matrix, distortion_model, distortion_coefficients), or
                     {width, height, fx, fy, cx, cy[, distortion_model, D]}
  --poses FILE       optional, 'timestamp tx ty tz qx qy qz qw' per line (camera optical frame in
                     the world, seconds as the image stamps)
  --depth-dir DIR    optional 16-bit PNGs with the images' file stems, --depth-scale units per metre
Image stamps: the file stems when all are numbers (seconds; integers of 16+ digits: nanoseconds),
else --rate-hz apart.""",
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", type=Path, metavar="SRC", help="the dataset folder")
    p.add_argument("-o", "--output", required=True, type=Path, help="output bag, .mcap or .db3")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="at most N frames (after --stride)")
    p.add_argument("--stride", type=int, default=1, metavar="K", help="keep every K-th frame [1]")
    p.add_argument("--compressed", action="store_true", help="write CompressedImage (the source file's bytes) instead of Image")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--max-file-mb", type=float, default=64.0, metavar="MB", help="largest image / depth / LiDAR file read [64]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="debug logging, and the traceback of an error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One sub-command per layout, each with the common options and its own."""
    from depth_ros.importers.tum import TUM_CAMERAS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _COMMON_EPILOG
    sub = parser.add_subparsers(dest="layout", metavar="LAYOUT", required=True)
    ps = {}
    for name, layout in _LAYOUTS.items():
        ps[name] = sub.add_parser(name, help=layout.splitlines()[0].rstrip(":"), description=layout,
                                  epilog=_COMMON_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(ps[name])
    ps["tum"].add_argument("--camera", choices=sorted(TUM_CAMERAS), help="TUM camera (default: from the folder name)")
    ps["tum"].add_argument("--tolerance", type=float, default=0.02, metavar="S", help="colour / depth association tolerance, seconds [0.02]")
    ps["tum"].add_argument("--depth-correction", action="store_true", help="apply TUM's published depth correction factor (fr1 1.035, fr2 1.031)")
    ps["euroc"].add_argument("--camera", default="cam0", help="camera folder under mav0 [cam0]")
    ps["kitti"].add_argument("--camera", default="image_02", help="camera folder [image_02]")
    ps["kitti"].add_argument("--calib-dir", type=Path, default=None, help="folder of the calib_*.txt files (default: SRC or its parent)")
    ps["kitti"].add_argument("--no-velodyne", action="store_true", help="no sparse depth from velodyne_points")
    ps["7scenes"].add_argument("--sequence", default=None, help="seq-XX folder when SRC is a scene folder")
    ps["7scenes"].add_argument("--rate-hz", type=float, default=30.0, help="frame rate for the stamps [30]")
    ps["folder"].add_argument("--intrinsics", type=Path, required=True, help="camera intrinsics YAML / JSON")
    ps["folder"].add_argument("--poses", type=Path, default=None, help="camera poses, TUM trajectory format")
    ps["folder"].add_argument("--depth-dir", type=Path, default=None, help="folder of 16-bit depth PNGs")
    ps["folder"].add_argument("--depth-scale", type=float, default=1000.0, help="depth PNG units per metre [1000]")
    ps["folder"].add_argument("--rate-hz", type=float, default=10.0, help="frame rate when the file names are not stamps [10]")


def _loader(args: argparse.Namespace) -> Callable[[], Any]:
    """The layout's load call (imports kept lazy)."""
    if args.layout == "tum":
        from depth_ros.importers.tum import load_tum

        return lambda: load_tum(args.src, camera=args.camera, tolerance_s=args.tolerance, depth_correction=args.depth_correction)
    if args.layout == "euroc":
        from depth_ros.importers.euroc import load_euroc

        return lambda: load_euroc(args.src, camera=args.camera)
    if args.layout == "kitti":
        from depth_ros.importers.kitti import load_kitti

        return lambda: load_kitti(args.src, camera=args.camera, calib_dir=args.calib_dir, velodyne=not args.no_velodyne)
    if args.layout == "7scenes":
        from depth_ros.importers.sevenscenes import load_7scenes

        return lambda: load_7scenes(args.src, sequence=args.sequence, rate_hz=args.rate_hz)
    from depth_ros.importers.folder import load_folder

    return lambda: load_folder(args.src, intrinsics=args.intrinsics, poses=args.poses, depth_dir=args.depth_dir,
                               depth_units_per_m=args.depth_scale, rate_hz=args.rate_hz)


def run(args: argparse.Namespace) -> int:
    """Import; one summary line (and the notes) on stdout, progress on stderr. Returns 0."""
    from depth_ros.importers.bagout import selected_frames, write_dataset
    from depth_ros.importers.common import ImportOptions

    try:
        options = ImportOptions(max_frames=args.max_frames, stride=args.stride, compressed=args.compressed,
                                overwrite=args.overwrite, max_file_bytes=int(args.max_file_mb * (1 << 20)))
    except ValueError as exc:
        raise DepthRosError(f"bad option: {exc}") from None
    t0 = time.perf_counter()
    dataset = _loader(args)()
    bar: Any = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(selected_frames(dataset.frames, options)), unit="frame", desc=f"import {args.layout}",
                   file=sys.stderr, dynamic_ncols=True, leave=False)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    try:
        summary = write_dataset(dataset, args.output, options, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    topics = ", ".join(f"{t} ({n})" for t, n in summary.message_counts.items())
    print(f"import {args.layout}: {summary.frames} frames ({summary.depth_frames} with depth, {summary.poses} poses), "
          f"{summary.size_bytes / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s, topics: {topics} -> {summary.path}")
    for note in summary.notes:
        print(f"  note: {note}")
    return 0
