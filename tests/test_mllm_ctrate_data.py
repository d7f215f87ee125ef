"""Chapter 5's data paths: the world in memory and a CT-RATE-layout folder written by the world give the same data."""
import numpy as np
import pytest
import torch

from rrg_lite.systems.llava_ct.recipe import (VolumeFiles, load_ct_report_data, load_ctrate_report_data, make_ct_report_data,
                                    preprocess_ct)
from rrg_lite.profiles import load_profile
from rrg_lite.world.config import WorldConfig
from rrg_lite.world.ct import generate_ct_cohort
from rrg_lite.world.writers import write_ctrate

SHAPE = (8, 16, 16)


@pytest.fixture(scope="module")
def ctrate_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctrate")
    studies = generate_ct_cohort(5, seed=3, cfg=WorldConfig(scan_range="chest"))
    write_ctrate(studies[:3], root, "train")                  # HU + 1024 with the rescale in the metadata CSV
    write_ctrate(studies[3:], root, "valid", raw_offset=False)  # HU stored directly
    return root, studies


def test_ctrate_folder_matches_the_world(ctrate_folder):
    root, studies = ctrate_folder
    data = load_ctrate_report_data(root, shape=SHAPE, progress=False)
    assert data.n_train == 3 and len(data.reports) == 5
    assert data.volumes.shape == (5, 2, *SHAPE)
    for i, st in enumerate(studies):
        assert data.reports[i] == st.report.text()          # same "FINDINGS: ...\n\nIMPRESSION: ..." layout
        assert data.labels[i].tolist() == [int(v) for v in st.labels]
        # the files store whole HU (int16): windows of rounded HU differ by at most 0.5 / window width
        expected = preprocess_ct(st.ct, SHAPE)
        assert np.abs(data.volumes[i].numpy() - expected).max() < 0.5 / 400 + 1e-5
    assert data.split("test") == slice(3, 5)


def test_ctrate_folder_subsets_lazy_and_profile(ctrate_folder):
    root, _ = ctrate_folder
    eager = load_ctrate_report_data(root, n_train=2, n_test=1, shape=SHAPE, progress=False)
    lazy = load_ctrate_report_data(root, n_train=2, n_test=1, shape=SHAPE, lazy=True, progress=False)
    assert isinstance(lazy.volumes, VolumeFiles) and len(lazy.volumes) == 3 and eager.n_train == 2
    assert torch.equal(lazy.volumes[0:3], eager.volumes) and torch.equal(lazy.volumes[2], eager.volumes[2])
    with pytest.raises(ValueError, match="in memory"):
        lazy.standardize()
    cfg = load_profile("mllm", "cpu", data_root=str(root), n_train=2, n_test=1, volume_shape=list(SHAPE))
    via_profile = load_ct_report_data(cfg, progress=False)
    assert via_profile.reports == eager.reports and via_profile.volumes.shape[1] == len(cfg.windows)
    assert torch.equal(via_profile.volumes[:, :2], eager.volumes)   # the profile's first two windows: lung, mediastinum


def test_ctrate_folder_errors(tmp_path, ctrate_folder):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_ctrate_report_data(tmp_path / "missing")
    with pytest.raises(Exception, match="train_reports.csv"):
        load_ctrate_report_data(tmp_path)


def test_world_data_is_the_same_with_workers():
    one = make_ct_report_data(3, 1, seed=1, shape=SHAPE, progress=False)
    two = make_ct_report_data(3, 1, seed=1, shape=SHAPE, progress=False, workers=2)
    assert torch.equal(one.volumes, two.volumes) and one.reports == two.reports and one.study_ids == two.study_ids
    assert one.volumes.shape == (4, 2, *SHAPE) and one.n_train == 3
    std = one.standardize()
    assert torch.allclose(std.volumes[:3].mean(0), torch.zeros(SHAPE), atol=1e-5)
    three = make_ct_report_data(1, 0, seed=1, shape=SHAPE, progress=False, windows=("lung", "mediastinum", "bone"))
    assert three.volumes.shape[1] == 3 and torch.equal(three.volumes[0, :2], one.volumes[0])


def test_preprocess_ct_custom_window():
    hu = np.array([[[-1000.0, 0.0], [1000.0, 3000.0]]], dtype=np.float32)    # (1, 2, 2)
    out = preprocess_ct(hu, shape=(1, 2, 2), windows=[(0, 2000)])             # -1000..1000 HU -> 0..1
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[0.0, 0.5], [1.0, 1.0]]
    with pytest.raises(ValueError, match="at least one window"):
        preprocess_ct(hu, windows=[])
