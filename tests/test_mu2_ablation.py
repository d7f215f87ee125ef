"""The ablation's plumbing: frames, frame labels, questions, summaries, and one tiny end-to-end run."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rrg_lite.systems.mu2.ablation import (
    NO_IMAGE,
    NORMAL_ANSWER,
    QASample,
    body_part_samples,
    ct_to_frames,
    frame_finding_labels,
    oracle_frame_features,
    paper_table,
    positive_findings,
    summarize,
    tokenizer_config,
    tokens_per_frame,
    wrong_image,
)
from rrg_lite.world.report import Report, Sentence


def test_ct_to_frames_window_and_padding():
    ct = np.full((10, 4, 4), -1000.0, dtype=np.float32)
    ct[3] = 50.0  # lo=-200, hi=300 → (50+200)/500 = 0.5
    frames = ct_to_frames(ct, slices_per_frame=4, num_frames=4, hu_range=(-200, 300))
    assert frames.shape == (4, 4, 4, 4)
    assert np.allclose(frames[0, 3], 0.5) and np.allclose(frames[0, 0], 0.0)
    assert np.all(frames[3] == 0)  # an air frame added to reach num_frames
    minmax = ct_to_frames(ct, 4)  # the paper's min-max: -1000 → 0, 50 → 1
    assert minmax.shape == (3, 4, 4, 4) and minmax.max() == 1.0 and minmax.min() == 0.0
    with pytest.raises(ValueError, match="more than num_frames"):
        ct_to_frames(ct, 4, num_frames=2)


def test_frame_finding_labels_by_hand():
    lesion_map = np.zeros((12, 2, 2), dtype=np.uint8)
    lesion_map[1, 0, 0] = 1  # finding id 0 in slice 1 → frame 0
    lesion_map[9, 1, 1] = 2  # finding id 1 in slice 9 → frame 2
    lesion_map[4, 0, 0] = 2  # ... and in slice 4 → frame 1
    findings = [SimpleNamespace(id=0, kind="nodule"), SimpleNamespace(id=1, kind="cyst"),
                SimpleNamespace(id=2, kind="unknown")]
    lab = frame_finding_labels(lesion_map, findings, ["cyst", "nodule"], slices_per_frame=4, num_frames=4)
    assert lab.tolist() == [[0, 1], [1, 0], [1, 0], [0, 0]]


def _study(sid, sentences):
    return SimpleNamespace(study_id=sid, report=Report("ct", sentences), ct=np.zeros((20, 2, 2)))


def test_body_part_questions_and_answers():
    s1 = _study("a", [Sentence("Lungs are clear.", "findings", "lung", "chest", tag="normal"),
                      Sentence("A 9 mm nodule.", "findings", "lung", "chest", (0,), "finding"),
                      Sentence("Liver cyst.", "findings", "abdomen", "abdomen", (1,), "finding")])
    feats = [torch.zeros(2, 3, 4)]
    samples, skipped = body_part_samples([s1], feats, answers="all")
    assert [s.part for s in samples] == ["chest", "abdomen"] and skipped == ["a/pelvis"]
    assert samples[0].answer == "Lungs are clear. A 9 mm nodule."
    assert "chest" in samples[0].question
    pos, skipped = body_part_samples([s1], feats, answers="positive")
    assert [s.answer for s in pos] == ["A 9 mm nodule.", "Liver cyst.", NORMAL_ANSWER.format(part="pelvis")]
    assert skipped == [] and positive_findings(s1.report, "pelvis") == ""
    with pytest.raises(ValueError, match="no findings text for the pelvis"):
        body_part_samples([s1], feats, answers="all", on_missing="error")
    # the same seed draws the same question templates
    assert [s.question for s in body_part_samples([s1], feats, seed=3)[0]] == \
           [s.question for s in body_part_samples([s1], feats, seed=3)[0]]


def test_summarize_mean_and_t_interval():
    rows = [{"variant": "A", "seed": s, "m": v} for s, v in enumerate([1.0, 2.0, 3.0])]
    rows += [{"variant": "B", "seed": 0, "m": 5.0}]
    out = summarize(rows, ["m"])
    # mean 2, sd 1, n 3: half-width t_{0.975,2} / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    assert out.loc["A", "m"] == pytest.approx(2.0)
    assert out.loc["A", "m hi"] - 2.0 == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    assert np.isnan(out.loc["B", "m lo"]) and out.loc["B", "n seeds"] == 1


def test_profile_tokenizer_matches_the_profile():
    from rrg_lite.profiles import load_profile

    cfg = load_profile("mu2", "cpu")
    assert tokens_per_frame(cfg) == (8 // 4) * (64 // 16) * (64 // 16)
    c = tokenizer_config(cfg, "+DTS")
    assert (c.rpe, c.dts, c.dmtp) == (False, True, False) and c.dim == cfg.llm_hidden
    assert tokenizer_config(cfg, NO_IMAGE).dts  # the no-image control uses the full μ²
    full = tokenizer_config(load_profile("mu2", "full"), "μ² (SFT)")
    assert (full.refiner_layers, full.aggregation_layers, full.num_heads, full.k) == (4, 4, 8, 1024)
    assert tokens_per_frame(load_profile("mu2", "full")) == 2048  # M3D-CLIP: 8 × 16 × 16 patches
    assert list(paper_table().columns) == ["BLEU", "ROUGE-1", "METEOR", "BERTScore", "GREEN"]


@pytest.mark.slow
def test_one_tiny_run_trains_and_answers():
    from rrg_lite.mllm.text import build_word_tokenizer
    from rrg_lite.profiles import load_profile
    from rrg_lite.systems.mu2.ablation import generate_answers, question_token_weights, test_loss, train_variant

    cfg = load_profile("mu2", "cpu", steps=3, batch_size=4, llm_hidden=32, k=8, num_queries=4,
                       refiner_layers=1, aggregation_layers=1)
    g = torch.Generator().manual_seed(0)
    samples = [QASample(str(i), f"What are the findings in the {p}?", f"the {p} is normal.", p,
                        torch.randn(cfg.num_frames, tokens_per_frame(cfg), cfg.encoder_width, generator=g), 40)
               for i, p in enumerate(["chest", "abdomen", "pelvis", "chest"])]
    tok = build_word_tokenizer([s.question + " " + s.answer for s in samples])
    model, result = train_variant(cfg, "μ² (SFT)", 0, tok, samples)
    assert result.global_step == 3
    assert test_loss(model, samples).shape == (4,)
    from rrg_lite.systems.mu2.ablation import image_gain
    gain = image_gain(model, samples)
    assert gain.shape == (4,) and np.abs(gain).max() > 0  # other features, other likelihoods
    same = [QASample(s.study_id, s.question, s.answer, s.part, samples[0].features, 40) for s in samples]
    assert np.allclose(image_gain(model, same), 0.0, atol=1e-6)  # every study has the same image: no gain
    from rrg_lite.systems.mu2.ablation import image_gain_interval
    ci = image_gain_interval([model, model], samples)
    assert ci["n"] == 4 and ci["lo"] < ci["gain"] < ci["hi"] and ci["gain"] == pytest.approx(gain.mean(), abs=1e-6)
    assert len(generate_answers(model, samples[:2], max_new_tokens=3)) == 2
    det = question_token_weights(model, samples[0].features, samples[0].question)
    assert det["token_weights"].shape == (1, 4, cfg.num_frames * tokens_per_frame(cfg))


@pytest.mark.slow
def test_prepare_world_splits_studies_and_keeps_test_volumes():
    from rrg_lite.profiles import load_profile
    from rrg_lite.systems.mu2.ablation import prepare_world

    cfg = load_profile("mu2", "cpu", n_train=4, n_test=2, encoder_pretrain_studies=2, encoder_pretrain_steps=2)
    w = prepare_world(cfg)
    assert len(w.train) == 3 * 4 and len(w.test) == 3 * 2  # "positive" answers: every part gets a question
    assert {s.study_id for s in w.test} == {s.study_id for s in w.test_studies}
    assert not {s.study_id for s in w.train} & {s.study_id for s in w.test}
    assert w.test_features[0].shape == (cfg.num_frames, tokens_per_frame(cfg), cfg.encoder_width)
    assert not any(p.requires_grad for p in w.encoder.parameters())
    # the oracle samples are the same questions, with the frames' finding labels as features
    assert [(o.study_id, o.question, o.answer) for o in w.oracle_test] == \
           [(s.study_id, s.question, s.answer) for s in w.test]
    from rrg_lite.systems.mu2.ablation import frame_finding_labels
    from rrg_lite.world.findings import CT_KINDS
    study = w.test_studies[0]
    labels = frame_finding_labels(study.lesion_map, study.findings, list(CT_KINDS), cfg.slices_per_frame, cfg.num_frames)
    oracle = next(o for o in w.oracle_test if o.study_id == study.study_id).features
    assert oracle.shape == w.test_features[0].shape
    assert torch.equal(oracle[:, 0, :len(CT_KINDS)], torch.as_tensor(labels))


@pytest.mark.slow
def test_prepare_manifest_reads_an_amosmm_folder(tmp_path):
    """The full-scale data path on a small AMOS-MM-format folder written by the world (tiny encoder, no weights)."""
    from rrg_lite.profiles import load_profile
    from rrg_lite.systems.mu2.ablation import prepare_manifest
    from rrg_lite.world.ct import generate_ct_cohort
    from rrg_lite.world.writers import write_amosmm

    studies = generate_ct_cohort(3, seed=0)
    write_amosmm({"train": studies[:2], "validation": studies[2:]}, tmp_path)
    cfg = load_profile("mu2", "cpu", dataset="amos-mm", data_root=str(tmp_path), answers="all",
                       encoder_pretrain_steps=0, volume_shape=[48, 64, 64], n_train=0, n_test=0)
    data = prepare_manifest(cfg)
    n_parts = sum(len([p for p in s.report.body_parts.values() if p.strip()]) for s in studies)
    assert len(data.train) + len(data.test) + len(data.skipped) == 3 * 3
    assert len(data.train) + len(data.test) == n_parts
    assert data.test_studies[0].ct.shape == (48, 64, 64)  # min-max normalised and resized, (z, y, x)
    assert 0.0 <= data.test_studies[0].ct.min() and data.test_studies[0].ct.max() <= 1.0
    assert data.test[0].features.shape == (cfg.num_frames, tokens_per_frame(cfg), cfg.encoder_width)
    with pytest.raises(ValueError, match="data_root"):
        prepare_manifest(load_profile("mu2", "cpu", dataset="amos-mm"))


def test_oracle_features_carry_each_frames_labels():
    labels = np.array([[0, 1], [1, 1], [0, 0]], dtype=np.float32)  # 3 frames, 2 kinds
    f = oracle_frame_features(labels, tokens_per_frame=4, width=5)
    assert f.shape == (3, 4, 5)
    assert f[1, 3].tolist() == [1, 1, 0, 0, 0] and f[0, 0].tolist() == [0, 1, 0, 0, 0] and f[2].abs().sum() == 0
    with pytest.raises(ValueError, match="do not fit"):
        oracle_frame_features(labels, 4, width=1)


def test_wrong_image_gives_every_study_another_studys_features():
    f = {sid: torch.full((1, 1, 1), float(i)) for i, sid in enumerate("abc")}
    samples = [QASample(sid, "q", "a", part, f[sid], 10) for sid in "abc" for part in ("chest", "pelvis")]
    wrong = wrong_image(samples)
    assert [s.study_id for s in wrong] == [s.study_id for s in samples]  # same questions, same order
    assert [float(s.features) for s in wrong] == [1, 1, 2, 2, 0, 0]  # a <- b, b <- c, c <- a
    assert [float(s.features) for s in samples] == [0, 0, 1, 1, 2, 2]  # the input is not changed
    with pytest.raises(ValueError, match="two studies"):
        wrong_image(samples[:2])
