"""Run by test_ddp.py under torchrun: 2 CPU processes (gloo) train a couple of steps with
Lightning's "ddp" strategy and each writes what it saw to OUT/rank<r>.json."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

from depth_ros_training.data import DataConfig
from depth_ros_training.datamodule import BagDataModule
from depth_ros_training.module import DepthTrainingModule


class Record(pl.Callback):
    def __init__(self) -> None:
        self.indices: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.indices += batch["index"].tolist()


def main(bag: str, out: str) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    data = BagDataModule(DataConfig(bags=(bag,), height=64, width=128, val_fraction=0.0), batch_size=2)
    model = DepthTrainingModule(image_height=64, image_width=128, velocity_weight=0.05)
    rec = Record()
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[rec],
    )
    trainer.fit(model, datamodule=data)
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    Path(out, f"rank{trainer.global_rank}.json").write_text(json.dumps({
        "rank": trainer.global_rank, "world_size": trainer.world_size, "global_step": trainer.global_step,
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "indices": rec.indices, "checksum": checksum,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
