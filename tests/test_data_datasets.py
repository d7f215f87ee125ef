"""Torch datasets over records and in-memory studies, collation with padding, and the lead's transforms."""
import numpy as np
import pytest
import torch

from rrg_lite.data.collate import collate_studies
from rrg_lite.data.datasets import CTReportDataset, XRayReportDataset
from rrg_lite.data.formats.ctrate import read_ctrate, read_radgenome
from rrg_lite.data.formats.mimic import read_mimic
from rrg_lite.data.manifest import DataFormatError, ImageRef, StudyRecord
from rrg_lite.data.transforms import ClipAndScale, Compose, PadOrCrop, SplitFrames
from rrg_lite.world.config import WorldConfig
from rrg_lite.world.ct import generate_ct_cohort
from rrg_lite.world.vocab import REGIONS
from rrg_lite.world.writers import write_ctrate, write_mimic
from rrg_lite.world.xray import generate_xray_cohort


@pytest.fixture(scope="module")
def cts():
    return generate_ct_cohort(3, seed=9, cfg=WorldConfig(scan_range="chest", ct_depth=(24, 40)))


def test_ct_dataset_from_records_equals_from_memory(tmp_path, cts):
    write_ctrate(cts, tmp_path, "train")
    recs = read_radgenome(tmp_path, "train", read_ctrate(tmp_path, "train"))
    on_disk = CTReportDataset(recs, with_masks=True)
    in_mem = CTReportDataset(cts, with_masks=True)
    for a, b in zip(on_disk, in_mem):
        assert np.array_equal(a["ct"], np.clip(np.rint(b["ct"]), -1024, 3071))
        assert np.array_equal(a["masks"], b["masks"]) and a["mask_names"] == list(REGIONS)
        assert a["report"] == b["report"] and np.array_equal(a["labels"], b["labels"])
        assert a["region_reports"] == b["region_reports"]


def test_collate_pads_variable_depth_and_marks_valid_slices(cts):
    ds = CTReportDataset(cts, transform=ClipAndScale("ct", lo=-1000, hi=200))
    depths = [s["ct"].shape[0] for s in ds]
    assert len(set(depths)) > 1
    batch = collate_studies([ds[i] for i in range(len(ds))])
    assert batch["ct"].shape == (3, max(depths), 64, 64)
    assert batch["ct_mask"].shape == (3, max(depths))
    assert batch["ct_mask"].sum(1).tolist() == depths
    i = int(np.argmin(depths))
    assert torch.all(batch["ct"][i, depths[i]:] == batch["ct"].min())    # padded with air (the minimum)
    assert batch["labels"].shape == (3, 18) and isinstance(batch["report"], list)


def test_frames_transform_then_collate(cts):
    tf = Compose([ClipAndScale("ct", lo=-1000, hi=200), SplitFrames("ct", k=8)])
    batch = collate_studies([CTReportDataset(cts, transform=tf)[i] for i in range(3)])
    t_max = max(-(-s.ct.shape[0] // 8) for s in cts)
    assert batch["ct"].shape == (3, t_max, 8, 64, 64)
    assert batch["ct_mask"].shape == (3, t_max)


def test_xray_dataset_missing_views_become_zeros_with_flags(tmp_path):
    studies = generate_xray_cohort(8, seed=1, cfg=WorldConfig(p_lateral=0.5, p_prior_xray=0.5))
    mem = XRayReportDataset(studies)
    batch = collate_studies([mem[i] for i in range(len(mem))])
    has_lat = [s.lateral is not None for s in studies]
    assert batch["lateral_present"].tolist() == has_lat
    assert batch["frontal"].shape == (8, 128, 128)
    assert torch.all(batch["lateral"][~batch["lateral_present"]] == 0)
    assert batch["prior_frontal_present"].tolist() == [s.prior is not None for s in studies]
    # same from the MIMIC layout
    write_mimic(studies, tmp_path, "train")
    recs = read_mimic(tmp_path, "train")
    disk = XRayReportDataset(recs)
    cur = [disk[i] for i in range(len(disk)) if recs[i].prior_study_id or not any(
        r.prior_study_id == recs[i].study_id for r in recs)]
    assert sum(s["prior_frontal"] is not None for s in cur) == sum(s.prior is not None for s in studies)


def test_no_agnostic_option_drops_tagged_sentences():
    studies = generate_xray_cohort(5, seed=3, cfg=WorldConfig(p_input_agnostic_xray=1.0))
    full = XRayReportDataset(studies)
    clean = XRayReportDataset(studies, include_agnostic=False)
    assert all(len(c["report"]) <= len(f["report"]) for c, f in zip(clean, full))
    assert any(len(c["report"]) < len(f["report"]) for c, f in zip(clean, full))


def test_dataset_errors_name_the_study(tmp_path):
    rec = StudyRecord(study_id="s1", dataset="x", images=[], report={"findings": "Normal."})
    with pytest.raises(DataFormatError, match="study s1 .*no CT image"):
        CTReportDataset([rec])[0]
    rec = StudyRecord(study_id="s2", dataset="x", images=[ImageRef(str(tmp_path / "a.jpg"), "XR", "LATERAL")],
                      report={"findings": "Normal."})
    with pytest.raises(DataFormatError, match="study s2 .*no frontal"):
        XRayReportDataset([rec])[0]


def test_collate_rejects_mixed_ranks():
    with pytest.raises(ValueError, match="different numbers of axes"):
        collate_studies([{"x": np.zeros((2, 3))}, {"x": np.zeros((2, 3, 4))}])


def test_m4cxr_box_text_round_trip():
    from rrg_lite.data.boxes import box_text, from_relative_100, parse_boxes, to_relative_100

    # 200×100 image: the centre square is x in [50, 150]
    assert to_relative_100([50, 0, 100, 50], 200, 100) == [0, 0, 50, 50]
    assert to_relative_100([0, 0, 250, 100], 200, 100) == [0, 0, 100, 100]      # clipped to the square
    assert from_relative_100([0, 0, 50, 50], 200, 100) == [50, 0, 100, 50]
    assert parse_boxes("nodule " + box_text([10, 20, 30, 40]) + " and [5,5,200,9] [9,9,3,20]") == [[10, 20, 30, 40]]
    with pytest.raises(ValueError, match="empty or inverted"):
        to_relative_100([5, 5, 5, 9], 10, 10)
