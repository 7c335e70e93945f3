"""ZoeDepth stage 2 as a training task: config errors, stage-1 loading, a short run that lowers
metric AbsRel, the router on two scene types, export run by ``depth-ros infer`` with the ``model``
scale policy.

The short run (``test_stage2_run_lowers_abs_rel_and_routes``): a randomly initialised stage-1
DispNet (saved as an SC-Depth checkpoint), per-type heads for the renderer's ``corridor`` (bins
0.5..20 m) and ``room`` (0.5..8 m) scenes, 40 steps of batch 4 at 64x128 (lr 1e-3, router weight 100)
on one training bag of each, label groups mixed equally. On two held-out bags (other seeds), metric
AbsRel with no scaling of any kind 2.45 -> 0.38 and delta1 0.02 -> 0.59; router accuracy 1.0 on the
held-out time segments of the training bags (on the other seeds' bags it is 0.5: the features of a
random stage-1 encoder do not carry the scene type to new textures; docs/zoedepth.md has the figures
from a trained stage 1). One CPU thread; figures of one run, the asserted bounds leave a margin.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from depth_ros.errors import ModelError
from depth_ros.synthetic import SynthConfig, write_bag
from depth_ros_training.data.labelled import LabelGroup, LabelledBagDataset, LabelledDataConfig, LabelledDataModule, LabelSource
from depth_ros_training.eval.metrics import compute_depth_metrics, mean_metrics
from depth_ros_training.module import DepthTrainingModule
from depth_ros_training.tasks.zoedepth import (
    SceneType,
    ZoeDepthConfig,
    ZoeDepthModule,
    check_metric_labels,
    export_zoedepth,
    load_stage1_dispnet,
)

H, W = 64, 128
VAL = 0.25  # every 4th 0.5 s segment of a training bag is held out
SCENES = [SceneType("corridor", 0.5, 20.0), SceneType("room", 0.5, 8.0)]


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine's cores are shared; more threads only contend
    yield
    torch.set_num_threads(before)


def _stage1_checkpoint(path: Path, **hparams) -> Path:
    torch.manual_seed(0)
    module = DepthTrainingModule(image_height=H, image_width=W, **hparams)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


# -- configuration errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(min_depth_m=0.0, max_depth_m=10.0),
        dict(min_depth_m=5.0, max_depth_m=2.0),
        dict(min_depth_m=0.1, max_depth_m=float("inf")),
        dict(scene_types=(SceneType("a", 0.1, 10.0), SceneType("b", -1.0, 5.0))),
    ],
)
def test_bins_outside_the_range_are_a_one_line_error(kwargs):
    with pytest.raises(ValueError) as err:
        ZoeDepthConfig(**kwargs)
    msg = str(err.value)
    assert "(0, max_depth_m]" in msg and "\n" not in msg


def _groups(bags: dict[str, str], kind: str = "metric_depth") -> tuple[LabelGroup, ...]:
    return tuple(LabelGroup(name, (bag,), LabelSource(kind=kind, gt_topic="/camera/depth/ground_truth")) for name, bag in bags.items())


def test_missing_metric_label_source_is_a_one_line_error():
    relative = LabelledDataConfig(groups=_groups({"corridor": "c.mcap", "room": "r.mcap"}, kind="relative_inverse_depth"), height=H, width=W)
    with pytest.raises(ValueError) as err:
        check_metric_labels(relative)
    msg = str(err.value)
    assert msg.startswith("data.data.groups: stage 2 (zoedepth) trains on metric labels only") and "corridor: relative_inverse_depth" in msg
    assert "\n" not in msg
    with pytest.raises(ValueError, match="needs a metric label source"):
        check_metric_labels(object())  # a data config without label groups
    check_metric_labels(LabelledDataConfig(groups=_groups({"corridor": "c.mcap"}), height=H, width=W))  # metric: accepted


def test_scene_types_must_own_every_group_once():
    with pytest.raises(ValueError, match="at least 2 scene types"):
        ZoeDepthConfig(scene_types=(SceneType("a", 0.1, 10.0),))
    with pytest.raises(ValueError, match="label group 'outdoor' belongs to no scene type"):
        ZoeDepthModule(image_height=H, image_width=W, n_bins=8, scene_types=SCENES, group_names=("corridor", "outdoor"))
    module = ZoeDepthModule(image_height=H, image_width=W, n_bins=8, group_names=("b", "a", "c"),
                            scene_types=[SceneType("indoor", 0.1, 10.0, ("a", "c")), SceneType("outdoor", 0.5, 80.0, ("b",))])
    assert module._group_scene.tolist() == [1, 0, 0]
    assert module.config.depth_range_m == (0.1, 80.0)


# -- stage 1 -------------------------------------------------------------------------------------


def test_stage1_weights_are_loaded_and_an_incompatible_network_refused(tmp_path):
    ckpt = _stage1_checkpoint(tmp_path / "s1.ckpt", num_scales=4)
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    net = load_stage1_dispnet(ckpt, 18)
    own = net.state_dict()
    assert all(torch.equal(own[k], saved["depth_net." + k]) for k in own)  # every weight, the finest dispconv included
    assert not any(k.startswith("dispconv.1") for k in own)  # coarser scales are not used by stage 2

    # a ResNet-50 checkpoint (named by its hyper-parameters) and a network with a changed layer
    data = torch.load(ckpt, weights_only=True)
    data["hyper_parameters"]["num_layers"] = 50
    torch.save(data, tmp_path / "r50.ckpt")
    with pytest.raises(ModelError, match=r"r50.ckpt: incompatible stage-1 network: ResNet-50 encoder in the checkpoint, ResNet-18"):
        load_stage1_dispnet(tmp_path / "r50.ckpt", 18)
    data = torch.load(ckpt, weights_only=True)
    data["hyper_parameters"] = {"task": "midas", "network": "light"}  # the MiDaS task names its network
    torch.save(data, tmp_path / "light.ckpt")
    with pytest.raises(ModelError, match=r"light.ckpt: incompatible stage-1 network: LightDispNet"):
        load_stage1_dispnet(tmp_path / "light.ckpt", 18)
    data["hyper_parameters"] = {"task": "midas", "network": "resnet18"}
    torch.save(data, tmp_path / "midas.ckpt")
    assert torch.equal(load_stage1_dispnet(tmp_path / "midas.ckpt", 18).dispconv[0][1].weight, saved["depth_net.dispconv.0.1.weight"])
    data = torch.load(ckpt, weights_only=True)
    data["state_dict"]["depth_net.dispconv.0.1.weight"] = torch.zeros(1, 8, 3, 3)
    torch.save(data, tmp_path / "shape.ckpt")
    with pytest.raises(ModelError, match=r"shape.ckpt: incompatible stage-1 network: depth_net.dispconv.0.1.weight is \(1, 8, 3, 3\)"):
        load_stage1_dispnet(tmp_path / "shape.ckpt", 18)
    data = torch.load(ckpt, weights_only=True)
    data["state_dict"] = {k: v for k, v in data["state_dict"].items() if k.startswith("pose_net.")}
    torch.save(data, tmp_path / "posenet.ckpt")
    with pytest.raises(ModelError, match="posenet.ckpt: no DispNet weights"):
        load_stage1_dispnet(tmp_path / "posenet.ckpt", 18)


def test_relative_network_learns_ten_times_more_slowly_than_the_head():
    module = ZoeDepthModule(image_height=H, image_width=W, n_bins=16, lr=2e-4)
    groups = {g["name"]: g for g in module.configure_optimizers().param_groups}
    assert groups["metric_head"]["lr"] == pytest.approx(2e-4)
    assert groups["relative_network"]["lr"] == pytest.approx(2e-5)
    n_rel = sum(p.numel() for p in groups["relative_network"]["params"])
    assert n_rel == sum(p.numel() for p in module.depth_net.parameters())
    assert n_rel + sum(p.numel() for p in groups["metric_head"]["params"]) == sum(p.numel() for p in module.parameters())


def test_stage1_batchnorm_statistics_stay_frozen_in_training():
    module = ZoeDepthModule(image_height=H, image_width=W, n_bins=8)
    bn = [m for m in module.depth_net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = bn[0].running_mean.clone()
    module.on_train_batch_start({}, 0)  # as Lightning does before a step, without calling train()
    module.predict(torch.randn(2, 3, H, W) * 3 + 1)
    assert bn and not any(m.training for m in bn) and torch.equal(bn[0].running_mean, before)
    assert module.head.training  # the head itself trains normally
    free = ZoeDepthModule(image_height=H, image_width=W, n_bins=8, freeze_relative_bn=False).train()
    assert all(m.training for m in free.depth_net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_heads_without_attractors_keep_the_seed_bins():
    torch.manual_seed(0)
    module = ZoeDepthModule(image_height=H, image_width=W, n_bins=16, attractors=False, output_distribution="softmax").eval()
    x = torch.randn(1, 3, H, W)
    from depth_ros_training.models.zoe_bins import dispnet_features

    bottleneck, levels, last = dispnet_features(module.depth_net, x, append_disparity=True)
    out = module.head(bottleneck, levels, last)
    seed = module.head.seed_bins(module.head.bottleneck_conv(bottleneck))  # (1, 16, 2, 4)
    # every output pixel's centres interpolate the seed bins; the corner pixel is the seed's corner
    assert torch.allclose(out.bin_centers_m[0, :, 0, 0], seed[0, :, 0, 0], atol=1e-6)
    assert all(layer.net is None for layer in module.head.attractors)
    assert torch.allclose(out.probs.sum(dim=1), torch.ones(1, H, W), atol=1e-5)


# -- a short stage-2 run ---------------------------------------------------------------------------


def _bag(path: Path, scene: str, seed: int, frames: int) -> str:
    return str(write_bag(SynthConfig(width=W, height=H, frames=frames, seed=seed, scene=scene), path, overwrite=True))


def _data_config(bags: dict[str, str], val_fraction: float = 0.0) -> LabelledDataConfig:
    return LabelledDataConfig(groups=_groups(bags), height=H, width=W, val_fraction=val_fraction, segment_s=0.5, hflip=False)


def _dataset(bags: dict[str, str], split: str = "all", val_fraction: float = 0.0) -> LabelledBagDataset:
    return LabelledBagDataset(_data_config(bags, val_fraction), split)


def _held_out_metrics(module: ZoeDepthModule, bags: dict[str, str], split: str = "all", val_fraction: float = 0.0) -> tuple[float, float, float]:
    """(metric AbsRel, delta1, router accuracy (NaN for one head)) over the frames of ``split`` of the bags."""
    module.eval()
    metrics, hits = [], []
    with torch.no_grad():
        ds = _dataset(bags, split, val_fraction)
        for i in range(len(ds)):
            batch = {k: v[None] for k, v in ds[i].items()}
            x, label, scene = module._inputs(batch)
            depth, logits = module.predict(x)
            metrics.append(compute_depth_metrics(depth[0, 0].numpy(), label[0, 0].numpy(), median_scaling=False, min_depth_m=0.5, max_depth_m=20.0))
            if logits is not None:
                hits.append(int(logits.argmax()) == int(scene[0]))
    mean = mean_metrics([m for m in metrics if m is not None])
    return mean.abs_rel, mean.delta1, float(np.mean(hits)) if hits else float("nan")


@pytest.mark.slow
def test_stage2_run_lowers_abs_rel_and_routes(tmp_path, one_thread):
    train = {"corridor": _bag(tmp_path / "c_train.mcap", "corridor", 1, 20), "room": _bag(tmp_path / "r_train.mcap", "room", 2, 20)}
    held_out = {"corridor": _bag(tmp_path / "c_test.mcap", "corridor", 11, 6), "room": _bag(tmp_path / "r_test.mcap", "room", 12, 6)}
    stage1 = _stage1_checkpoint(tmp_path / "stage1.ckpt")
    torch.manual_seed(0)
    module = ZoeDepthModule(stage1_checkpoint=str(stage1), scene_types=SCENES, group_names=tuple(train), n_bins=32, lr=1e-3, image_height=H, image_width=W)
    before = _held_out_metrics(module, held_out)
    module.train()
    data = LabelledDataModule(replace(_data_config(train, VAL), hflip=True), batch_size=4)
    trainer = pl.Trainer(max_steps=40, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, enable_checkpointing=False, default_root_dir=str(tmp_path))
    trainer.fit(module, data)
    after = _held_out_metrics(module, held_out)
    routed = _held_out_metrics(module, train, "val", VAL)[2]  # frames of the training bags' held-out time segments
    print(f"held-out metric AbsRel {before[0]:.3f} -> {after[0]:.3f}, delta1 {before[1]:.3f} -> {after[1]:.3f}, "
          f"router accuracy {routed:.2f} (held-out segments), {after[2]:.2f} (held-out bags)")
    assert after[0] < 0.25 * before[0] and after[0] < 0.45
    assert after[1] > before[1] + 0.3
    assert routed == 1.0

    # export: one ONNX graph with the router and both heads, run by depth-ros infer with the model's own scale
    ckpt = tmp_path / "stage2.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=True)
    result = export_zoedepth(ckpt, tmp_path / "export")
    spec = result.specs["depth"]
    assert (spec.output_kind, spec.min_depth_m, spec.max_depth_m, spec.metric) == ("depth_metric", 0.5, 20.0, True)
    import onnx

    graph = onnx.load(str(result.paths["depth"]))
    n_weights = sum(int(np.prod(t.dims)) for t in graph.graph.initializer)
    assert n_weights >= sum(p.numel() for p in module.heads.parameters())  # both heads and the router are inside
    _infer_with_model_policy(result.paths["depth"], held_out, module, tmp_path)


def _infer_with_model_policy(onnx_path: Path, bags: dict[str, str], module: ZoeDepthModule, tmp_path: Path) -> None:
    from depth_ros.bag.reader import BagReader
    from depth_ros.cli import main as depth_ros_main
    from depth_ros.msgconv import image_to_depth_m

    for scene, bag in bags.items():
        out = tmp_path / f"{scene}_pred.mcap"
        rc = depth_ros_main(["infer", bag, "-o", str(out), "--model", str(onnx_path), "--scale", "model", "--no-progress", "--overwrite"])
        assert rc == 0
        with torch.no_grad():
            first = {k: v[None] for k, v in _dataset({scene: bag})[0].items()}  # frame 0
            want = module.predict(module._inputs(first)[0])[0][0, 0].numpy()
        with BagReader(out) as reader:
            topics = [t for t in reader.topics if t.endswith("/depth/image")]
            assert topics, f"no depth image in {list(reader.topics)}"
            depth = image_to_depth_m(reader.deserialize(next(iter(reader.messages(topics)))))
        # the network runs at the recorded size here (64x128), so the runtime's depth is the model's metres, unscaled
        assert depth.shape == (H, W)
        finite = np.isfinite(depth)
        assert finite.mean() > 0.99
        assert np.nanmax(np.abs(depth - want)) < 0.02 * float(np.nanmax(want))


def test_build_from_task_yaml_keys_checks_labels_then_keys(tmp_path):
    from depth_ros_training.tasks.zoedepth import build_zoedepth

    metric = LabelledDataConfig(groups=_groups({"corridor": "c.mcap", "room": "r.mcap"}), height=H, width=W)
    relative = LabelledDataConfig(groups=_groups({"corridor": "c.mcap"}, kind="relative_depth"), height=H, width=W)
    with pytest.raises(ValueError, match="corridor: relative_depth"):
        build_zoedepth({"n_bins": 8}, relative)
    with pytest.raises(ValueError, match="model: unknown key.*n_binz"):
        build_zoedepth({"n_binz": 8}, metric)
    with pytest.raises(ValueError, match=r"^model\.min_depth_m/max_depth_m: the bins must lie in \(0, max_depth_m\]"):
        build_zoedepth({"min_depth_m": 0.0}, metric)
    with pytest.raises(ModelError, match="stage-1 checkpoint not found"):
        build_zoedepth({"stage1_checkpoint": str(tmp_path / "missing.ckpt")}, metric)
    module = build_zoedepth({"n_bins": 8, "image_height": H, "image_width": W, "scene_types": [
        {"name": "corridor", "min_depth_m": 0.5, "max_depth_m": 20.0}, {"name": "room", "min_depth_m": 0.5, "max_depth_m": 8.0}]}, metric)
    assert module.group_names == ("corridor", "room") and module._group_scene.tolist() == [0, 1]


def _task_yaml(path: Path, kind: str = "metric_depth", **model) -> Path:
    import yaml

    tree = {
        "task": "zoedepth",
        "trainer": {"max_steps": 1, "accelerator": "cpu", "default_root_dir": str(path.parent / "runs")},
        "model": {"n_bins": 8, **model},
        "data": {"data": {"height": H, "width": W, "groups": [
            {"name": "corridor", "bags": [str(path.parent / "missing.mcap")], "label": {"kind": kind, "gt_topic": "/camera/depth/ground_truth"}}]}},
    }
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.mark.parametrize(
    ("kind", "model", "expected"),
    [
        ("relative_inverse_depth", {}, "data.data.groups: stage 2 (zoedepth) trains on metric labels only"),
        ("metric_depth", {"min_depth_m": 5.0, "max_depth_m": 2.0}, "model.min_depth_m/max_depth_m: the bins must lie in (0, max_depth_m]"),
    ],
)
def test_cli_fit_refuses_before_training_in_one_line(tmp_path, capsys, kind, model, expected):
    from depth_ros_training.cli import main

    rc = main(["fit", "--config", str(_task_yaml(tmp_path / "zoe.yaml", kind, **model))])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1
    assert err[0].startswith("depth-ros-train fit: error: ") and expected in err[0]
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written


def test_cli_export_writes_a_depth_metric_model(tmp_path, capsys):
    from depth_ros.inference.spec import load_model_spec
    from depth_ros_training.cli import main

    torch.manual_seed(0)
    module = ZoeDepthModule(image_height=H, image_width=W, n_bins=8, min_depth_m=0.2, max_depth_m=12.0, scene_types=SCENES, group_names=("corridor", "room"))
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, tmp_path / "s2.ckpt")
    assert main(["export", str(tmp_path / "s2.ckpt"), "-o", str(tmp_path / "out")]) == 0
    spec = load_model_spec(tmp_path / "out" / "depth.onnx")
    assert (spec.output_kind, spec.min_depth_m, spec.max_depth_m, spec.metric) == ("depth_metric", 0.5, 20.0, True)
    assert spec.extra["scene_types"] == "corridor,room"
    assert "depth: " in capsys.readouterr().out
