"""Transforms on cases small enough to check by hand."""
import numpy as np
import pytest

from rrg_lite.data.transforms import (ClipAndScale, Compose, Resize, SplitFrames, Window, clip_and_scale, minmax,
                                      pad_or_crop, resample_to_spacing, resize, split_into_frames, window)


def test_window_maps_edges_and_centre():
    # mediastinum window: centre 40, width 400 → [−160, 240]
    np.testing.assert_allclose(window(np.array([-1000, -160, 40, 240, 3000]), "mediastinum"), [0, 0, 0.5, 1, 1])
    np.testing.assert_allclose(window(np.array([-600.0]), -600, 1500), [0.5])
    with pytest.raises(KeyError, match="unknown window 'liverish'"):
        window(np.zeros(2), "liverish")
    with pytest.raises(ValueError, match="positive"):
        window(np.zeros(2), 0, 0)


def test_clip_and_scale_reg2rg_convention():
    # Reg2RG: clamp to [−1000, 200], then (x + 400) / 600 ∈ [−1, 1]
    x = np.array([-2000.0, -1000, -400, 200, 900])
    np.testing.assert_allclose(clip_and_scale(x, -1000, 200, out=(-1, 1)), (np.clip(x, -1000, 200) + 400) / 600)
    with pytest.raises(ValueError):
        clip_and_scale(x, 5, 5)


def test_minmax_and_constant_volume():
    np.testing.assert_allclose(minmax(np.array([2.0, 4.0, 6.0])), [0, 0.5, 1])
    np.testing.assert_array_equal(minmax(np.full(3, 7.0)), np.zeros(3))


def test_pad_or_crop_is_centred():
    a = np.arange(5)
    np.testing.assert_array_equal(pad_or_crop(a, (3,)), [1, 2, 3])
    np.testing.assert_array_equal(pad_or_crop(a, (8,), value=-1), [-1, 0, 1, 2, 3, 4, -1, -1])
    assert pad_or_crop(np.zeros((4, 6, 2)), (2, 8, 2)).shape == (2, 8, 2)


def test_resize_and_resample_shapes_and_values():
    v = np.ones((4, 6, 8), dtype=np.float32) * 3
    assert resize(v, (8, 3, 5)).shape == (8, 3, 5)
    np.testing.assert_allclose(resize(v, (8, 3, 5)), 3.0)
    # 10 slices of 5 mm resampled to 2.5 mm → 20 slices; in-plane unchanged
    assert resample_to_spacing(np.zeros((10, 4, 4)), (5, 1, 1), (2.5, 1, 1)).shape == (20, 4, 4)
    mask = np.zeros((4, 4, 4), dtype=np.uint8)
    mask[1:3, 1:3, 1:3] = 1
    up = resample_to_spacing(mask, (2, 2, 2), (1, 1, 1), order=0)
    assert set(np.unique(up)) == {0, 1} and up.sum() == 8 * mask.sum()


def test_split_into_frames_pads_the_last_frame():
    v = np.arange(5 * 2 * 2, dtype=np.float32).reshape(5, 2, 2)
    frames = split_into_frames(v, k=2)
    assert frames.shape == (3, 2, 2, 2)
    np.testing.assert_array_equal(frames[0, 1], v[1])
    np.testing.assert_array_equal(frames[2, 0], v[4])
    np.testing.assert_array_equal(frames[2, 1], np.zeros((2, 2)))  # padded with the volume's minimum, 0
    with pytest.raises(ValueError, match="expects a \\(D, H, W\\) volume"):
        split_into_frames(np.zeros((4, 4)), 2)


def test_dict_pipeline_and_missing_key():
    pipeline = Compose([ClipAndScale("ct", lo=-1000, hi=200), Resize("ct", (4, 4, 4)), SplitFrames("ct", k=3)])
    out = pipeline({"ct": np.zeros((3, 8, 8)), "report": "No effusion."})
    assert out["ct"].shape == (2, 3, 4, 4) and out["report"] == "No effusion."
    with pytest.raises(KeyError, match="Window: sample has no 'ct' \\(study s1\\)"):
        Window("ct", "lung")({"study_id": "s1"})
    assert Window("pet", "lung", allow_missing=True)({"ct": 1}) == {"ct": 1}
