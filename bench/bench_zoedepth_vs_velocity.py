"""ZoeDepth stage 2 against the velocity-supervised self-supervised model on the same held-out scenes
and budget (issue: ZoeDepth, item 9; docs/zoedepth.md, "Against the velocity-supervised model").

    python bench/bench_zoedepth_vs_velocity.py OUT_DIR [SECONDS]

OUT_DIR is the directory of ``bench/bench_zoedepth_stage2.py OUT_DIR`` (run that first: its bags,
``stage1.ckpt``, ``logbin_attr/depth.onnx`` and ``results_*.json``). This script trains the package's
quick self-supervised recipe (:class:`~depth_ros_training.recipes.QuickRecipe`: SC-Depth losses with
the bag's odometry as velocity supervision and pose target, depth hints; the demo's recipe) on the
bags the ZoeDepth pipeline trained on (stage 1's corridor and stage 2's corridor and room) at the same
64x128 input for SECONDS of wall-clock time (default: the ZoeDepth pipeline's own time, stage 1 +
stage 2 of the default variant, from the results file), exports it, then measures both exported
models through the runtime (``depth-ros-train eval``'s library, scale policy ``model``: no scale
fitted at run time) on the held-out corridor and room (and per scene on the held-out hall, when
``bench_zoedepth_stage2.py`` rendered it), truth 0.5-20 m. Prints one JSON document and
writes ``OUT_DIR/velocity_vs_zoedepth.json``. One CPU thread.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    out_dir = Path(sys.argv[1])
    results = sorted(out_dir.glob("results_*.json"))
    if not (out_dir / "logbin_attr" / "depth.onnx").is_file() or not results:
        sys.exit(f"{out_dir}: run bench/bench_zoedepth_stage2.py {out_dir} first (no logbin_attr/depth.onnx or results_*.json)")
    zoe = {}
    for path in results:
        zoe.update(json.loads(path.read_text()))
    zoe_seconds = float(zoe.get("stage1_s", 0.0)) + float(zoe["logbin_attr"]["seconds"])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else zoe_seconds
    torch.set_num_threads(1)

    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.eval.config import EvalConfig
    from depth_ros_training.eval.evaluate import evaluate
    from depth_ros_training.export import export_module
    from depth_ros_training.recipes import QuickRecipe, quick_data_config, train_on_budget

    train = [str(out_dir / f"{n}.mcap") for n in ("c1", "c2", "r3")]
    held = {"corridor": out_dir / "c21.mcap", "room": out_dir / "r22.mcap"}
    new_range = {"hall": out_dir / "h23.mcap"} if (out_dir / "h23.mcap").is_file() else {}
    recipe = QuickRecipe()
    started = time.perf_counter()
    data = BagDataModule(quick_data_config(recipe, train, 64, 128), batch_size=recipe.batch_size, num_workers=0)
    run = train_on_budget(recipe, data, seconds, started=started, progress_bar=False)
    export_module(run.module, out_dir / "velocity", pose=False, tensorrt="off")
    models = {"velocity": out_dir / "velocity" / "depth.onnx", "zoedepth": out_dir / "logbin_attr" / "depth.onnx"}
    config = EvalConfig(min_depth_m=0.5, max_depth_m=20.0, truth_topic="/camera/depth/ground_truth", scale="model",
                        boundary=False, flicker=False, threads=1)
    report: dict = {"budget_s": seconds, "zoedepth_pipeline_s": zoe_seconds, "velocity_steps": run.steps,
                    "velocity_wall_s": run.wall_s, "models": {}}
    for name, model in models.items():
        [r] = evaluate(list(held.values()), config, models=[model])
        per_scene = {}
        for scene, bag in new_range.items():
            [h] = evaluate([bag], config, models=[model])
            per_scene[scene] = {"abs_rel": h.summary["metric"]["abs_rel"], "delta1": h.summary["metric"]["delta1"], "frames": h.summary["frames"]}
        for scene, bag in held.items():
            rows = [f for f in r.frames if f["bag"] == str(bag)]
            per_scene[scene] = {"abs_rel": sum(f["metric_abs_rel"] for f in rows) / len(rows), "frames": len(rows)}
        report["models"][name] = {"abs_rel": r.summary["metric"]["abs_rel"], "delta1": r.summary["metric"]["delta1"],
                                  "median_scaled_abs_rel": r.summary["median"]["abs_rel"], "per_scene": per_scene}
    (out_dir / "velocity_vs_zoedepth.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
