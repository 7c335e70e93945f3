"""ZoeDepth stage 2 on held-out synthetic scenes (docs/zoedepth.md, "Measured: the stage-2 task").

    python bench/bench_zoedepth_stage2.py OUT_DIR [STEPS] [VARIANTS]

Renders small bags (64x128) into OUT_DIR, trains a relative stage 1 (DispNet, MiDaS SSI-MSE loss,
2 x STEPS steps on one corridor bag), exports it (``relative/depth.onnx``, for
``depth-ros-train eval --scale lidar``), then each stage-2 variant (STEPS steps of batch 4 on a
corridor and a room bag, label groups mixed equally) and prints held-out metric AbsRel / delta1 as
JSON lines (over a held-out corridor and room; per scene also a held-out hall, a depth range
neither stage saw); writes results_*.json. One CPU thread.
"""
import json, sys, time
from dataclasses import replace
from pathlib import Path
import torch
import lightning.pytorch as pl
torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "training"))
import test_task_zoedepth as T
from depth_ros_training.data.labelled import LabelledDataModule
from depth_ros_training.module import DepthTrainingModule
from depth_ros_training.losses.midas import ssi_mse_loss
from depth_ros_training.export import export_module
from depth_ros_training.tasks.zoedepth import ZoeDepthModule, SceneType, export_zoedepth

D = Path(sys.argv[1]); D.mkdir(parents=True, exist_ok=True)
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 30
which = sys.argv[3].split(",") if len(sys.argv) > 3 else ["logbin_attr", "softmax_attr", "logbin_noattr", "routed"]
bag = lambda name, scene, seed, n: T._bag(D / f"{name}.mcap", scene, seed, n) if not (D / f"{name}.mcap").exists() else str(D / f"{name}.mcap")
stage1_train = {"corridor": bag("c1", "corridor", 1, 24)}
train = {"corridor": bag("c2", "corridor", 2, 16), "room": bag("r3", "room", 3, 16)}
held = {"corridor": bag("c21", "corridor", 21, 12), "room": bag("r22", "room", 22, 12)}
# a scene type whose depths neither stage saw (median ~16 m against the corridor's and room's few
# metres): per scene only, so the corridor + room figures stay comparable
new_range = {"hall": bag("h23", "hall", 23, 12)}
out = {}
ck1 = D / "stage1.ckpt"
if ck1.exists():  # stage 1 of an earlier run in OUT_DIR: keep its time (bench_zoedepth_vs_velocity.py's budget)
    for earlier in sorted(D.glob("results_*.json")):
        if json.load(open(earlier)).get("stage1_s") is not None:
            out["stage1_s"] = json.load(open(earlier))["stage1_s"]
    if out.get("stage1_s") is None:
        sys.exit(f"{D}: stage1.ckpt exists but no results_*.json records its time; use a fresh OUT_DIR")
if not ck1.exists():
    t = time.time(); torch.manual_seed(0)
    s1 = DepthTrainingModule(image_height=T.H, image_width=T.W, min_depth_m=0.5, max_depth_m=20.0)
    dm = LabelledDataModule(replace(T._data_config(stage1_train), hflip=True), batch_size=4); dm.setup("fit")
    opt = torch.optim.Adam(s1.depth_net.parameters(), 1e-3); s1.train()
    mean = torch.tensor(s1.hparams.mean).view(1, 3, 1, 1); std = torch.tensor(s1.hparams.std).view(1, 3, 1, 1)
    n = 0
    while n < 2 * STEPS:
        for b in dm.train_dataloader():
            w = s1.depth_net((b["image"] - mean) / std)[0]
            tgt = torch.where(b["valid"], b["target"], torch.full_like(b["target"], float("nan")))
            loss = ssi_mse_loss(w, tgt, b["valid"]).total; opt.zero_grad(); loss.backward(); opt.step(); n += 1
            if n >= 2 * STEPS: break
    torch.save({"state_dict": s1.state_dict(), "hyper_parameters": dict(s1.hparams)}, ck1)
    export_module(s1.eval(), D / "relative", pose=False, tensorrt="off")
    out["stage1_s"] = time.time() - t
variants = {
    "logbin_attr": dict(), "softmax_attr": dict(output_distribution="softmax"), "logbin_noattr": dict(attractors=False),
    "routed": dict(scene_types=[SceneType("corridor", 0.5, 20.0), SceneType("room", 0.5, 8.0)]),
}
for name in which:
    t = time.time(); torch.manual_seed(0)
    m = ZoeDepthModule(stage1_checkpoint=str(ck1), group_names=tuple(train), n_bins=32, lr=1e-3, min_depth_m=0.5, max_depth_m=20.0,
                       image_height=T.H, image_width=T.W, **variants[name])
    before = T._held_out_metrics(m, held) if name == "logbin_attr" else None
    m.train()
    tr = pl.Trainer(max_steps=STEPS, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                    num_sanity_val_steps=0, limit_val_batches=0, enable_checkpointing=False, default_root_dir=str(D))
    tr.fit(m, LabelledDataModule(replace(T._data_config(train), hflip=True), batch_size=4))
    per = {s: T._held_out_metrics(m, {s: b}) for s, b in {**held, **new_range}.items()}
    allm = T._held_out_metrics(m, held)
    out[name] = {"abs_rel": allm[0], "delta1": allm[1], "router_acc": allm[2] if name == "routed" else None,
                 "per_scene": {s: {"abs_rel": v[0], "delta1": v[1]} for s, v in per.items()}, "before": before, "seconds": time.time() - t}
    if name in ("logbin_attr", "routed"):
        tr.save_checkpoint(D / f"{name}.ckpt", weights_only=True)
        export_zoedepth(D / f"{name}.ckpt", D / name)
    print(name, json.dumps(out[name]), flush=True)
json.dump(out, open(D / f"results_{'_'.join(which)}.json", "w"), indent=1)
