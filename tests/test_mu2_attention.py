"""Mapping tokenizer weights back onto the volume (the question-to-CT heat map)."""
import numpy as np
import pytest
import torch

from rrg_lite.viz.attention import attention_volume, body_part_mass


def test_each_token_fills_its_patch_block():
    # 2 frames of K=4 slices, 4×4 pixels; patches 2×2×2 → grid 2×2×2 = 8 tokens per frame, 16 in all
    w = torch.zeros(16)
    w[0] = 1.0  # frame 0, patch (d=0, h=0, w=0) → z 0-1, y 0-1, x 0-1
    w[8 + 7] = 2.0  # frame 1, patch (d=1, h=1, w=1) → z 4+2..4+3 = 6-7, y 2-3, x 2-3
    vol = attention_volume(w, num_frames=2, patch_grid=(2, 2, 2), frame_shape=(4, 4, 4))
    assert vol.shape == (8, 4, 4)
    assert np.all(vol[0:2, 0:2, 0:2] == 1) and np.all(vol[6:8, 2:4, 2:4] == 2)
    assert vol.sum() == 1 * 8 + 2 * 8
    # (Q, T·N) weights are summed over queries; depth crops the padded slices of the last frame
    vol2 = attention_volume(torch.stack([w, w]), 2, (2, 2, 2), (4, 4, 4), depth=7)
    assert vol2.shape == (7, 4, 4) and np.all(vol2[0:2, 0:2, 0:2] == 2)


def test_mismatched_weights_fail():
    with pytest.raises(ValueError, match="do not match"):
        attention_volume(torch.zeros(15), 2, (2, 2, 2), (4, 4, 4))
    with pytest.raises(ValueError, match="whole number"):
        attention_volume(torch.zeros(16), 2, (2, 2, 2), (5, 4, 4))


def test_body_part_mass():
    heat = np.zeros((10, 2, 2))
    heat[:4] = 1.0
    heat[4:] = 0.5
    share = body_part_mass(heat, {"chest": (0, 4), "abdomen": (4, 10)})
    assert share == pytest.approx({"chest": 16 / 28, "abdomen": 12 / 28})
