"""Accuracy of the light network against the ResNet-18 DispNet trained for the same budget on the
same bags, in FP32 and INT8 (issue: camera rate, items 3 and 4).

    python bench/bench_light_accuracy.py OUT_DIR [--seconds 300] [--seed 0] [--calibration-frames 64]
                                         [--networks resnet,light]

Renders the demo's scenes (``depth-ros demo``'s defaults: 16 training corridors, 3 held-out
corridors of other seeds, 384x128 camera) into OUT_DIR, then trains the demo's recipe
(:class:`~depth_ros_training.recipes.QuickRecipe`: SC-Depth losses, odometry velocity supervision,
depth hints; no labels) once with ``model.depth_network: resnet`` (ResNet-18) and once with
``light`` (:class:`~depth_ros_training.models.light_dispnet.LightDispNet`), at the demo's 64x192
input, for SECONDS of wall-clock time each. The two trainings run **at the same time, one CPU
thread each**, so that both see the same machine load: the budget is equal in wall time and in
conditions. Each trained network is exported (FP32 ``depth.onnx``) and quantised (INT8 QDQ,
``depth.int8.onnx``, calibrated on the first training bag's frames, as ``depth-ros-train export
--int8 --calibration-bag`` does). All four models are then scored through the runtime on the
held-out corridors (``depth-ros-train eval``'s library, truth 0.1-80 m as the demo scores):
median-scaled AbsRel (the issue's figure), metric AbsRel (no scale fitted), delta1. The FP32 run
also runs each variant's exported pose network as the pose node does (``--pose-model``): ATE
(se(3), metres) and RPE (translation %) of its visual odometry against the bags' odometry,
averaged over the held-out bags (``pose``). ``infer`` gives
``depth-ros infer``'s frames per second of each model on one held-out bag (2 threads, no cloud).

``--networks`` picks the variants (:data:`VARIANTS`; ratios are to ``resnet`` when it trains,
else to the first): ``light_pose`` is the light depth network with the light pose network too
(``model.pose_network: light``), whose training steps spend less time on PoseNet;
``resnet_light_pose`` the ResNet-18 DispNet with the light pose network. The variants train at the
same time, one thread each: give two (this machine has two cores).

Speed at 192x640 is ``bench/bench_light_net.py``'s (speed does not depend on the weights).
Prints one JSON document and writes ``OUT_DIR/light_accuracy.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: variant -> the module's network options.
VARIANTS = {
    "resnet": {"depth_network": "resnet"},
    "light": {"depth_network": "light"},
    "light_pose": {"depth_network": "light", "pose_network": "light"},
    "resnet_light_pose": {"depth_network": "resnet", "pose_network": "light"},
}


def _train_child(out_dir: Path, network: str, seconds: float, seed: int) -> None:
    """Child process: train one network on the rendered training bags, export it, write its run figures."""
    import torch

    torch.set_num_threads(1)
    from depth_ros.demo import DemoSettings
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.export import export_module
    from depth_ros_training.recipes import quick_data_config, train_on_budget

    s = DemoSettings()
    train = sorted(str(p) for p in (out_dir / "bags").glob("train_*.mcap"))
    started = time.perf_counter()
    data = BagDataModule(quick_data_config(s, train, s.net_height, s.net_width), batch_size=s.batch_size, num_workers=0)
    run = train_on_budget(s, data, seconds, started=started, seed=seed, progress_bar=False, module_overrides=VARIANTS[network])
    export_module(run.module, out_dir / network, pose=True, tensorrt="off", name=f"{network}_demo_recipe")
    info = {"steps": run.steps, "step_s": run.step_s, "wall_s": run.wall_s, "network_dtype": run.network_dtype}
    (out_dir / network / "train.json").write_text(json.dumps(info))


def _render(out_dir: Path, test_seed: int | None) -> tuple[list[Path], list[Path]]:
    from depth_ros.demo import DemoSettings, _synthesize

    bags = out_dir / "bags"
    train = sorted(bags.glob("train_*.mcap"))
    test = sorted(bags.glob("test*.mcap"))
    s = DemoSettings() if test_seed is None else DemoSettings(test_seed=test_seed)
    if len(train) == s.train_scenes and len(test) == s.test_scenes:
        return train, test
    bags.mkdir(parents=True, exist_ok=True)
    return _synthesize(s, bags)


def _pose_summary(bags: list[dict]) -> dict:
    """Mean ATE (se(3), m) and RPE (translation %, se(3)) of the pose model over the bags."""
    odometry = [b.get("odometry") or {} for b in bags]
    usable = [o["se3"] for o in odometry if "se3" in o]
    if not usable:
        return {"error": [o.get("error", "no odometry") for o in odometry]}
    rpe = [u["rpe"]["translation_pct"] for u in usable if u.get("rpe")]
    return {"bags": len(usable), "ate_se3_rmse_m": round(sum(u["ate"]["rmse_m"] for u in usable) / len(usable), 4),
            "rpe_translation_pct": round(sum(rpe) / len(rpe), 2) if rpe else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seconds", type=float, default=300.0, help="training budget of each network (wall-clock seconds)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (weights, sampling, augmentation) of both networks")
    parser.add_argument("--calibration-frames", type=int, default=64)
    parser.add_argument("--networks", default="resnet,light", help=f"comma-separated variants of {', '.join(VARIANTS)}")
    parser.add_argument("--test-seed", type=int, default=None,
                        help="first seed of the scored corridors (default: the demo's held-out 2001; the demo's settings "
                             "were chosen on 1001-1005: score choices there). Used when OUT_DIR has no bags yet")
    parser.add_argument("--child", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    networks = tuple(dict.fromkeys(args.networks.split(",")))
    unknown = [n for n in networks if n not in VARIANTS]
    if unknown:
        parser.error(f"--networks: unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.child:
        _train_child(args.out_dir, args.child, args.seconds, args.seed)
        return

    import torch

    from depth_ros.bag.infer import InferConfig, infer_bag
    from depth_ros.inference.quantize import QuantizeConfig, calibration_inputs, quantize_model
    from depth_ros.inference.spec import load_model_spec
    from depth_ros_training.eval.config import EvalConfig
    from depth_ros_training.eval.evaluate import evaluate

    train, test = _render(args.out_dir, args.test_seed)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    children = {
        net: subprocess.Popen([sys.executable, __file__, str(args.out_dir), "--seconds", str(args.seconds), "--seed", str(args.seed), "--child", net], env=env)
        for net in networks
    }
    for net, child in children.items():
        if child.wait() != 0:
            sys.exit(f"training the {net} network failed (exit {child.returncode})")
    torch.set_num_threads(2)
    quant = QuantizeConfig(frames=args.calibration_frames)
    config = EvalConfig(min_depth_m=0.1, max_depth_m=80.0, truth_topic="/camera/depth/ground_truth", image_topic="/camera/image_raw",
                        scale="model", boundary=False, flicker=False, threads=2)
    report: dict = {"test_seed": args.test_seed, "budget_s": args.seconds, "variants": {n: VARIANTS[n] for n in networks}, "seed": args.seed, "input": "192x64", "train_bags": len(train), "held_out_bags": len(test),
                    "calibration": {"bag": train[0].name, "frames": args.calibration_frames}, "models": {}}
    for net in networks:
        fp32 = args.out_dir / net / "depth.onnx"
        inputs = calibration_inputs(train[0], load_model_spec(fp32), quant)
        int8 = quantize_model(fp32, fp32.with_name("depth.int8.onnx"), inputs, quant, source=train[0].name)
        training = json.loads((args.out_dir / net / "train.json").read_text())
        for precision, model in (("fp32", fp32), ("int8", int8)):
            pose_model = str(args.out_dir / net / "pose.onnx") if precision == "fp32" else None
            [r] = evaluate([str(t) for t in test], dataclasses.replace(config, pose_model=pose_model), models=[model])
            fps = infer_bag(test[0], args.out_dir / f"{net}_{precision}_out.mcap", model,
                            InferConfig(cloud=False, copy_inputs=False, overwrite=True, backend="onnxruntime-cpu", threads=2)).fps
            report["models"][f"{net}_{precision}"] = {
                "training": training,
                "median_scaled_abs_rel": r.summary["median"]["abs_rel"], "metric_abs_rel": r.summary["metric"]["abs_rel"],
                "delta1_median_scaled": r.summary["median"]["delta1"], "frames": r.summary["frames"], "infer_fps": round(fps, 1),
            }
            if pose_model is not None:
                report["models"][f"{net}_{precision}"]["pose"] = _pose_summary(r.bags)
    m = report["models"]
    reference = "resnet" if "resnet" in networks else networks[0]
    base = m[f"{reference}_fp32"]["median_scaled_abs_rel"]
    report[f"abs_rel_vs_{reference}_fp32"] = {k: round(v["median_scaled_abs_rel"] / base, 3) for k, v in m.items()}
    report["int8_vs_fp32"] = {net: round(m[f"{net}_int8"]["median_scaled_abs_rel"] / m[f"{net}_fp32"]["median_scaled_abs_rel"], 3) for net in networks}
    (args.out_dir / "light_accuracy.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
