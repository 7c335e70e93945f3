"""The shipped config/train.yaml parses against the trainer's CLI (every key known, every value
of the right type); a misspelt key is refused."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from depth_ros_training.cli import main

TRAIN_YAML = Path(__file__).resolve().parents[2] / "config" / "train.yaml"


def _print_config(path: Path) -> int:
    try:
        return main(["fit", "--config", str(path), "--print_config"])
    except SystemExit as exc:  # --print_config ends the CLI with SystemExit
        return int(exc.code or 0)


def test_shipped_train_config_parses(capsys: pytest.CaptureFixture[str]) -> None:
    assert _print_config(TRAIN_YAML) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    shipped = yaml.safe_load(TRAIN_YAML.read_text())
    for key, value in shipped["model"].items():
        assert printed["model"][key] == value, key


def test_misspelt_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = yaml.safe_load(TRAIN_YAML.read_text())
    cfg["model"]["hint_cach_mb"] = 10.0
    bad = tmp_path / "train.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    assert _print_config(bad) != 0
    assert "hint_cach_mb" in capsys.readouterr().err
