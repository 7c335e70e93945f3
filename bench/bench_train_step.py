"""Training-step throughput of DepthTrainingModule on the CPU (prints JSON).

Times, on random images in [0, 1] (as the samples carry them; the networks normalise them at
their input; the data path is not measured): the full step (forward, SC-Depth
losses, velocity term, backward, Adam), the networks alone (depth on target + sources, pose
on every pair, forward + backward of a dummy loss), and the loss evaluation alone (forward
and backward through the losses with the network outputs held fixed).

    python bench/bench_train_step.py [--height 128 --width 416 --batch 4 --steps 5] [--hint-weight 2]
        [--network-dtype bfloat16]

``--hint-weight`` > 0 turns the depth-hint term on in the full step and also times the hint
computation alone (plane sweep at half resolution over 32 depths + the hint's reprojection
error that gates it), reported as ``hints_s``. ``--network-dtype bfloat16`` runs the networks'
passes under bfloat16 autocast (``DepthTrainingModule(network_dtype=...)``; the losses stay
float32); the JSON says whether this CPU has native bfloat16.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from depth_ros_training.losses import edge_aware_smoothness, sc_depth_loss, velocity_loss
from depth_ros_training.models import pose_vec_to_mat
from depth_ros_training.module import DepthTrainingModule, bf16_supported


def _batch(b: int, h: int, w: int, sources: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[0.58 * w, 0, w / 2 - 0.5], [0, 1.92 * h, h / 2 - 0.5], [0, 0, 1]], dtype=torch.float32)
    return {
        "tgt": torch.rand(b, 3, h, w, generator=g),
        "srcs": torch.rand(b, sources, 3, h, w, generator=g),
        "K": K.expand(b, 3, 3).clone(),
        "distance_m": torch.full((b, sources), 0.5),
    }


def _time(fn, steps: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=416)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--hint-weight", type=float, default=0.0, help="depth-hint weight (0 = off)")
    p.add_argument("--pose-from-inverse", action="store_true", help="invert T_src_tgt instead of a second PoseNet pass")
    p.add_argument("--network-dtype", choices=("float32", "bfloat16"), default="float32", help="the networks' autocast dtype")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = DepthTrainingModule(image_height=a.height, image_width=a.width, velocity_weight=0.05, pose_from_inverse=a.pose_from_inverse, hint_weight=a.hint_weight, network_dtype=a.network_dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = _batch(a.batch, a.height, a.width)
    b, s = batch["srcs"].shape[:2]

    def full_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss, _, _ = model.shared_step(batch, "train")
        loss.backward()
        opt.step()

    def networks_only() -> None:
        opt.zero_grad(set_to_none=True)
        frames = torch.cat([batch["tgt"], batch["srcs"].flatten(0, 1)])
        w, _ = model.predict_depth(frames)
        poses = [model.predict_pose(batch["tgt"], batch["srcs"][:, i]) for i in range(s)]
        if not a.pose_from_inverse:
            poses += [model.predict_pose(batch["srcs"][:, i], batch["tgt"]) for i in range(s)]
        (w.mean() + sum(p.sum() for p in poses)).backward()

    with torch.no_grad():
        frames = torch.cat([batch["tgt"], batch["srcs"].flatten(0, 1)])
        w0, d0 = model.predict_depth(frames)
        v0 = [model.predict_pose(batch["tgt"], batch["srcs"][:, i]) for i in range(s)]

    def losses_only() -> None:
        w = w0.clone().requires_grad_(True)
        depth = d0.clone().requires_grad_(True)
        vecs = [v.clone().requires_grad_(True) for v in v0]
        poses = [pose_vec_to_mat(v) for v in vecs]
        inv = [torch.linalg.inv(T) for T in poses]
        tgt01 = batch["tgt"]
        srcs01 = list(batch["srcs"].unbind(1))
        src_d = list(depth[b:].view(b, s, 1, a.height, a.width).unbind(1))
        terms = sc_depth_loss(tgt01, srcs01, depth[:b], src_d, poses, inv, batch["K"])
        loss = terms.photometric + 0.5 * terms.geometry + 0.1 * edge_aware_smoothness(w[:b], tgt01)
        loss = loss + sum(velocity_loss(v[:, 3:], batch["distance_m"][:, i]) for i, v in enumerate(vecs))
        loss.backward()

    def hints_only() -> None:
        from depth_ros_training.losses import hint_depth, min_reprojection_error

        hp = model.hparams
        with torch.no_grad():
            tgt01 = batch["tgt"]
            srcs01 = list(batch["srcs"].unbind(1))
            poses = [pose_vec_to_mat(v) for v in v0]
            hint = hint_depth(tgt01, srcs01, poses, batch["K"], hp.min_depth_m, hp.max_depth_m, hp.hint_depths, hp.hint_downsample)
            min_reprojection_error(tgt01, srcs01, hint, poses, batch["K"])  # the network's error comes from the SC-Depth loss

    model.train()
    t_full = _time(full_step, a.steps)
    t_hints = _time(hints_only, a.steps) if a.hint_weight > 0 else None
    t_net = _time(networks_only, a.steps)
    t_loss = _time(losses_only, a.steps)
    med = statistics.median
    print(json.dumps({
        "height": a.height, "width": a.width, "batch": a.batch, "sources": s, "threads": a.threads,
        "pose_from_inverse": a.pose_from_inverse,
        "network_dtype": a.network_dtype, "native_bf16": bf16_supported(),
        "step_s": med(t_full), "samples_per_s": a.batch / med(t_full),
        "networks_fwd_bwd_s": med(t_net), "losses_fwd_bwd_s": med(t_loss),
        "loss_share_of_step": med(t_loss) / med(t_full),
        "hint_weight": a.hint_weight,
        "hints_s": med(t_hints) if t_hints else None,
        "note": "noisy (shared machine)",
    }))


if __name__ == "__main__":
    main()
