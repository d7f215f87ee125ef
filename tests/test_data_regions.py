"""Region utilities (mask → box → masked crop → resize) on arrays small enough to check by hand."""
import numpy as np
import pytest
import torch

from rrg_lite.data.regions import crop_region, crop_regions, expand_box, mask_volume, resize_mask, tight_box


def _mask(shape, *voxels):
    m = np.zeros(shape, bool)
    for v in voxels:
        m[v] = True
    return m


# ---- tight_box / expand_box ------------------------------------------------------------------------------------
def test_tight_box_by_hand():
    # True at (z, y, x) = (1, 2, 3) and (2, 4, 3): z in [1, 3), y in [2, 5), x in [3, 4) (half-open)
    m = _mask((4, 5, 6), (1, 2, 3), (2, 4, 3))
    assert tight_box(m) == (1, 3, 2, 5, 3, 4)
    z0, z1, y0, y1, x0, x1 = tight_box(m)
    assert m[z0:z1, y0:y1, x0:x1].sum() == m.sum()          # the box slices hold the whole mask
    assert tight_box(torch.from_numpy(m)) == (1, 3, 2, 5, 3, 4)
    assert tight_box(m.astype(np.uint8)) == (1, 3, 2, 5, 3, 4)


def test_tight_box_errors():
    with pytest.raises(ValueError, match="empty"):
        tight_box(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        tight_box(np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="bool or 0/1"):
        tight_box(np.full((2, 2, 2), 0.5))
    with pytest.raises(TypeError, match="NumPy array or a torch tensor"):
        tight_box([[[True]]])


def test_expand_box_clips_to_the_volume():
    # (1,3, 2,5, 3,4) grown by 1 in a (4, 5, 6) volume: z 0..4, y 1..5 (5 is the edge), x 2..5
    assert expand_box((1, 3, 2, 5, 3, 4), 1, (4, 5, 6)) == (0, 4, 1, 5, 2, 5)
    assert expand_box((1, 3, 2, 5, 3, 4), (0, 2, 1), (4, 5, 6)) == (1, 3, 0, 5, 2, 5)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        expand_box((1, 3, 2, 5, 3, 4), -1, (4, 5, 6))
    with pytest.raises(ValueError, match="outside the volume"):
        expand_box((1, 3, 2, 9, 3, 4), 0, (4, 5, 6))


# ---- mask_volume / crop_region ---------------------------------------------------------------------------------
def test_masking_zeroes_outside_mask_voxels():
    v = np.arange(1, 9, dtype=np.float32).reshape(1, 2, 2, 2)      # values 1..8
    m = _mask((2, 2, 2), (0, 0, 0), (1, 1, 1))
    out = mask_volume(v, m)                                        # M ⊙ V (fill = 0): only 1 and 8 survive
    assert out.shape == (1, 2, 2, 2) and out.sum() == 1 + 8
    assert out[0, 0, 0, 0] == 1 and out[0, 1, 1, 1] == 8 and (out[0][~m] == 0).all()
    two = mask_volume(np.concatenate([v, v]), m, fill=(0.0, -1.0))  # one fill per channel
    assert (two[1][~m] == -1).all() and (two[0][~m] == 0).all()


def test_crop_region_by_hand_masks_before_the_crop():
    # One slice 3×3 with values 1..9; mask at (0,0) and (1,1) -> box rows 0..2, cols 0..2 (2×2)
    v = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)     # [[1,2,3],[4,5,6],[7,8,9]]
    m = _mask((1, 3, 3), (0, 0, 0), (0, 1, 1))
    out = crop_region(v, m, out_shape=(1, 2, 2), fill=-1.0)        # already at out_shape: no resampling
    assert out.shape == (1, 1, 2, 2)
    assert np.array_equal(out[0, 0], [[1, -1], [-1, 5]])           # 2 and 4 are in the box but not in the mask
    raw = crop_region(v, m, out_shape=(1, 2, 2), mask_first=False)  # control: box crop of the raw volume
    assert np.array_equal(raw[0, 0], [[1, 2], [4, 5]])
    # margin 1 grows the box to the whole 3×3 slice; the margin voxels are outside the mask -> fill
    grown = crop_region(v, m, out_shape=(1, 3, 3), margin=(0, 1, 1), fill=0.0)
    assert np.array_equal(grown[0, 0], [[1, 0, 0], [0, 5, 0], [0, 0, 0]])


def test_crop_region_resize_is_trilinear_cell_centred():
    # 2×2×2 block of values 1..8 inside a 4×4×4 volume; halving each axis averages voxel pairs, so one voxel
    # = the mean of the 8 values = 4.5
    v = np.zeros((1, 4, 4, 4), np.float32)
    v[0, 1:3, 1:3, 1:3] = np.arange(1, 9, dtype=np.float32).reshape(2, 2, 2)
    m = np.zeros((4, 4, 4), bool)
    m[1:3, 1:3, 1:3] = True
    assert np.allclose(crop_region(v, m, (1, 1, 1)), 4.5)
    # along one axis only: (1,1,2) averages z and y, keeps x: x=0 holds 1,3,5,7 (mean 4), x=1 holds 2,4,6,8 (5)
    assert np.allclose(crop_region(v, m, (1, 1, 2))[0, 0, 0], [4.0, 5.0])
    # a crop already at out_shape comes back unchanged
    assert np.array_equal(crop_region(v, m, (2, 2, 2))[0], v[0, 1:3, 1:3, 1:3])


def test_crop_and_resize_erases_size():
    # a uniform cube of side 2 and one of side 4 give the same 4×4×4 crop: only the geometry token can tell them apart
    v = np.full((1, 8, 8, 8), 7.0, np.float32)
    small, big = np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), bool)
    small[3:5, 3:5, 3:5] = True
    big[2:6, 2:6, 2:6] = True
    a, b = crop_region(v, small, (4, 4, 4)), crop_region(v, big, (4, 4, 4))
    assert np.allclose(a, 7.0) and np.allclose(b, 7.0) and np.allclose(a, b)
    assert not np.allclose(resize_mask(small, (4, 4, 4)), resize_mask(big, (4, 4, 4)))


def test_crop_region_keeps_the_kind_and_stacks():
    v = torch.arange(64, dtype=torch.float32).reshape(1, 4, 4, 4)
    m = torch.zeros(4, 4, 4, dtype=torch.bool)
    m[:2, :2, :2] = True
    out = crop_region(v, m, (2, 2, 2))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (1, 2, 2, 2)
    assert torch.equal(out[0], v[0, :2, :2, :2])
    masks = torch.stack([m, m.flip(0)])
    many = crop_regions(v, masks, (2, 4, 4))
    assert isinstance(many, torch.Tensor) and many.shape == (2, 1, 2, 4, 4)
    assert isinstance(crop_regions(v.numpy(), masks.numpy(), (2, 2, 2)), np.ndarray)


def test_crop_region_errors():
    v = np.zeros((1, 4, 4, 4), np.float32)
    m = _mask((4, 4, 4), (1, 1, 1))
    with pytest.raises(ValueError, match=r"\(C, D, H, W\)"):
        crop_region(v[0], m, (2, 2, 2))
    with pytest.raises(ValueError, match="not on one grid"):
        crop_region(v, m[:3], (2, 2, 2))
    with pytest.raises(ValueError, match="empty"):
        crop_region(v, np.zeros((4, 4, 4), bool), (2, 2, 2))
    with pytest.raises(ValueError, match="out_shape"):
        crop_region(v, m, (2, 2))
    with pytest.raises(ValueError, match="one per channel"):
        crop_region(v, m, (2, 2, 2), fill=(0.0, 1.0))
    with pytest.raises(ValueError, match="mask 1: .*empty"):
        crop_regions(v, np.stack([m, np.zeros_like(m)]), (2, 2, 2))
    with pytest.raises(ValueError, match=r"\(R, D, H, W\)"):
        crop_regions(v, m, (2, 2, 2))


# ---- resize_mask -----------------------------------------------------------------------------------------------
def test_resize_mask_soft_and_nearest():
    m = _mask((2, 2, 2), (0, 0, 0))                  # one of 8 voxels -> occupancy 1/8 at 1×1×1
    assert np.allclose(resize_mask(m, (1, 1, 1)), 0.125)
    full = np.ones((2, 2, 2), bool)
    big = resize_mask(full, (4, 6, 2), soft=False)
    assert big.dtype == bool and big.shape == (4, 6, 2) and big.all()
    t = resize_mask(torch.from_numpy(m), (4, 4, 4))
    assert isinstance(t, torch.Tensor) and t.shape == (4, 4, 4) and float(t.min()) >= 0 and float(t.max()) <= 1
