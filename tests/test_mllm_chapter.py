"""Chapter 5's helpers end to end on a tiny world: encoder from a profile, stages, generation, the wrong-image control."""
import copy

import pytest
import torch

from rrg_lite.encoders.pretrain import extract_features, train_label_probe
from rrg_lite.systems.llava_ct.recipe import (IMAGE_PROMPT, TEXT_PROMPT, build_encoder, build_language_model, derangement,
                                    make_ct_report_data, report_examples, resolve_weights, train_stage)
from rrg_lite.mllm.model import MultimodalLM
from rrg_lite.mllm.prompt import MLLMCollator
from rrg_lite.mllm.stages import apply_lora, configure_stage
from rrg_lite.profiles import load_profile
from rrg_lite.tokenizers.pooling import SpatialPoolingProjector
from rrg_lite.train.evaluate import generate_reports
from rrg_lite.train.loop import TrainConfig


def test_derangement_has_no_fixed_point_and_is_seeded():
    for n in (2, 3, 17):
        p = derangement(n, seed=n)
        assert sorted(p.tolist()) == list(range(n)) and not (p == torch.arange(n)).any()
    assert torch.equal(derangement(9, 1), derangement(9, 1))
    with pytest.raises(ValueError):
        derangement(1)


def test_resolve_weights_local_and_errors(tmp_path):
    assert resolve_weights(None) is None and resolve_weights(str(tmp_path)) == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a Hub id"):
        resolve_weights(str(tmp_path / "missing" / "weights.safetensors"))


def test_chapter_pipeline_on_a_tiny_world():
    torch.manual_seed(0)
    shape = (8, 32, 32)
    cfg = load_profile("mllm", "cpu", encoder="vit3d", standardize=True, volume_shape=list(shape), patch_size=[4, 16, 16],
                       stem_cell=[2, 4, 4], encoder_width=16, llm_hidden=32, llm_layers=1, n_train=6, n_test=2)
    data = make_ct_report_data(cfg.n_train, cfg.n_test, seed=0, shape=shape, progress=False,
                               windows=cfg.windows).standardize(inplace=True)
    enc = build_encoder(cfg, seed=0)
    assert enc.patch_embed_kind == "conv_max" and enc.in_channels == len(cfg.windows) and enc.grid == (2, 2, 2)
    probe, res = train_label_probe(enc, data.volumes[:6], data.labels[:6],
                                   TrainConfig(lr=1e-3, batch_size=3, epochs=1, progress=False), pool=cfg.probe_pool)
    assert res.global_step == 2
    feats = extract_features(enc, data.volumes, batch_size=3)
    assert feats.shape == (8, 1, 8, 16)
    lm, tok = build_language_model(cfg, data.reports[:6], extra_texts=[IMAGE_PROMPT, TEXT_PROMPT])
    proj = SpatialPoolingProjector(16, 32, grid=enc.grid, kernel=(1, 2, 2))
    mllm = MultimodalLM(lm, tok, {"image": proj})
    collate = MLLMCollator(tok.pad_token_id)
    configure_stage(mllm, "text")
    r0 = train_stage(mllm, report_examples(mllm, None, data.reports[:6], with_image=False), collate, steps=2, lr=1e-3,
                     batch_size=3, progress=False)
    images = report_examples(mllm, feats[:6], data.reports[:6])
    configure_stage(mllm, "align")
    lm_before = copy.deepcopy(mllm.lm.state_dict())
    r1 = train_stage(mllm, images, collate, steps=2, lr=1e-2, batch_size=3, progress=False)
    assert all(torch.equal(v, mllm.lm.state_dict()[k]) for k, v in lm_before.items())   # stage 1: the LM is frozen
    apply_lora(mllm, r=2, alpha=4, target_modules=("q_proj", "v_proj"))
    configure_stage(mllm, "lora")
    r2 = train_stage(mllm, images, collate, steps=2, lr=1e-2, batch_size=3, progress=False)
    assert r0.global_step == r1.global_step == r2.global_step == 2
    test = report_examples(mllm, feats[6:], None)
    out = generate_reports(mllm, test, batch_size=2, max_new_tokens=5, progress=False)
    wrong = generate_reports(mllm, report_examples(mllm, feats[6:][derangement(2)], None), batch_size=2,
                             max_new_tokens=5, progress=False)
    assert len(out) == len(wrong) == 2 and all(isinstance(t, str) for t in out)
    with pytest.raises(ValueError, match="steps"):
        train_stage(mllm, images, collate, steps=0, lr=1e-3)


def test_shared_encoder_refuses_other_input(tmp_path, monkeypatch):
    """encoder="shared" hands chapter 5 chapter 4's cached encoder, and says so when the profile's input differs."""
    from rrg_lite.encoders import hub
    from rrg_lite.systems.llava_ct import recipe

    tiny = dict(n_train=8, shape=[8, 32, 32], patch_size=[4, 8, 8], embed_dim=16, depth=1, heads=2, stem_width=8,
                epochs=1, batch_size=8, clip_dim=8)
    bundle = hub.get_encoder("ct", cache_dir=tmp_path, **tiny)
    monkeypatch.setattr(hub, "get_encoder", lambda *a, **k: bundle)
    ok = load_profile("mllm", "cpu", volume_shape=[8, 32, 32], world=bundle.spec["world"])
    enc = recipe.build_encoder(ok)
    assert enc.encoder is bundle.encoder and enc.grid == bundle.encoder.grid
    with pytest.raises(ValueError, match=r"shape: profile \[32, 64, 64\], encoder \[8, 32, 32\]"):
        recipe.shared_encoder(load_profile("mllm", "cpu", world=bundle.spec["world"]))
    with pytest.raises(ValueError, match="standardises each voxel itself"):
        recipe.shared_encoder(load_profile("mllm", "cpu", standardize=True))

