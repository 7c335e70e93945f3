"""What the gradient-field pretraining buys the depth learners (issue: pretraining, item 6).

    python bench/bench_pretrain_labels.py OUT_DIR [--stages pretrain,finetune,sc_depth]
        [--pretrain-steps 2500] [--finetune-steps 1200] [--label-scenes 1,4] [--strides 100,10,1]
        [--random-strides 3] [--sc-depth-seconds 300] [--test-seed 4001] [--parallel 2]

Renders the demo's scenes into OUT_DIR/bags (``depth-ros demo``'s defaults: 16 training corridors of
75 frames, seeds 0-15, 384x128 camera; and 3 held-out 100-frame corridors from ``--test-seed``,
default 4001: corridors no setting of the package or of this bench was chosen on), then:

1. **pretrain**: ``depth-ros-train pretrain`` on the training corridors' frames, no labels, once with
   the gradient-field key (``model.key: gradient``, the method) and once with an RGB key
   (``model.key: rgb``, plain MoCo v2), the same settings and the same number of steps
   (``--pretrain-steps``), both at the same time, one CPU thread each. Settings (options below):
   ResNet-18, views 32x96 (half the depth network's 64x192 input: four times the steps in the
   same time) cropped with an aspect ratio in 2.25..4 (the frames are 3:1), every 3rd frame (400
   frames), batch 32 in 4 BatchNorm sub-batches, queue 256, m 0.999, T 0.2, SGD lr 0.01 with the
   cosine schedule over the steps. (m 0.99 was tried first: within 100 steps the queue top-1 went to
   1 while every frame's embedding became the same vector: the positive, made by the current key
   network, beats the queue's keys made by older ones whatever the frame, which the fast-moving key
   network lets the query network exploit; MoCo's reason for m close to 1.) The loss and queue
   top-1 of the first and last steps are read from the run's log; what the task learnt is
   measured by retrieval (the left 80 % of each frame as RGB query against the keys of the right
   80 % of all frames: top-1, chance = 1 / frames), on the training corridors (every 15th frame)
   and on the held-out ones (every 10th); also for a network at its random start
   (``untrained``). Writes ``OUT_DIR/enc_gradient.pt`` and ``OUT_DIR/enc_rgb.pt`` (reused when
   present).
2. **finetune**: the label-efficiency table. ``depth-ros-train fit`` of the MiDaS task (ResNet-18
   DispNet, dense ground-truth depth, scale-and-shift-invariant loss + gradient matching) on all
   frames of the first k training corridors (``--label-scenes``: 1 -> 75 frames = 6.25 %, 4 -> 300
   = 25 %; the corridors are what the labels must cover) and on every ``stride``-th frame of all
   the training corridors (``data.stride``: 100 -> 16 labelled frames = 1.3 %, 10 -> 128 =
   10.7 %, 3 -> 400 = 33 %, 1 -> 1200 = 100 %), for the same number of steps
   (``--finetune-steps``, batch 4, Adam lr 3e-4 constant, 64x192 input), from random weights and
   from each pretrained encoder (``model.encoder_weights_path``); ``--random-strides`` are label
   fractions run from random weights only (the paper's comparison point: pretrained with 10 % vs
   random with ~30 %). Each run is exported and scored by ``depth-ros-train eval`` on the held-out
   corridors: AbsRel and delta1 after the per-frame least-squares scale and shift of the relative
   output (eval's ``aligned`` figures, truth 0.1-80 m). Two runs at a time, one thread each.
3. **sc_depth**: the demo's self-supervised task (:class:`~depth_ros.demo.DemoSettings`' recipe,
   ``--sc-depth-seconds`` of wall-clock training) from random weights and from the gradient-field
   encoder (``encoder_weights_path``: it initialises the DispNet's and the PoseNet's encoder, as in
   ``fit``), both at the same time, one thread each; scored as the demo scores: median-scaled and
   metric AbsRel over the held-out corridors. Pretraining time is reported apart from this budget.

Every run's result is kept in OUT_DIR (``finetune/<start>_s<stride>/result.json``, ``_c<k>`` for
corridors,
``sc_depth/<start>/result.json``); a rerun skips what is done. Prints one JSON document and writes
``OUT_DIR/pretrain_labels.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from depth_ros_training.pretrain.module import PretrainModule

CLI = [sys.executable, "-m", "depth_ros_training.cli"]
DEMO_TRAIN_FRAMES = 75  # DemoSettings.train_frames
STARTS = ("random", "gradient", "rgb")
_PROGRESS = re.compile(r"step (\d+)/\d+ .*loss ([0-9.]+) \(queue_top1 ([0-9.]+)\)")


def _render(out_dir: Path, test_seed: int) -> tuple[list[Path], list[Path]]:
    from depth_ros.demo import DemoSettings, _synthesize

    bags = out_dir / "bags"
    s = DemoSettings(test_seed=test_seed)
    train = sorted(bags.glob("train_*.mcap"), key=lambda p: int(p.stem.split("_")[1]))
    test = sorted(bags.glob("test*.mcap"))
    if len(train) == s.train_scenes and len(test) == s.test_scenes:
        return train, test
    bags.mkdir(parents=True, exist_ok=True)
    return _synthesize(s, bags)


def _run_all(jobs: list[tuple[str, list[str], Path]], parallel: int) -> None:
    """Run (name, argv, log) jobs, ``parallel`` at a time, one torch thread each; exit on a failure."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    running: list[tuple[str, subprocess.Popen, Path]] = []
    pending = list(jobs)
    while pending or running:
        while pending and len(running) < parallel:
            name, argv, log = pending.pop(0)
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as f:
                running.append((name, subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT), log))
        time.sleep(2.0)
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode != 0:
                    sys.exit(f"{name} failed (exit {proc.returncode}); see {log}")


def _pretrain_yaml(args: argparse.Namespace, train: list[Path], key: str, out_dir: Path) -> str:
    h, w = args.pretrain_size
    return json.dumps({
        "seed_everything": args.seed,
        "trainer": {"max_steps": args.pretrain_steps, "accelerator": "cpu", "devices": 1, "precision": "32-true",
                    "log_every_n_steps": 10, "enable_progress_bar": False, "default_root_dir": str(out_dir / f"pretrain_{key}")},
        "model": {"num_layers": 18, "key": key, "dim": 128, "queue_size": args.queue, "momentum": args.momentum,
                  "temperature": 0.2, "bn_splits": args.bn_splits, "lr": args.pretrain_lr},
        "data": {"data": {"bags": [str(b) for b in train], "frame_stride": 3, "height": h, "width": w,
                          "crop_ratio": list(args.crop_ratio)}, "batch_size": 32, "num_workers": 0},
        "checkpoint": {"every_minutes": 10.0},
    })  # JSON is YAML


def _pretrain_summary(log: Path, encoder: Path) -> dict:
    """Steps and the mean loss / queue top-1 of the first and last 10 % of the logged steps."""
    rows = [(int(m[1]), float(m[2]), float(m[3])) for m in _PROGRESS.finditer(log.read_text())]
    if not rows:
        return {"encoder": str(encoder), "error": f"no progress lines in {log}"}
    n = max(1, len(rows) // 10)
    mean = lambda xs: round(sum(xs) / len(xs), 4)  # noqa: E731
    return {"encoder": str(encoder), "steps": rows[-1][0], "loss_first": mean([r[1] for r in rows[:n]]), "loss_last": mean([r[1] for r in rows[-n:]]),
            "queue_top1_first": mean([r[2] for r in rows[:n]]), "queue_top1_last": mean([r[2] for r in rows[-n:]])}


def _retrieval(module: "PretrainModule", bags: list[Path], frame_stride: int, size: tuple[int, int]) -> dict:
    """What the contrastive task learnt, on whole frames: the left 80 % of every frame as RGB query
    (no augmentation) against the keys (gradient field or RGB) of the right 80 % of all the frames
    (60 % overlap: the same place, not the same pixels; with the same pixels an RGB key network,
    an average of the query network, would match trivially); top-1 = share of queries whose own
    frame's key is the most similar (chance 1 / frames), and the mean cosine of positives and of the
    other pairs. BatchNorm normalises with the statistics of these frames (training mode, on a copy:
    the same for a trained and an untrained network)."""
    import copy

    import torch
    import torch.nn.functional as F

    from depth_ros_training.pretrain.data import PretrainDataConfig, PretrainFrames
    from depth_ros_training.pretrain.gradient_field import gradient_field

    h, w = size
    frames = PretrainFrames(PretrainDataConfig(bags=tuple(map(str, bags)), frame_stride=frame_stride))
    n = len(frames) - len(frames) % int(module.hparams.bn_splits)  # split BatchNorm needs whole sub-batches
    rgb = torch.stack([torch.from_numpy(frames.load_rgb(i)).permute(2, 0, 1).float() / 255.0 for i in range(n)])
    width = rgb.shape[-1]
    cut = round(0.8 * width)
    left, right = (F.interpolate(v, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
                   for v in (rgb[..., :cut], rgb[..., width - cut:]))
    moco = copy.deepcopy(module.moco).train()
    with torch.no_grad():
        q = moco.query_net(module.normalise(left))
        key = gradient_field(right, module.gradient_config) if moco.key == "gradient" else module.normalise(right)
        k = moco.key_net(moco.key_input(key))
    sim = q @ k.t()
    off = sim[~torch.eye(n, dtype=torch.bool)]
    return {"frames": n, "top1": round(float((sim.argmax(1) == torch.arange(n)).float().mean()), 4), "chance": round(1 / n, 4),
            "cos_positive": round(float(sim.diag().mean()), 4), "cos_other": round(float(off.mean()), 4)}


def _finetune_yaml(args: argparse.Namespace, train: list[Path], stride: int, encoder: Path | None, run_dir: Path) -> str:
    return json.dumps({
        "task": "midas",
        "seed_everything": args.seed,
        "trainer": {"max_steps": args.finetune_steps, "accelerator": "cpu", "devices": 1, "precision": "32-true",
                    "log_every_n_steps": 50, "limit_val_batches": 0, "num_sanity_val_steps": 0, "enable_progress_bar": False,
                    "gradient_clip_val": 10.0, "default_root_dir": str(run_dir)},
        "checkpoint": {"every_minutes": 60.0},
        "model": {"network": "resnet18", "lr": args.finetune_lr, "min_depth_m": 0.1, "max_depth_m": 100.0,
                  "encoder_weights_path": None if encoder is None else str(encoder)},
        "data": {"data": {"height": 64, "width": 192, "stride": stride, "val_fraction": 0.0, "random_crop": 0.8, "hflip": True,
                          "groups": [{"name": "rgbd", "bags": [str(b) for b in train], "weight": 1.0,
                                      "label": {"kind": "metric_depth", "gt_topic": "/camera/depth/ground_truth"}}]},
                 "batch_size": 4, "num_workers": 0},
    })


def _finetune_job(args: argparse.Namespace, train: list[Path], start: str, stride: int, scenes: int, encoder: Path | None) -> tuple[str, list[str], Path] | None:
    """One fine-tuning run: every ``stride``-th frame of the first ``scenes`` training corridors."""
    name = f"{start}_s{stride}" if scenes == len(train) else f"{start}_c{scenes}"
    run_dir = args.out_dir / "finetune" / (name + (f"_seed{args.seed}" if args.seed else ""))
    if (run_dir / "result.json").exists():
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(_finetune_yaml(args, train[:scenes], stride, encoder, run_dir))
    (run_dir / "labels.json").write_text(json.dumps({"start": start, "stride": stride, "scenes": scenes,
                                                     "labelled_frames": scenes * len(range(0, DEMO_TRAIN_FRAMES, stride))}))
    argv = [sys.executable, __file__, str(args.out_dir), "--child-finetune", run_dir.name, "--seed", str(args.seed)]
    return f"fine-tuning {name}", argv, run_dir / "run.log"


def _child_finetune(out_dir: Path, test: list[Path], name: str, seed: int) -> None:
    """Child: fit (config written by the parent into finetune/NAME), export, eval; writes result.json."""
    run_dir = out_dir / "finetune" / name
    labels = json.loads((run_dir / "labels.json").read_text())
    t = time.perf_counter()
    subprocess.run([*CLI, "fit", "--config", str(run_dir / "config.yaml")], check=True)
    fit_s = time.perf_counter() - t
    [ckpt] = sorted(run_dir.glob("lightning_logs/version_*/checkpoints/last.ckpt"))[-1:]
    subprocess.run([*CLI, "export", str(ckpt), "-o", str(run_dir / "model"), "--no-pose", "--tensorrt", "off", "--no-check"], check=True)
    subprocess.run([*CLI, "eval", "--model", str(run_dir / "model" / "depth.onnx"), "--backend", "onnxruntime-cpu", "--threads", "1",
                    "--no-plots", "--no-progress", "--no-boundary", "--no-flicker", "--min-depth", "0.1", "--max-depth", "80",
                    "-o", str(run_dir / "eval"), *map(str, test)], check=True)
    [model] = json.loads((run_dir / "eval" / "summary.json").read_text())["models"]
    aligned = model["aligned"]
    (run_dir / "result.json").write_text(json.dumps({
        **labels, "seed": seed, "fit_s": round(fit_s, 1),
        "aligned_abs_rel": aligned["abs_rel"], "aligned_delta1": aligned["delta1"], "frames": aligned["frames"],
    }))


def _child_sc_depth(out_dir: Path, test: list[Path], start: str, seconds: float, seed: int) -> None:
    """Child: the demo's recipe from random weights or an encoder file, export, score as the demo does."""
    import torch

    torch.set_num_threads(1)
    from depth_ros.demo import DemoSettings, score_scenes
    from depth_ros.bag.infer import InferConfig, infer_bag
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.export import export_module
    from depth_ros_training.recipes import quick_data_config, train_on_budget

    s = DemoSettings()
    train = sorted((out_dir / "bags").glob("train_*.mcap"))
    run_dir = out_dir / "sc_depth" / start
    encoder = None if start == "random" else str(out_dir / f"enc_{start}.pt")
    started = time.perf_counter()
    data = BagDataModule(quick_data_config(s, train, s.net_height, s.net_width), batch_size=s.batch_size, num_workers=0)
    run = train_on_budget(s, data, seconds, started=started, seed=seed, progress_bar=False, module_overrides={"encoder_weights_path": encoder})
    exported = export_module(run.module, run_dir / "model", pose=False, tensorrt="off", name=f"sc_depth_{start}")
    outs = []
    for i, bag in enumerate(test):
        out = run_dir / f"depth_{i}.mcap"
        infer_bag(bag, out, exported.paths["depth"], InferConfig(overwrite=True, backend="onnxruntime-cpu", cloud=False, threads=1, image_topic="/camera/image_raw"))
        outs.append(out)
    metrics = score_scenes(list(zip(outs, test)), s.max_depth_m)
    (run_dir / "result.json").write_text(json.dumps({
        "start": start, "encoder": encoder, "steps": run.steps, "wall_s": round(run.wall_s, 1),
        "median_abs_rel": metrics["median"]["abs_rel"], "metric_abs_rel": metrics["metric"]["abs_rel"],
        "median_delta1": metrics["median"]["delta1"], "frames": metrics["frames"]["matched"],
    }))


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--stages", default="pretrain,finetune,sc_depth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-seed", type=int, default=4001, help="first seed of the 3 held-out corridors (used when OUT_DIR has no bags yet)")
    parser.add_argument("--pretrain-steps", type=int, default=2500)
    parser.add_argument("--pretrain-size", type=_size, default=(32, 96), help="HxW of the pretraining views")
    parser.add_argument("--crop-ratio", type=float, nargs=2, default=(2.25, 4.0), help="crop aspect ratio range (w/h)")
    parser.add_argument("--queue", type=int, default=256)
    parser.add_argument("--momentum", type=float, default=0.999)
    parser.add_argument("--pretrain-lr", type=float, default=0.01)
    parser.add_argument("--bn-splits", type=int, default=4, help="BatchNorm sub-batches of the batch of 32 (model.bn_splits)")
    parser.add_argument("--finetune-steps", type=int, default=1200)
    parser.add_argument("--finetune-lr", type=float, default=3e-4)
    parser.add_argument("--label-scenes", default="1,4", help="labels on all frames of the first N training corridors, run from every start")
    parser.add_argument("--strides", default="100,10,1", help="labels on every n-th frame of all training corridors, run from every start")
    parser.add_argument("--random-strides", default="3", help="label strides run from random weights only")
    parser.add_argument("--starts", default=",".join(STARTS))
    parser.add_argument("--sc-depth-seconds", type=float, default=300.0)
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time, one thread each (this machine: 2 cores)")
    parser.add_argument("--child-finetune", help=argparse.SUPPRESS)
    parser.add_argument("--child-sc-depth", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stages = set(args.stages.split(","))
    unknown = stages - {"pretrain", "finetune", "sc_depth"}
    if unknown:
        parser.error(f"--stages: unknown {sorted(unknown)}")
    starts = [s for s in args.starts.split(",") if s]
    if set(starts) - set(STARTS):
        parser.error(f"--starts: choose from {', '.join(STARTS)}")
    train, test = _render(args.out_dir, args.test_seed)
    if args.child_finetune:
        _child_finetune(args.out_dir, test, args.child_finetune, args.seed)
        return
    if args.child_sc_depth:
        _child_sc_depth(args.out_dir, test, args.child_sc_depth, args.sc_depth_seconds, args.seed)
        return

    report: dict = {"test_seed": args.test_seed, "train_bags": len(train), "held_out_bags": len(test), "seed": args.seed}
    keys = [k for k in ("gradient", "rgb") if k in starts or (k == "gradient" and "sc_depth" in stages)]
    if "pretrain" in stages:
        jobs = []
        for key in keys:
            if not (args.out_dir / f"enc_{key}.pt").exists():
                config = args.out_dir / f"pretrain_{key}.yaml"
                config.write_text(_pretrain_yaml(args, train, key, args.out_dir))
                jobs.append((f"pretraining ({key} key)", [*CLI, "pretrain", "--config", str(config), "--output", str(args.out_dir / f"enc_{key}.pt")],
                             args.out_dir / f"pretrain_{key}.log"))
        t = time.perf_counter()
        _run_all(jobs, args.parallel)
        report["pretrain_wall_s"] = round(time.perf_counter() - t, 1) if jobs else None
    report["pretrain"] = {k: _pretrain_summary(args.out_dir / f"pretrain_{k}.log", args.out_dir / f"enc_{k}.pt")
                          for k in keys if (args.out_dir / f"pretrain_{k}.log").exists()}
    if report["pretrain"]:
        import torch

        from depth_ros_training.pretrain.module import PretrainModule

        torch.manual_seed(args.seed)
        for k, summary in list(report["pretrain"].items()):
            [ckpt] = sorted((args.out_dir / f"pretrain_{k}").glob("lightning_logs/version_*/checkpoints/last.ckpt"))[-1:] or [None]
            if ckpt is None:
                continue
            trained = PretrainModule.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True)
            untrained = PretrainModule(**dict(trained.hparams))
            for name, module in (("", trained), ("untrained_", untrained)):
                summary[f"{name}retrieval_train_frames"] = _retrieval(module, train, 15, args.pretrain_size)
                summary[f"{name}retrieval_held_out_frames"] = _retrieval(module, test, 10, args.pretrain_size)

    if "finetune" in stages:
        jobs = []
        n = len(train)
        grid = [(s, c, 1) for c in _ints(args.label_scenes) for s in starts]
        grid += [(s, n, st) for st in _ints(args.strides) for s in starts]
        grid += [("random", n, st) for st in _ints(args.random_strides) if "random" in starts]
        for start, scenes, stride in grid:
            encoder = None if start == "random" else args.out_dir / f"enc_{start}.pt"
            if encoder is not None and not encoder.exists():
                sys.exit(f"{encoder}: no pretrained encoder; run the pretrain stage first")
            if not 1 <= scenes <= n:
                sys.exit(f"--label-scenes: {scenes} is not in 1..{n}")
            job = _finetune_job(args, train, start, stride, scenes, encoder)
            if job:
                jobs.append(job)
        _run_all(jobs, args.parallel)
    results = [json.loads(p.read_text()) for p in sorted((args.out_dir / "finetune").glob("*/result.json"))]
    report["finetune"] = {"steps": args.finetune_steps, "lr": args.finetune_lr, "batch": 4, "runs": results}

    if "sc_depth" in stages:
        jobs = [(f"SC-Depth from {start}", [sys.executable, __file__, str(args.out_dir), "--child-sc-depth", start,
                                             "--sc-depth-seconds", str(args.sc_depth_seconds), "--seed", str(args.seed)],
                 args.out_dir / "sc_depth" / start / "run.log")
                for start in ("random", "gradient") if not (args.out_dir / "sc_depth" / start / "result.json").exists()]
        _run_all(jobs, args.parallel)
    report["sc_depth"] = [json.loads(p.read_text()) for p in sorted((args.out_dir / "sc_depth").glob("*/result.json"))]
    (args.out_dir / "pretrain_labels.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
