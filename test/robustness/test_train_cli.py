"""``depth-ros-train`` under abuse: bags without camera_info, odometry or enough frames, missing
and truncated bags, out-of-range values, pickled checkpoints for fit / validate / export (one
line each, exit 1, nothing executed); ``--verbose`` and real bugs keep their traceback; a
DataLoader worker's error is unwrapped; resume checkpoints written independently of validation
(also under ``kill -9``); exported ONNX files readable by other users and checked against their
ModelSpec after writing."""
from __future__ import annotations

import os
import pathlib
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import REPO, TORCH_AS, assert_one_line_error, run_limited

sys.path.insert(0, str(REPO / "test" / "training"))  # bagfactory: the training tests' bag writer

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from depth_ros.errors import BagError, ModelError  # noqa: E402
from depth_ros.synthetic import SynthConfig  # noqa: E402
from depth_ros_training.cli import describe_error, main  # noqa: E402

from bagfactory import write_test_bag  # noqa: E402
from step_probe import StartStep  # noqa: E402

SYNTH = SynthConfig(width=128, height=64, frames=8, lidar_beams=0, seed=4)


class _SideEffect:
    """A pickle payload: unpickling it would create ``marker`` (a stand-in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny bags (good, no camera_info, no odometry, 2 frames, truncated) and a pickled checkpoint."""
    d = tmp_path_factory.mktemp("train_cli")
    out = {
        "ok": write_test_bag(d / "ok.mcap", SYNTH),
        "noinfo": write_test_bag(d / "noinfo.mcap", SYNTH, camera_info=False),
        "noodom": write_test_bag(d / "noodom.mcap", SYNTH, odometry=False),
        "short": write_test_bag(d / "short.mcap", SYNTH.replace(frames=2)),
    }
    data = out["ok"].read_bytes()
    out["trunc"] = d / "trunc.mcap"
    out["trunc"].write_bytes(data[: len(data) // 2])
    out["marker"] = d / "pwned"
    out["evil"] = d / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"hook": _SideEffect(out["marker"])}}, out["evil"])
    out["root"] = d / "runs"
    return out


def _fit_args(files: dict[str, Path], bag: str = "ok", *extra: str) -> list[str]:
    return [
        "--trainer.max_steps", "2", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.num_sanity_val_steps", "0", "--trainer.default_root_dir", str(files["root"]),
        "--data.data.bags", f"[{files[bag]}]" if bag in files else f"[{files['root'] / bag}]",
        "--data.data.height", "64", "--data.data.width", "128", "--data.data.val_fraction", "0",
        "--data.batch_size", "2", "--data.num_workers", "0", *extra,
    ]


CASES = {
    "bag without camera_info": (["fit", "noinfo"], ["noinfo.mcap", "camera_info"]),
    "too few frames": (["fit", "short"], ["short.mcap", "2 images", "need at least 3"]),
    "truncated bag": (["fit", "trunc"], ["trunc.mcap", "cannot read bag"]),
    "missing bag": (["fit", "missing.mcap"], ["missing.mcap", "not found"]),
    "no odometry for velocity supervision": (["fit", "noodom", "--model.velocity_weight", "0.1"], ["noodom.mcap", "odometry"]),
    "negative lr": (["fit", "ok", "--model.lr", "-0.001"], ["model.lr", "positive", "-0.001"]),
    "batch size 0": (["fit", "ok", "--data.batch_size", "0"], ["data.batch_size", ">= 1", "got 0"]),
    "negative weight decay": (["fit", "ok", "--model.weight_decay", "-1"], ["model.weight_decay", ">= 0"]),
    "bad resume interval": (["fit", "ok", "--checkpoint.every_minutes", "0"], ["checkpoint.every_minutes", "positive"]),
    "Trainer refuses a value": (["fit", "ok", "--trainer.max_steps", "-5"], ["trainer.max_steps", "-5"]),
    "pickled checkpoint to fit": (["fit", "ok", "--ckpt_path", "{evil}"], ["evil.ckpt", "not a weights-only checkpoint"]),
    "pickled checkpoint to validate": (["validate", "ok", "--ckpt_path", "{evil}"], ["evil.ckpt", "not a weights-only checkpoint"]),
    "missing checkpoint to validate": (["validate", "ok", "--ckpt_path", "{root}/none.ckpt"], ["none.ckpt", "not found"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_expected_errors_are_one_line(case: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (command, bag, *extra), needles = CASES[case]
    extra = [a.format(evil=files["evil"], root=files["root"]) for a in extra]
    capsys.readouterr()
    code = main([command, *_fit_args(files, bag, *extra)])
    captured = capsys.readouterr()
    assert_one_line_error(subprocess.CompletedProcess([], code, captured.out, captured.err), *needles)
    assert not files["marker"].exists()


def test_pickled_checkpoint_to_export_is_one_line(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", str(files["evil"]), "-o", str(tmp_path / "model")])
    captured = capsys.readouterr()
    assert_one_line_error(subprocess.CompletedProcess([], code, captured.out, captured.err), "evil.ckpt", "not a weights-only checkpoint")
    assert not files["marker"].exists()
    assert not (tmp_path / "model" / "depth.onnx").exists()


def test_command_line_errors_end_to_end(files: dict[str, Path], tmp_path: Path, cli_bin: Path) -> None:
    """The installed entry point: one line, exit 1; ``-v`` adds the traceback."""
    exe = str(cli_bin / "depth-ros-train")
    proc = run_limited([exe, "fit", *_fit_args(files, "noinfo")], as_bytes=TORCH_AS)
    assert_one_line_error(proc, "noinfo.mcap", "camera_info")

    proc = run_limited([exe, "export", str(files["evil"]), "-o", str(tmp_path / "m"), "--tensorrt", "off"], as_bytes=TORCH_AS)
    assert_one_line_error(proc, "evil.ckpt", "not a weights-only checkpoint")
    assert not files["marker"].exists()

    proc = run_limited([exe, "fit", "-v", *_fit_args(files, "ok", "--model.lr", "-1")], as_bytes=TORCH_AS)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("depth-ros-train fit: error: model.lr must be")


def test_unexpected_exception_keeps_its_traceback(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import depth_ros_training.export as export

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(export, "export_checkpoint", broken)
    with pytest.raises(ZeroDivisionError):
        main(["export", str(files["evil"]), "-o", str(tmp_path / "m")])


class _BrokenFrames(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int):
        raise BagError("/data/run.mcap: image 7 on /camera/image_raw does not decode")


def test_dataloader_worker_error_is_unwrapped() -> None:
    """torch re-raises a worker's exception with the worker's whole traceback as its message."""
    loader = torch.utils.data.DataLoader(_BrokenFrames(), num_workers=1)
    with pytest.raises(BagError) as info:
        next(iter(loader))
    assert "Traceback" in str(info.value)  # the wrapping this test is about
    assert describe_error(info.value) == "/data/run.mcap: image 7 on /camera/image_raw does not decode"


# -- resume checkpoints ----------------------------------------------------------------------

def _resume_one_step(files: dict[str, Path], ckpt: Path, saved_step: int) -> None:
    """Resume from ``ckpt`` for one step: it must start at ``saved_step``."""
    from depth_ros_training.data import DataConfig
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.module import DepthTrainingModule

    from depth_ros_training.checkpoint import SafeCheckpointIO

    data = DataConfig(bags=(str(files["ok"]),), height=64, width=128, val_fraction=0.0)
    rec = StartStep()
    trainer = pl.Trainer(
        max_steps=saved_step + 1, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=[rec], plugins=[SafeCheckpointIO()],
    )
    trainer.fit(DepthTrainingModule(image_height=64, image_width=128), BagDataModule(data, batch_size=2), ckpt_path=str(ckpt), weights_only=True)
    assert rec.start_step == saved_step and rec.steps_run == 1 and trainer.global_step == saved_step + 1


# validation every 1000 steps, as the shipped config/train.yaml: it never runs in these runs
_NO_VALIDATION = ["--trainer.val_check_interval", "1000", "--trainer.check_val_every_n_epoch", "null"]


class _CrashAt(pl.Callback):
    """Stands in for a kill: the run dies before its step ``step`` (no checkpoint at exit)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step - 1:
            raise _Killed


class _Killed(Exception):
    pass


def test_resume_checkpoint_between_validations(files: dict[str, Path], tmp_path: Path) -> None:
    """Validation every 1000 steps (the shipped config) and a run that dies at step 3: the
    resume checkpoint of step 2 is there, the only full checkpoint, and resumes at step 2."""
    from depth_ros_training.checkpoint import ResumeCheckpoint, SafeCheckpointIO, checkpoint_callbacks
    from depth_ros_training.data import DataConfig
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.module import DepthTrainingModule

    data = DataConfig(bags=(str(files["ok"]),), height=64, width=128, val_fraction=0.0)
    callbacks = checkpoint_callbacks(ResumeCheckpoint(every_minutes=None, every_n_steps=2, dirpath=str(tmp_path / "ckpt")))
    trainer = pl.Trainer(
        max_steps=100, val_check_interval=1000, check_val_every_n_epoch=None, accelerator="cpu", devices=1,
        logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
        callbacks=[*callbacks, _CrashAt(3)], plugins=[SafeCheckpointIO()],
    )
    with pytest.raises(_Killed):
        trainer.fit(DepthTrainingModule(image_height=64, image_width=128), BagDataModule(data, batch_size=2))
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["last.ckpt"]
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2
    _resume_one_step(files, tmp_path / "ckpt" / "last.ckpt", 2)


@pytest.mark.parametrize("policy", ["full", "weights", "off"])
def test_after_validation_checkpoint_policy(files: dict[str, Path], tmp_path: Path, policy: str) -> None:
    """``checkpoint.after_validation``: full (resumable, shares last.ckpt), weights (no optimiser
    state, no last.ckpt of its own) or off; the resume last.ckpt is full in every case. (Without
    a validation set Lightning writes this checkpoint at the end of each epoch.)"""
    from depth_ros_training.checkpoint import ResumeCheckpoint, SafeCheckpointIO, checkpoint_callbacks
    from depth_ros_training.data import DataConfig
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.module import DepthTrainingModule

    data = DataConfig(bags=(str(files["ok"]),), height=64, width=128, val_fraction=0.0)
    ckpt = tmp_path / "ckpt"
    resume = ResumeCheckpoint(every_minutes=None, every_n_steps=100, dirpath=str(ckpt), after_validation=policy)
    callbacks = checkpoint_callbacks(resume)
    for cb in callbacks:  # the after-validation checkpoint writes next to last.ckpt
        cb.dirpath = str(ckpt)
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False,  # no validation set: saved at the epoch's end
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path),
        callbacks=callbacks, plugins=[SafeCheckpointIO()],
    )
    trainer.fit(DepthTrainingModule(image_height=64, image_width=128), BagDataModule(data, batch_size=2))
    names = sorted(p.name for p in ckpt.iterdir())
    assert "last.ckpt" in names  # resume's final state
    assert torch.load(ckpt / "last.ckpt", map_location="cpu", weights_only=True)["optimizer_states"]
    validation = [n for n in names if n != "last.ckpt"]
    if policy == "off":
        assert validation == []
        return
    assert len(validation) == 1, names  # the newest only
    saved = torch.load(ckpt / validation[0], map_location="cpu", weights_only=True)
    assert "state_dict" in saved and "hyper_parameters" in saved
    assert ("optimizer_states" in saved) == (policy == "full")


def test_after_validation_policy_refuses_unknown_values() -> None:
    from depth_ros_training.checkpoint import ResumeCheckpoint

    with pytest.raises(ValueError, match="after_validation must be one of full, weights, off, got 'some'"):
        ResumeCheckpoint(after_validation="some")


def test_fit_ends_with_one_last_checkpoint(files: dict[str, Path], tmp_path: Path) -> None:
    """Through the CLI (``checkpoint.every_n_steps``), a run that ends without validation
    leaves one last.ckpt at its final step: no numbered files, no last-v1.ckpt, no temporaries."""
    root = tmp_path / "runs"
    args = _fit_args(files, "ok", *_NO_VALIDATION, "--checkpoint.every_minutes", "null", "--checkpoint.every_n_steps", "1")
    args[args.index("--trainer.default_root_dir") + 1] = str(root)
    assert main(["fit", *args]) == 0
    ckpt_dir = root / "lightning_logs" / "version_0" / "checkpoints"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.ckpt"]
    assert torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 2


def test_ckpt_path_last_is_the_newest_runs(tmp_path: Path) -> None:
    """``--ckpt_path last`` finds the killed run's last.ckpt (Lightning's own "last" looks in
    the new run's empty directory and starts from scratch)."""
    from depth_ros_training.cli import resolve_last_checkpoint

    assert resolve_last_checkpoint(tmp_path) is None
    for i, version in enumerate(("version_1", "version_0")):  # version_0 written last
        ckpt = tmp_path / "lightning_logs" / version / "checkpoints" / "last.ckpt"
        ckpt.parent.mkdir(parents=True)
        ckpt.write_bytes(b"x")
        os.utime(ckpt, ns=(10**18 + i, 10**18 + i))
    assert resolve_last_checkpoint(tmp_path) == str(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")


@pytest.mark.slow
def test_resume_after_kill_9(files: dict[str, Path], tmp_path: Path, cli_bin: Path) -> None:
    """A run killed with SIGKILL between validations keeps a last.ckpt (time interval, ~1 s
    here) that loads with weights_only and resumes at its step."""
    root = tmp_path / "runs"
    args = _fit_args(files, "ok", *_NO_VALIDATION, "--checkpoint.every_minutes", "0.02")
    args[args.index("--trainer.max_steps") + 1] = "100000"
    args[args.index("--trainer.default_root_dir") + 1] = str(root)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([str(cli_bin / "depth-ros-train"), "fit", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    ckpt = root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 150
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ckpt.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no checkpoint in 150 s"
        time.sleep(1.5)  # let it train on (and maybe save again) before the kill
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p.name for p in ckpt.parent.iterdir() if p.name != "last.ckpt"]
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved["global_step"] >= 1
    assert all(name.endswith(".tmp") for name in leftovers), leftovers  # at most a save cut short
    _resume_one_step(files, ckpt, saved["global_step"])


# -- export ----------------------------------------------------------------------------------

class _Tiny(torch.nn.Module):
    def __init__(self, transpose: bool = False) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)
        self.transpose = transpose

    def forward(self, x):
        w = torch.sigmoid(self.conv(x))
        return [w.transpose(-1, -2) if self.transpose else w]


def _fake_module(transpose: bool = False):
    """What export reads of a DepthTrainingModule: hparams and depth_net."""
    from types import SimpleNamespace

    from lightning.fabric.utilities.data import AttributeDict

    hparams = AttributeDict(image_height=32, image_width=64, mean=(0.45,) * 3, std=(0.225,) * 3, min_depth_m=0.1,
                            max_depth_m=100.0, velocity_weight=0.0, num_layers=18)
    return SimpleNamespace(hparams=hparams, depth_net=_Tiny(transpose))


def test_exported_onnx_respects_the_umask(tmp_path: Path) -> None:
    from depth_ros_training.export import export_module

    old = os.umask(0o022)
    try:
        result = export_module(_fake_module(), tmp_path / "public", pose=False, tensorrt="off")
        assert stat.S_IMODE(result.paths["depth"].stat().st_mode) == 0o644
        os.umask(0o077)
        result = export_module(_fake_module(), tmp_path / "private", pose=False, tensorrt="off")
        assert stat.S_IMODE(result.paths["depth"].stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert [p.name for p in (tmp_path / "public").iterdir()] == ["depth.onnx"]  # no temporary left


def test_export_checks_the_written_model_against_its_spec(tmp_path: Path) -> None:
    """A depth network whose map comes out transposed (64x32 for 32x64) agrees with itself in
    ONNX Runtime, but the runtime would refuse it: export says so instead of passing it on."""
    from depth_ros_training.export import export_module

    with pytest.raises(ModelError, match=r"depth\.onnx.*shape \(1, 1, 64, 32\)"):
        export_module(_fake_module(transpose=True), tmp_path, pose=False, tensorrt="off")
