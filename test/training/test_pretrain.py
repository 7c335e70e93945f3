"""Gradient-field contrastive pretraining: G = E * B_canny, momentum update, queue, InfoNCE,
split BatchNorm, frames from bags, a short run through the CLI and its encoder weights."""
from __future__ import annotations

import math

import kornia
import pytest
import torch
from torch import nn

from depth_ros_training.pretrain.gradient_field import GradientFieldConfig, gradient_field
from depth_ros_training.pretrain.moco import KeyQueue, MoCo, SplitBatchNorm2d, info_nce_logits, info_nce_loss, momentum_update


# -- gradient field --------------------------------------------------------------------------
def test_gradient_field_is_zero_on_a_constant_image():
    for value in (0.0, 0.37, 1.0):
        g = gradient_field(torch.full((2, 3, 24, 32), value))
        assert g.shape == (2, 1, 24, 32)
        assert torch.count_nonzero(g) == 0


def _step(height: float, h: int = 24, w: int = 32, col: int = 13) -> torch.Tensor:
    x = torch.full((1, 3, h, w), 0.2)
    x[..., col:] += height
    return x


def test_gradient_field_is_sobel_magnitude_on_canny_edges_of_a_step():
    x = _step(0.6)
    g = gradient_field(x)
    grey = kornia.color.rgb_to_grayscale(x)
    sobel = kornia.filters.sobel(grey, normalized=True, eps=0.0)
    _, edges = kornia.filters.canny(grey, 0.2, 0.4)
    on = edges > 0
    assert on.any()
    torch.testing.assert_close(g[on], sobel[on], rtol=0, atol=0)  # exactly E on edge pixels
    assert torch.count_nonzero(g[~on]) == 0  # exactly 0 elsewhere
    # by hand: the normalised Sobel of a step of height h is h/2 on the pixels either side of
    # it; Canny's non-maximum suppression keeps one full column of them
    cols = on[0, 0].nonzero()[:, 1].unique()
    assert cols.tolist() in ([12], [13])
    torch.testing.assert_close(g[0, 0, :, cols[0]], torch.full((24,), 0.3), rtol=0, atol=1e-6)
    # the off-edge neighbour has the same Sobel magnitude, yet G keeps only the edge
    other = 13 if cols[0] == 12 else 12
    assert sobel[0, 0, :, other].min() > 0.29 and torch.count_nonzero(g[0, 0, :, other]) == 0


def test_gradient_field_thresholds_suppress_weak_texture():
    weak = _step(0.02)  # Canny magnitude ~0.1 on kornia's unnormalised scale
    assert torch.count_nonzero(gradient_field(weak)) == 0
    kept = gradient_field(weak, GradientFieldConfig(canny_low=0.02, canny_high=0.05))
    assert torch.count_nonzero(kept) == 24
    torch.testing.assert_close(kept.max(), torch.tensor(0.01), rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="canny_low"):
        GradientFieldConfig(canny_low=0.5, canny_high=0.4)


# -- momentum contrast -----------------------------------------------------------------------
def _tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3)).double()


def test_momentum_update_is_an_exact_ema_of_parameters_only():
    torch.manual_seed(0)
    q_net, k_net = _tiny_net(), _tiny_net()
    k_net[1].running_mean.fill_(7.0)
    q0 = [p.detach().clone() for p in q_net.parameters()]
    k0 = [p.detach().clone() for p in k_net.parameters()]
    momentum_update(q_net, k_net, 0.9)
    for pq, pk, k in zip(q0, k_net.parameters(), k0):
        torch.testing.assert_close(pk.detach(), 0.9 * k + 0.1 * pq, rtol=0, atol=1e-15)
    momentum_update(q_net, k_net, 0.9)  # twice: m^2 k + (1 - m^2) q
    for pq, pk, k in zip(q0, k_net.parameters(), k0):
        torch.testing.assert_close(pk.detach(), 0.81 * k + 0.19 * pq, rtol=0, atol=1e-14)
    assert torch.all(k_net[1].running_mean == 7.0)  # buffers are the key network's own
    for p, want in zip(q_net.parameters(), q0):
        assert torch.equal(p.detach(), want)


def test_moco_key_network_starts_as_a_copy_and_follows_the_ema():
    torch.manual_seed(0)
    moco = MoCo(18, queue_size=8, momentum=0.99)
    for pq, pk in zip(moco.query_net.parameters(), moco.key_net.parameters()):
        assert torch.equal(pq, pk) and not pk.requires_grad
    with torch.no_grad():
        for p in moco.query_net.parameters():
            p.add_(1.0)
    before = [p.clone() for p in moco.key_net.parameters()]
    moco.momentum_update()
    for pq, pk, k in zip(moco.query_net.parameters(), moco.key_net.parameters(), before):
        torch.testing.assert_close(pk, 0.99 * k + 0.01 * pq, rtol=1e-6, atol=1e-7)


def test_queue_is_fifo_with_wrap_around():
    queue = KeyQueue(5, 2)
    a = torch.arange(6.0).view(3, 2)
    b = 10 + torch.arange(6.0).view(3, 2)
    queue.enqueue(a)
    assert torch.equal(queue.keys[:3], a) and int(queue.ptr) == 3
    queue.enqueue(b)  # rows 3, 4, then wraps to 0: a[0] (the oldest) is the one replaced
    assert torch.equal(queue.keys, torch.stack([b[2], a[1], a[2], b[0], b[1]]))
    assert int(queue.ptr) == 1
    queue.enqueue(torch.full((5, 2), -1.0))  # a whole queue's worth replaces everything
    assert torch.all(queue.keys == -1.0) and int(queue.ptr) == 1


def test_info_nce_equals_a_hand_computed_value():
    q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    k = torch.tensor([[1.0, 0.0], [0.8, 0.6]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    logits, labels = info_nce_logits(q, k, queue, temperature=0.5)
    torch.testing.assert_close(logits, torch.tensor([[2.0, 0.0, -2.0], [1.92, 1.6, -1.2]]))
    assert labels.tolist() == [0, 0]
    row0 = math.log(1.0 + math.exp(-2.0) + math.exp(-4.0))
    row1 = -1.92 + math.log(math.exp(1.92) + math.exp(1.6) + math.exp(-1.2))
    torch.testing.assert_close(info_nce_loss(q, k, queue, 0.5), torch.tensor((row0 + row1) / 2))


def test_info_nce_logits_match_the_moco_reference_formula():
    """moco/builder.py: l_pos = einsum("nc,nc->n", q, k)[:, None], l_neg = einsum("nc,ck->nk", q,
    queue_DxK), logits = cat / T, labels 0; our queue is stored K x D."""
    torch.manual_seed(0)
    q = nn.functional.normalize(torch.randn(5, 16), dim=1)
    k = nn.functional.normalize(torch.randn(5, 16), dim=1)
    queue = nn.functional.normalize(torch.randn(16, 12), dim=0)  # MoCo's layout: (D, K)
    ref = torch.cat([torch.einsum("nc,nc->n", q, k).unsqueeze(-1), torch.einsum("nc,ck->nk", q, queue)], dim=1) / 0.2
    logits, labels = info_nce_logits(q, k, queue.t(), 0.2)
    torch.testing.assert_close(logits, ref, rtol=1e-6, atol=1e-6)
    assert labels.dtype == torch.long and not labels.any()


def test_moco_step_uses_the_queue_before_enqueueing_its_keys():
    torch.manual_seed(0)
    moco = MoCo(18, queue_size=6, temperature=0.2)
    before = moco.queue.keys.clone()
    query, key = torch.randn(2, 3, 64, 64), torch.rand(2, 1, 64, 64)
    out = moco(query, key)
    assert out.logits.shape == (2, 7)
    with torch.no_grad():
        q = moco.query_net(query)  # train-mode BatchNorm on the same batch: the same queries again
    torch.testing.assert_close(out.logits[:, 1:], q @ before.t() / 0.2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits[:, 0], (q * out.keys).sum(1) / 0.2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(moco.queue.keys[:2], out.keys)
    torch.testing.assert_close(moco.queue.keys[2:], before[2:])
    torch.testing.assert_close(out.loss, nn.functional.cross_entropy(out.logits, out.labels))
    with pytest.raises(ValueError, match="key view"):
        moco(query, torch.rand(2, 3, 64, 64))


def test_split_batch_norm_normalises_interleaved_sub_batches_separately():
    torch.manual_seed(0)
    x = torch.randn(6, 4, 5, 5) * 3 + 1
    split = SplitBatchNorm2d(4, splits=2)
    out = split(x)
    for j in range(2):
        ref = nn.BatchNorm2d(4)
        torch.testing.assert_close(out[j::2], ref(x[j::2]), rtol=1e-5, atol=1e-5)
    plain = nn.BatchNorm2d(4)
    plain(x[0::2])
    mean_running = plain.running_mean.clone()
    plain2 = nn.BatchNorm2d(4)
    plain2(x[1::2])
    torch.testing.assert_close(split.running_mean, (mean_running + plain2.running_mean) / 2)
    assert set(split.state_dict()) == set(nn.BatchNorm2d(4).state_dict())


# -- frames from bags, a short run, the weights ------------------------------------------------
def _write_shapes_bag(path, frames: int = 16, size: int = 48, topic: str = "/cam/image", seed: int = 0):
    """Frames of a few random coloured rectangles: distinct edges per frame, no camera_info."""
    import numpy as np
    from rosbags.typesys import Stores, get_typestore

    from depth_ros.bag.writer import BagWriter

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    rng = np.random.default_rng(seed)
    with BagWriter(path, typestore=ts, overwrite=True) as w:
        w.add_topic(topic, "sensor_msgs/msg/Image")
        w.add_topic("/odom_unused", "nav_msgs/msg/Odometry")
        for i in range(frames):
            img = np.empty((size, size, 3), np.uint8)
            img[:] = rng.integers(0, 256, 3)
            for _ in range(3):
                x0, y0 = rng.integers(0, size - 16, 2)
                x1, y1 = (x0, y0) + rng.integers(6, size // 2, 2)
                img[y0:y1, x0:x1] = rng.integers(0, 256, 3)
            stamp = 1_700_000_000_000_000_000 + i * 100_000_000
            hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam")
            msg = T["sensor_msgs/msg/Image"](header=hdr, height=size, width=size, encoding="rgb8", is_bigendian=0, step=3 * size, data=img.reshape(-1))
            w.write(topic, msg, stamp)
    return path


@pytest.fixture(scope="module")
def shapes_bag(tmp_path_factory):
    return _write_shapes_bag(tmp_path_factory.mktemp("pretrain") / "shapes.mcap", frames=24)


def test_frames_from_a_bag_without_camera_info_and_errors_naming_the_file(shapes_bag, tmp_path):
    from depth_ros.errors import BagError, DepthRosError
    from depth_ros_training.pretrain.data import PretrainDataConfig, PretrainFrames

    frames = PretrainFrames(PretrainDataConfig(bags=(str(shapes_bag), str(shapes_bag)), frame_stride=2, height=32, width=32))
    assert len(frames) == 24  # 12 per bag, every other frame
    sample = frames[3]
    assert sample["query"].shape == sample["key"].shape == (3, 32, 32)
    assert 0.0 <= float(sample["query"].min()) and float(sample["query"].max()) <= 1.0
    with pytest.raises(BagError, match=r"shapes\.mcap: image topic /nope is not in the bag; image topics: /cam/image"):
        PretrainFrames(PretrainDataConfig(bags=(str(shapes_bag),), image_topic="/nope"))
    with pytest.raises(BagError, match=r"shapes\.mcap: image topic /odom_unused is nav_msgs/msg/Odometry; image topics: /cam/image"):
        PretrainFrames(PretrainDataConfig(bags=(str(shapes_bag),), image_topic="/odom_unused"))
    from depth_ros.synthetic import SynthConfig

    from bagfactory import write_test_bag

    jpeg = write_test_bag(tmp_path / "jpeg.mcap", SynthConfig(width=64, height=48, frames=3, lidar_beams=0), compressed=True)
    compressed = PretrainFrames(PretrainDataConfig(bags=(str(jpeg),), height=32, width=32))  # the only colour topic
    assert len(compressed) == 3 and compressed.frames[0].topic == "/camera/image_raw/compressed"
    assert compressed.load_rgb(2).shape == (48, 64, 3)
    empty = _write_shapes_bag(tmp_path / "empty.mcap", frames=0)
    with pytest.raises(DepthRosError, match=r"empty\.mcap: no colour image topic to choose from \(/cam/image \(Image, 0 msgs\)\)"):
        PretrainFrames(PretrainDataConfig(bags=(str(empty),)))
    with pytest.raises(DepthRosError, match=r"empty\.mcap: image topic /cam/image has no messages"):
        PretrainFrames(PretrainDataConfig(bags=(str(empty),), image_topic="/cam/image"))


def test_crop_ratio_that_excludes_the_frame_shape_is_named_with_a_fitting_range(shapes_bag, caplog):
    from depth_ros_training.pretrain.data import PretrainDataConfig, PretrainDataModule, check_crop_ratio

    wide = check_crop_ratio(PretrainDataConfig(), (128, 384), "corridor.mcap")  # MoCo's 3/4..4/3 on a 3:1 frame
    assert wide == (
        "corridor.mcap: data.data.crop_ratio [0.75, 1.33] excludes the frames' aspect ratio 3.00 (384x128): no crop larger than "
        "44 % of the frame fits, and the rest fall back to a full-height strip, so the two views often share little; "
        "set crop_ratio around it, e.g. [2.25, 4.00]"
    )
    tall = check_crop_ratio(PretrainDataConfig(crop_ratio=(1.0, 2.0)), (100, 50), "portrait.mcap")
    assert "aspect ratio 0.50 (50x100): no crop larger than 50 % of the frame fits" in tall and "full-width strip" in tall
    assert check_crop_ratio(PretrainDataConfig(crop_ratio=(2.25, 4.0)), (128, 384), "corridor.mcap") is None
    assert check_crop_ratio(PretrainDataConfig(), (48, 64), "vga.mcap") is None  # 4:3 within MoCo's range
    # the data module checks the first frame of what it will train on (the shapes bag's frames are square)
    with caplog.at_level("WARNING", logger="depth_ros_training.pretrain.data"):
        PretrainDataModule(PretrainDataConfig(bags=(str(shapes_bag),), height=32, width=32, crop_ratio=(2.0, 3.0)), batch_size=4).setup("fit")
    assert any("aspect ratio 1.00" in r.getMessage() and "shapes.mcap" in r.getMessage() for r in caplog.records)


def _in_batch_info_nce(module, batch) -> float:
    """InfoNCE of every frame's query against all frames' keys (queue-free, fixed views), with
    training-mode BatchNorm as in a step, on a copy (running statistics untouched)."""
    import copy

    moco = copy.deepcopy(module.moco)
    with torch.no_grad():
        query, key = module.views(batch)
        q = moco.query_net(query)
        k = moco.key_net(moco.key_input(key))
        logits = q @ k.t() / moco.temperature
        return float(nn.functional.cross_entropy(logits, torch.arange(len(q))))


def test_short_pretraining_run_lowers_the_contrastive_loss(shapes_bag, tmp_path):
    """ResNet-18, 8 frames (one batch), 32x32, 15 steps, fixed seed. Fixed geometry and no
    photometric augmentation keep each frame's two views fixed, so the loss is measured on the
    views trained on: every frame's RGB query against the gradient-field keys of all 8 frames.
    Plain BatchNorm (bn_splits=1): sub-batches of 4 frames make the keys too noisy for so few
    steps (split BatchNorm is tested above)."""
    import lightning.pytorch as pl

    from depth_ros_training.pretrain.data import PretrainDataConfig, PretrainDataModule
    from depth_ros_training.pretrain.module import PretrainModule

    torch.manual_seed(0)
    config = PretrainDataConfig(bags=(str(shapes_bag),), frame_stride=3, height=32, width=32, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip=False)
    data = PretrainDataModule(config, batch_size=8)
    data.setup("fit")
    batch = {k: torch.stack([data.train_set[i][k] for i in range(len(data.train_set))]) for k in ("query", "key")}
    module = PretrainModule(18, "gradient", queue_size=8, momentum=0.99, lr=0.03, bn_splits=1, color_jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    before = _in_batch_info_nce(module, batch)
    trainer = pl.Trainer(max_steps=15, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(module, data)
    after = _in_batch_info_nce(module, batch)
    print(f"in-batch InfoNCE {before:.3f} -> {after:.3f} (chance {math.log(8):.3f})")
    assert before > math.log(8) - 0.3  # a random network cannot tell the 8 frames apart
    assert after < before - 0.25


def _cli_args(bag, root, *extra: str) -> list[str]:
    return [
        "--data.data.bags", f"[{bag}]", "--data.data.height", "32", "--data.data.width", "32", "--data.batch_size", "4",
        "--model.queue_size", "8", "--model.bn_splits", "2", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.max_steps", "2", "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1", "--checkpoint.every_minutes", "null", "--checkpoint.every_n_steps", "1",
        *extra,
    ]


def test_cli_writes_encoder_weights_that_load_into_dispnet_strictly(shapes_bag, tmp_path):
    from depth_ros_training.models import DispNet, PoseNet
    from depth_ros_training.pretrain.cli import run

    out = tmp_path / "enc.pt"
    assert run(_cli_args(shapes_bag, tmp_path / "runs", "--output", str(out), "--data.data.frame_stride", "3")) == 0
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert type(state) is dict and all(isinstance(v, torch.Tensor) for v in state.values())
    net = DispNet(num_layers=18)
    assert list(state) == list(net.encoder.state_dict())  # every encoder tensor, nothing else
    result = net.encoder.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    loaded = DispNet(num_layers=18, weights_path=out)  # the path `fit` takes (model.encoder_weights_path)
    for key, value in loaded.encoder.state_dict().items():
        assert torch.equal(value, state[key]), key
    PoseNet(num_layers=18, weights_path=out)  # 6-channel conv1 from the 3-channel one
    # the file is the trained query encoder of the run's last checkpoint
    ckpt_dir = tmp_path / "runs" / "lightning_logs" / "version_0" / "checkpoints"
    ckpt = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    prefix = "moco.query_net.encoder."
    for key, value in state.items():
        assert torch.equal(ckpt["state_dict"][prefix + key], value), key
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(ckpt_dir.parent))
    events.Reload()
    assert {"train/loss", "train/queue_top1", "train/lr"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("train/loss")) == 2
    assert (ckpt_dir.parent / "config.yaml").is_file()
    # resuming the finished run trains no further and writes the same weights again
    again = tmp_path / "again.pt"
    assert run(_cli_args(shapes_bag, tmp_path / "runs", "--output", str(again), "--data.data.frame_stride", "3", "--ckpt_path", str(ckpt_dir / "last.ckpt"))) == 0
    for key, value in torch.load(again, map_location="cpu", weights_only=True).items():
        assert torch.equal(value, state[key]), key
    with pytest.raises(ValueError, match=r"enc\.pt: weights do not fit ResNet-50"):
        DispNet(num_layers=50, weights_path=out)


def test_cli_errors_are_one_line_naming_the_file(shapes_bag, tmp_path, capsys):
    from depth_ros_training.cli import main as train_main

    def main(argv):
        return train_main(["pretrain", *argv])

    assert main(_cli_args(shapes_bag, tmp_path, "--data.data.image_topic", "/camera/missing")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{shapes_bag}: image topic /camera/missing is not in the bag; image topics: /cam/image" in err
    assert main(_cli_args(shapes_bag, tmp_path, "--model.bn_splits", "3")) == 1
    assert "data.batch_size (4) must be a multiple of model.bn_splits (3)" in capsys.readouterr().err
    assert main(_cli_args(shapes_bag, tmp_path, "--model.temperature", "0")) == 1
    assert "model.temperature must be > 0" in capsys.readouterr().err


def test_views_gradient_field_keys_and_rgb_baseline_keys():
    from depth_ros_training.pretrain.module import PretrainModule

    torch.manual_seed(0)
    batch = {"query": torch.rand(4, 3, 32, 32), "key": _step(0.6, 32, 32).expand(4, -1, -1, -1).contiguous()}
    module = PretrainModule(queue_size=8, color_jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    query, key = module.views(batch)
    torch.testing.assert_close(query, (batch["query"] - 0.45) / 0.225)
    torch.testing.assert_close(key, gradient_field(batch["key"]))  # G of the key crop, untouched
    baseline = PretrainModule(key="rgb", queue_size=8, color_jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    _, rgb_key = baseline.views(batch)
    torch.testing.assert_close(rgb_key, (batch["key"] - 0.45) / 0.225)
    jittered, _ = PretrainModule(queue_size=8, color_jitter_p=1.0).views(batch)
    assert not torch.allclose(jittered, query)


def test_config_file_parses_and_builds():
    from pathlib import Path

    from depth_ros_training.pretrain.cli import build_objects, build_parser

    config = Path(__file__).resolve().parents[2] / "config" / "pretrain.yaml"
    parser = build_parser()
    cfg = parser.parse_args(["--config", str(config)])
    assert cfg.model.key == "gradient" and cfg.model.momentum == 0.999 and cfg.model.temperature == 0.2
    model, data, resume = build_objects(cfg)
    assert model.moco.queue.size == cfg.model.queue_size and model.moco.encoder.num_layers == 18
    assert data.data_config.bags == ("data/train.mcap",) and resume.enabled


def test_stale_queue_watch_warns_once_when_top1_is_high_but_the_loss_stays_near_chance():
    from depth_ros_training.pretrain.module import StaleQueueWatch

    chance = math.log(257)
    # learning: top-1 rises as the loss falls well below chance -> no warning
    healthy = StaleQueueWatch(256, window=10)
    assert all(healthy.update(chance - 0.3 * i, min(1.0, 0.1 * i)) is None for i in range(30))
    assert healthy.warned is None
    # a drifting key network: the positive always wins, the loss hardly moves
    stale = StaleQueueWatch(256, window=10)
    messages = [stale.update(5.13, 1.0) for _ in range(25)]
    assert messages[:9] == [None] * 9  # not before a full window
    assert messages[9] == (
        "queue top-1 100% while InfoNCE is 5.13 (chance 5.55) over the last 10 steps: the positives beat the queue because "
        "its keys are stale, not because frames are told apart; raise model.momentum (MoCo: 0.999) or lower model.lr"
    )
    assert messages[10:] == [None] * 15 and stale.warned == messages[9]  # once
    # near chance with a low top-1 (nothing learnt yet) is no such case
    slow = StaleQueueWatch(256, window=10)
    assert all(slow.update(5.5, 0.01) is None for _ in range(30))
