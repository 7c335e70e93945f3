"""DDP: two CPU processes (gloo) launched by torchrun train two steps with strategy "ddp"."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from depth_ros.synthetic import SynthConfig

from bagfactory import write_test_bag

pytestmark = pytest.mark.slow


def test_ddp_two_cpu_processes(tmp_path):
    bag = write_test_bag(tmp_path / "train.mcap", SynthConfig(width=128, height=64, frames=12, lidar_beams=0, seed=2))
    out = tmp_path / "out"
    out.mkdir()
    worker = Path(__file__).with_name("ddp_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(worker.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(29500 + os.getpid() % 1000),
           str(worker), str(bag), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["global_step"] == 2 and r["backend"] == "gloo" for r in ranks)
    # DistributedSampler: the ranks saw different samples
    assert not set(ranks[0]["indices"]) & set(ranks[1]["indices"])
    assert len(ranks[0]["indices"]) == 4
    # gradients were all-reduced: identical weights on both ranks after the steps
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=1e-9, abs=1e-9)
