"""The encoder's label pre-training and its read-out: label AUC by hand, probe pooling, the conv-max stem."""
import pytest
import torch

from rrg_lite.encoders.pretrain import LabelProbe, label_auc, probe_auc, train_label_probe
from rrg_lite.encoders.vit import ConvMaxStem, vit3d
from rrg_lite.train.loop import TrainConfig


def test_label_auc_by_hand():
    # label 0: positives score 3, 2; negatives 2, 1 -> pairs (3>2, 3>1, 2=2 -> 1/2, 2>1) = 3.5 / 4
    scores = torch.tensor([[3.0, 0.0], [2.0, 1.0], [2.0, 2.0], [1.0, 3.0]])
    labels = torch.tensor([[1, 1], [1, 1], [0, 0], [0, 0]])
    auc = label_auc(scores, labels)
    assert auc[0].item() == pytest.approx(3.5 / 4)
    assert auc[1].item() == pytest.approx(0.0)        # every positive below every negative
    assert torch.isnan(label_auc(scores, torch.ones_like(labels))).all()
    with pytest.raises(ValueError, match="both be"):
        label_auc(scores, labels[:, :1])


def test_probe_pooling_and_max_pool_sees_one_patch():
    enc = vit3d(img_size=(4, 8, 8), patch_size=(2, 4, 4), embed_dim=8, depth=1, heads=2)
    tokens = torch.zeros(1, 8, 8)
    tokens[0, 3, 2] = 8.0                               # one patch lights up one channel
    mean, mx, both = (LabelProbe(enc, 3, pool=p) for p in ("mean", "max", "meanmax"))
    assert mean.pooled(tokens)[0, 2].item() == pytest.approx(1.0)
    assert mx.pooled(tokens)[0, 2].item() == pytest.approx(8.0)
    assert both.pooled(tokens).shape == (1, 16) and both.head[1].in_features == 16
    with pytest.raises(ValueError, match="pool must be"):
        LabelProbe(enc, 3, pool="sum")


def test_conv_max_stem_shapes_and_translation():
    stem = ConvMaxStem(3, 1, patch_size=(2, 4, 4), cell=(1, 2, 2), width=4, embed_dim=6)
    assert stem.window == (2, 2, 2)
    # the max over a patch's cells does not change when a one-voxel spot moves to another cell of the same patch
    torch.manual_seed(0)
    a, b = torch.zeros(1, 1, 2, 4, 4), torch.zeros(1, 1, 2, 4, 4)
    a[0, 0, 0, 0, 0], b[0, 0, 1, 2, 2] = 5.0, 5.0
    ha = torch.nn.functional.gelu(stem.conv(a)).amax((2, 3, 4))
    hb = torch.nn.functional.gelu(stem.conv(b)).amax((2, 3, 4))
    assert torch.allclose(ha, hb)
    enc = vit3d(img_size=(4, 16, 16), patch_size=(2, 8, 8), in_channels=2, embed_dim=8, heads=2,
                patch_embed="conv_max", stem_cell=(1, 2, 2), stem_width=4)
    assert enc(torch.randn(3, 2, 4, 16, 16)).shape == (3, enc.num_patches, 8)
    with pytest.raises(ValueError, match="must divide"):
        vit3d(img_size=(4, 16, 16), patch_size=(2, 8, 8), patch_embed="conv_max", stem_cell=(1, 3, 3))


@pytest.mark.slow
def test_probe_learns_a_visible_label():
    # label = "a bright spot somewhere"; held-out AUC of the trained probe must be high
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 4, 16, 16, generator=g) * 0.3
    y = (torch.rand(96, generator=g) < 0.5).long()
    for i in torch.nonzero(y).flatten().tolist():
        d, h, w = (int(v) for v in torch.randint(0, 4, (3,), generator=g) * torch.tensor([1, 4, 4]))
        x[i, 0, d, h: h + 2, w: w + 2] += 3.0
    labels = torch.stack([y, 1 - y], 1)
    enc = vit3d(img_size=(4, 16, 16), patch_size=(2, 8, 8), embed_dim=16, depth=1, heads=2,
                patch_embed="conv_max", stem_cell=(1, 2, 2), stem_width=8)
    probe, res = train_label_probe(enc, x[:64], labels[:64], TrainConfig(lr=1e-2, batch_size=16, epochs=15, progress=False),
                                   pool="max")
    assert res.global_step == 60
    auc = probe_auc(probe, x[64:], labels[64:])
    assert auc.min() > 0.9


def test_voxel_max_stem_keeps_a_one_voxel_spot():
    from rrg_lite.encoders.vit import VoxelMaxStem, vit2d

    stem = VoxelMaxStem(3, 2, patch_size=(4, 8, 8), width=8, embed_dim=6)
    assert stem(torch.randn(2, 2, 8, 16, 16)).shape == (2, 2 * 2 * 2, 6)
    # the first stage is a max/min over 2-voxel cells: a single bright voxel reaches it undiluted
    x = torch.zeros(1, 2, 8, 16, 16)
    x[0, 0, 3, 5, 9] = 7.0
    pooled = torch.cat([torch.nn.functional.max_pool3d(x, 2), -torch.nn.functional.max_pool3d(-x, 2)], 1)
    assert pooled.max().item() == 7.0
    enc = vit2d(img_size=(32, 32), patch_size=16, embed_dim=8, heads=2, patch_embed="voxel_max", stem_width=8)
    assert enc(torch.randn(3, 1, 32, 32)).shape == (3, 4, 8)
    with pytest.raises(ValueError, match="divisible by 4"):
        vit2d(img_size=(30, 30), patch_size=6, patch_embed="voxel_max")
