"""Label kinds -> loss targets; nearest-neighbour resize that never interpolates across holes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depth_ros_training.data.labels import LABEL_KINDS, label_to_target, label_valid_mask, resize_nearest, resize_target
from depth_ros_training.losses.midas import ssi_trimmed_mae_loss

NAN = float("nan")


def test_metric_depth_to_inverse_depth_and_mask():
    label = np.array([[2.0, 0.0, NAN], [4.0, -1.0, np.inf]], dtype=np.float32)
    t = label_to_target(label, "metric_depth")
    assert t.metric and not t.affine_invariant_only
    np.testing.assert_array_equal(t.valid, [[True, False, False], [True, False, False]])
    np.testing.assert_array_equal(t.inv_depth, np.array([[0.5, 0.0, 0.0], [0.25, 0.0, 0.0]], dtype=np.float32))
    assert t.inv_depth.dtype == np.float32


def test_uint16_labels_are_millimetres():
    t = label_to_target(np.array([[2000, 0], [500, 65535]], dtype=np.uint16), "metric_depth")
    np.testing.assert_allclose(t.inv_depth, [[0.5, 0.0], [2.0, 1000.0 / 65535.0]], rtol=1e-6)
    np.testing.assert_array_equal(t.valid, [[True, False], [True, True]])


def test_relative_inverse_depth_keeps_values_and_negative_disparity():
    label = np.array([[-0.5, 0.0, 3.0, NAN]], dtype=np.float32)
    t = label_to_target(label, "relative_inverse_depth")
    assert t.affine_invariant_only and not t.metric
    np.testing.assert_array_equal(t.valid, [[True, False, True, False]])
    np.testing.assert_array_equal(t.inv_depth, np.array([[-0.5, 0.0, 3.0, 0.0]], dtype=np.float32))


def test_each_kind_gives_an_ssi_target_of_the_same_scene():
    """Metric depth, the same depth times 7 (relative) and an affine disparity of it (relative inverse)
    are one scene: the median/MAD-normalised (target-affine-invariant) MiDaS loss of a prediction is
    the same against all three."""
    rng = np.random.default_rng(0)
    depth = (1.0 + 9.0 * rng.random((12, 16))).astype(np.float32)
    depth[2:4, 5:9] = np.nan
    labels = {
        "metric_depth": depth,
        "relative_depth": 7.0 * depth,
        "relative_inverse_depth": 3.0 / depth + 0.2,
    }
    prediction = torch.from_numpy(1.0 / depth + 0.05 * rng.random((12, 16))).view(1, 1, 12, 16).double()
    losses = []
    for kind in LABEL_KINDS:
        t = label_to_target(labels[kind], kind)
        assert t.valid.sum() == 12 * 16 - 8
        target = torch.from_numpy(t.inv_depth).view(1, 1, 12, 16).double()
        losses.append(ssi_trimmed_mae_loss(prediction, target, torch.from_numpy(t.valid).view(1, 1, 12, 16)).total.item())
    assert losses[0] > 1e-6
    np.testing.assert_allclose(losses, losses[0], rtol=1e-5)


def test_unknown_kind_and_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="label kind"):
        label_to_target(np.ones((2, 2)), "disparity")
    with pytest.raises(ValueError, match=r"\(2, 2, 3\)"):
        label_valid_mask(np.ones((2, 2, 3)), "metric_depth")
    with pytest.raises(ValueError, match="positive integer size"):
        resize_nearest(np.ones((2, 2)), 0, 3)


def test_resize_nearest_matches_nearest_exact_and_only_uses_input_values():
    rng = np.random.default_rng(1)
    label = rng.random((7, 9)).astype(np.float32)
    label[rng.random((7, 9)) < 0.3] = np.nan
    for h, w in [(14, 18), (3, 4), (5, 13)]:
        out = resize_nearest(label, h, w)
        ref = F.interpolate(torch.from_numpy(label)[None, None], size=(h, w), mode="nearest-exact")[0, 0].numpy()
        np.testing.assert_array_equal(out, ref)  # NaN in the same places too
        assert set(out[np.isfinite(out)].tolist()) <= set(label[np.isfinite(label)].tolist())


def test_resize_target_never_interpolates_across_a_hole():
    # a 0 hole between two depths: a 2x upsample keeps exact copies, the hole included, and the
    # mask moves with the values (a bilinear resize would invent 1/3 and 1/6 next to the hole)
    label = np.array([[3.0, 0.0, 6.0]], dtype=np.float32).repeat(2, axis=0)
    t = resize_target(label_to_target(label, "metric_depth"), 4, 6)
    np.testing.assert_array_equal(t.inv_depth[0], np.array([1 / 3, 1 / 3, 0, 0, 1 / 6, 1 / 6], dtype=np.float32))
    np.testing.assert_array_equal(t.valid[0], [True, True, False, False, True, True])
    assert t.kind == "metric_depth"
    # downsampling picks the pixel under each output centre
    big = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(resize_nearest(big, 2, 2), [[5.0, 7.0], [13.0, 15.0]])
