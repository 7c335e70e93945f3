"""Evaluation plots (training/eval/plots.py): the numbers drawn, and files that are deterministic."""
from __future__ import annotations

import math

import numpy as np
import pytest

from depth_ros_training.eval.plots import SheetFrame, relative_error, subsample, write_plots


def _summary(scale: float) -> dict:
    table = {"0-2 m": {"fraction": 0.5, "abs_rel": 0.1 * scale, "bias": 1.0}, "2-5 m": {"fraction": 0.5, "abs_rel": 0.2 * scale, "bias": 1.1}}
    return {"median_by_range": table, "metric_by_range": table}


def _rows(n: int, offset: float, boundary: bool) -> list[dict]:
    nan = float("nan")
    return [
        {"median_abs_rel": 0.1 + offset + 0.01 * i, "boundary_recall": 0.5 + offset + 0.01 * i if boundary else nan, "boundary_precision": 0.6 - offset if boundary else nan}
        for i in range(n)
    ]


def _sheet() -> list[SheetFrame]:
    gt = np.linspace(1.0, 5.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    gt[:4] = np.nan
    rgb = np.zeros((48, 64, 3), np.uint8)
    return [SheetFrame("worst", rgb, gt, gt * 1.3), SheetFrame("median", None, gt, gt, scale=1.0)]


def test_relative_error_hand_values_and_invalid_truth():
    gt = np.array([[2.0, 4.0], [np.nan, 0.0]])
    pred = np.array([[1.0, 4.0], [3.0, 3.0]])
    err = relative_error(pred, gt)
    assert err[0, 0] == pytest.approx(0.5) and err[0, 1] == 0.0
    assert math.isnan(err[1, 0]) and math.isnan(err[1, 1])
    assert relative_error(pred, gt, scale=2.0)[0, 0] == pytest.approx(0.0)


def test_subsample_takes_pixels_never_interpolates():
    a = np.arange(1000 * 10, dtype=np.float64).reshape(10, 1000)
    a[0, 0] = np.nan
    s = subsample(a, max_width=320)  # step 4
    assert s.shape == (3, 250)
    assert math.isnan(s[0, 0]) and s[1, 1] == a[4, 4]
    assert set(np.unique(s[np.isfinite(s)])) <= set(np.unique(a[np.isfinite(a)]))


def test_sheet_frame_refuses_mismatched_sizes():
    with pytest.raises(ValueError, match="same"):
        SheetFrame("x", None, np.ones((4, 5)), np.ones((5, 4)))


def test_write_plots_files_and_determinism(tmp_path):
    summaries = {"a": _summary(1.0), "b": _summary(1.5)}
    frames = {"a": _rows(12, 0.0, True), "b": _rows(12, 0.05, True)}
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir()
    second.mkdir()
    p1 = write_plots(summaries, frames, {"a": _sheet()}, first)
    p2 = write_plots(summaries, frames, {"a": _sheet()}, second)
    assert set(p1) == {"error_vs_distance", "error_histogram", "boundary_pr", "contact_sheet_a"}
    for key, path in p1.items():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, key
        assert data == p2[key].read_bytes(), f"{key} differs between two identical runs"


def test_no_boundary_plot_without_boundary_figures(tmp_path):
    paths = write_plots({"a": _summary(1.0)}, {"a": _rows(5, 0.0, False)}, {}, tmp_path)
    assert "boundary_pr" not in paths and not (tmp_path / "boundary_pr.png").exists()
    assert paths["error_histogram"].exists()


def test_plots_differ_when_the_numbers_differ(tmp_path):
    """A check that the drawing depends on the data (a plot of constants would pass the rest)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_plots({"m": _summary(1.0)}, {"m": _rows(8, 0.0, True)}, {}, a)
    write_plots({"m": _summary(2.0)}, {"m": _rows(8, 0.3, True)}, {}, b)
    for name in ("error_vs_distance.png", "error_histogram.png", "boundary_pr.png"):
        assert (a / name).read_bytes() != (b / name).read_bytes(), name


def test_contact_sheet_takes_the_worst_and_the_median_frame():
    from depth_ros_training.eval.evaluate import _sheet_candidates

    rows = [{"median_abs_rel": v, "stamp_ns": 10 * i, "pred_stamp_ns": 10 * i + 1, "scale": 1.0 + i} for i, v in enumerate([0.1, 0.5, 0.2, 0.3])]
    preds = {10 * i + 1: np.full((2, 2), float(i)) for i in range(4)}
    picks = _sheet_candidates(rows, preds, truth=None)
    assert [(c.stamp_ns, c.abs_rel, c.scale) for c in picks] == [(10, 0.5, 2.0), (20, 0.2, 3.0)]
    assert picks[0].pred_m[0, 0] == 1.0  # the prediction of that frame, not another
    assert len(_sheet_candidates(rows[:1], preds, truth=None)) == 1  # worst = median: one row
