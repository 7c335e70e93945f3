"""The renderer's distorted cameras (SynthConfig.distortion_model): every pixel is rendered along
the exact ray of its undistorted position, so rectifying a distorted render gives back the
pinhole render of the same scene (depth_ros/core/distortion.py is tested against it)."""
from __future__ import annotations

import numpy as np
import pytest

from depth_ros.core.distortion import Rectifier, undistort_pixels
from depth_ros.synthetic.config import SynthConfig
from depth_ros.synthetic.render import Renderer

BASE = dict(width=160, height=120, frames=3, texture_size_px=64, lidar_beams=0, seed=4)
MODELS = {"plumb_bob": "-0.3,0.08,0.001,-0.0005,0", "equidistant": "0.05,-0.01,0.003,-0.001"}
INNER = (slice(15, 105), slice(20, 140))  # where the rectified image has a source pixel


@pytest.fixture(scope="module")
def pinhole():
    return Renderer(SynthConfig(**BASE)).render(1)


@pytest.mark.parametrize("model", list(MODELS))
def test_rectified_render_is_the_pinhole_render(model, pinhole):
    renderer = Renderer(SynthConfig(**BASE, distortion_model=model, distortion_coeffs=MODELS[model]))
    cam = renderer.camera
    assert cam.distortion_model == model and cam.D.tolist() == [float(x) for x in MODELS[model].split(",")]
    frame = renderer.render(1)
    rect = Rectifier(cam)
    gt = pinhole.depth_m[INNER]
    rel = np.abs(rect.rectify_depth(frame.depth_m)[INNER] - gt) / gt
    raw = np.abs(frame.depth_m[INNER] - gt) / gt
    # measured: median 0.5 % rectified (nearest-pixel sampling on sloped walls) vs 4.5-5 % raw
    assert np.nanmedian(rel) < 0.01 and np.nanmedian(raw) > 5 * np.nanmedian(rel)
    assert np.mean(rel < 0.02) > 0.9 and np.mean(raw < 0.02) < 0.5
    img_err = np.abs(rect.rectify_image(frame.rgb)[INNER].astype(float) - pinhole.rgb[INNER]).mean()
    raw_err = np.abs(frame.rgb[INNER].astype(float) - pinhole.rgb[INNER]).mean()
    assert img_err < 0.3 * raw_err, (img_err, raw_err)  # measured 2.7 vs 14 grey levels


def test_the_centre_ray_is_untouched_and_corners_move(pinhole):
    """Barrel distortion keeps the principal point and pulls the corners' content inwards."""
    renderer = Renderer(SynthConfig(**BASE, distortion_model="plumb_bob", distortion_coeffs=MODELS["plumb_bob"]))
    cam = renderer.camera
    centre, corner = undistort_pixels(np.array([[cam.cx, cam.cy], [0.0, 0.0]]), cam)
    assert centre == pytest.approx([cam.cx, cam.cy], abs=1e-9)
    assert corner[0] < -1.0 and corner[1] < -1.0  # the corner pixel sees a ray outside the pinhole view
    frame = renderer.render(1)
    r, c = int(round(cam.cy)), int(round(cam.cx))
    assert frame.depth_m[r, c] == pytest.approx(pinhole.depth_m[r, c], rel=1e-5)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"distortion_model": "plumb_bob"}, "go together"),
        ({"distortion_coeffs": "0.1,0,0,0"}, "go together"),
        ({"distortion_model": "fov", "distortion_coeffs": "0.1"}, "distortion_model must be one of"),
        ({"distortion_model": "equidistant", "distortion_coeffs": "0.1,0,0"}, "takes 4 coefficients, got 3"),
        ({"distortion_model": "plumb_bob", "distortion_coeffs": "0.1,x,0,0"}, "comma-separated numbers"),
    ],
)
def test_bad_distortion_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**BASE, **changes)


def test_distorted_bag_is_rectified_by_infer(tmp_path):
    """A distorted synthetic bag through `depth-ros infer`: camera_info out describes the
    rectified camera (D zero), and the depth of a small image-dependent network is close to its
    depth on the pinhole bag of the same scene (far from it without rectification)."""
    import torch

    from depth_ros.bag.infer import InferConfig, infer_bag
    from depth_ros.bag.reader import BagReader
    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.spec import ModelSpec
    from depth_ros.msgconv import image_to_depth_m
    from depth_ros.pipeline import FrameConfig
    from depth_ros.synthetic import write_bag

    class Local(torch.nn.Module):  # depth from a 5x5 neighbourhood: a rectified image gives the pinhole's depth
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 5, padding=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.conv(x))

    torch.manual_seed(0)
    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=120, input_width=160, metric=True,
                     scale_source="velocity_supervision", min_depth_m=0.5, max_depth_m=20.0, name="local")
    model = export_onnx(Local(), spec, tmp_path / "local.onnx")
    cfg = dict(BASE, frames=2)
    bags = {
        "pinhole": write_bag(SynthConfig(**cfg), tmp_path / "p.mcap"),
        "distorted": write_bag(SynthConfig(**cfg, distortion_model="plumb_bob", distortion_coeffs=MODELS["plumb_bob"]), tmp_path / "d.mcap"),
    }
    depth, infos = {}, {}
    for name, bag in bags.items():
        for rectify in ("auto", "off"):
            out = tmp_path / f"{name}_{rectify}.mcap"
            frame = FrameConfig(rectify=rectify, publish_cloud=False)
            infer_bag(bag, out, model, InferConfig(copy_inputs=False, backend="onnxruntime-cpu", frame=frame))
            with BagReader(out) as reader:
                depth[name, rectify] = [image_to_depth_m(reader.deserialize(m)) for m in reader.messages(["/camera/depth/image"])]
                infos[name, rectify] = reader.deserialize(next(reader.messages(["/camera/depth/camera_info"])))
    info = infos["distorted", "auto"]
    assert list(info.d) == [0.0] * 5 and info.distortion_model == "plumb_bob"
    assert np.allclose(np.asarray(info.k).reshape(3, 3), SynthConfig(**cfg).camera.K)
    assert np.allclose(np.asarray(info.p).reshape(3, 4)[:, :3], SynthConfig(**cfg).camera.K)
    assert list(infos["pinhole", "auto"].d) == [0.0] * 5

    def rel(a, b):
        ok = np.isfinite(a) & np.isfinite(b)
        return float(np.median(np.abs(a[ok] - b[ok]) / b[ok]))

    inner = INNER
    rect = np.median([rel(d[inner], p[inner]) for d, p in zip(depth["distorted", "auto"], depth["pinhole", "auto"])])
    raw = np.median([rel(d[inner], p[inner]) for d, p in zip(depth["distorted", "off"], depth["pinhole", "auto"])])
    assert rect < 0.3 * raw, (rect, raw)  # measured 0.5 % vs 3.1 %


def test_eval_compares_in_the_rectified_camera(tmp_path, monkeypatch):
    """The pinhole render's truth as the prediction, the distorted render of the same scene as
    the truth bag: eval rectifies the truth (the model side runs on rectified images), so the two
    agree closely; comparing in the distorted geometry they do not."""
    from depth_ros.synthetic import write_bag
    import depth_ros_training.eval.evaluate as ev

    cfg = dict(BASE, frames=4)
    pinhole = write_bag(SynthConfig(**cfg), tmp_path / "p.mcap")
    distorted = write_bag(SynthConfig(**cfg, distortion_model="plumb_bob", distortion_coeffs=MODELS["plumb_bob"]), tmp_path / "d.mcap")
    config = ev.EvalConfig(pred_topic="/camera/depth/ground_truth", flicker=False, crop=(0.15, 0.15, 0.85, 0.85))
    [rectified] = ev.evaluate([distorted], config, preds=[pinhole])
    monkeypatch.setattr(ev, "is_distorted", lambda camera: False)
    [raw] = ev.evaluate([distorted], config, preds=[pinhole])
    # measured: AbsRel 0.011 vs 0.068, boundary F1 0.69 vs 0.44
    assert rectified.summary["metric"]["abs_rel"] < 0.02 < 0.05 < raw.summary["metric"]["abs_rel"]
    assert rectified.summary["boundary"]["f1"] > raw.summary["boundary"]["f1"] + 0.1


def test_training_sees_the_rectified_camera(tmp_path):
    """The training index of a distorted bag: the camera is the rectified one (D empty), frames
    and ground-truth labels come rectified, close to those of the pinhole bag of the scene."""
    from depth_ros.synthetic import write_bag
    from depth_ros_training.data.bag_index import BagMessageReader, load_or_build_index
    from depth_ros_training.data.dataset import read_frame_rgb
    from depth_ros.msgconv import image_to_depth_m

    cfg = dict(BASE, frames=3)
    out = {}
    for name, extra in (("pinhole", {}), ("distorted", {"distortion_model": "plumb_bob", "distortion_coeffs": MODELS["plumb_bob"]})):
        bag = write_bag(SynthConfig(**cfg, **extra), tmp_path / f"{name}.mcap")
        index = load_or_build_index(bag, cache_dir=tmp_path / "cache")
        reader = BagMessageReader(index.bag_path)
        gt = index.rectify_label(image_to_depth_m(reader.read(index.gt_depth_topic, int(index.gt_depth_log_ns[1]))))
        out[name] = (index, read_frame_rgb(reader, index, 1).astype(float), gt)
    index, rgb, gt = out["distorted"]
    assert index.raw_camera is not None and index.raw_camera.distortion_model == "plumb_bob"
    assert index.camera.D.size == 0 and np.allclose(index.camera.K, SynthConfig(**cfg).camera.K)
    assert out["pinhole"][0].raw_camera is None
    again = load_or_build_index(index.bag_path, cache_dir=tmp_path / "cache")  # from the cache file
    assert again.raw_camera == index.raw_camera and np.array_equal(again.camera.K, index.camera.K)
    _, rgb_p, gt_p = out["pinhole"]
    assert np.abs(rgb[INNER] - rgb_p[INNER]).mean() < 4.0  # grey levels (14 unrectified)
    assert np.nanmedian(np.abs(gt[INNER] - gt_p[INNER]) / gt_p[INNER]) < 0.01
