"""Chapter hand-off by path: a μ² SFT model saved with save_pretrained_mllm is the same model after load_mllm."""
import json

import pytest
import torch

from rrg_lite.mllm.saving import load_mllm, save_pretrained_mllm
from rrg_lite.train.checkpoint import CheckpointError


def _mu2(cfg, tok, lm=None):
    from rrg_lite.systems.mu2.ablation import build_mllm

    return build_mllm(cfg, "μ² (SFT)", tok, seed=0, lm=lm)


def _setup(lora=False):
    from rrg_lite.mllm.text import build_word_tokenizer
    from rrg_lite.profiles import load_profile
    from rrg_lite.systems.mu2.ablation import QASample, make_examples, tokens_per_frame

    cfg = load_profile("mu2", "cpu", llm_hidden=32, k=8, num_queries=4, refiner_layers=1, aggregation_layers=1)
    g = torch.Generator().manual_seed(0)
    samples = [QASample(str(i), f"What are the findings in the {p}?", f"the {p} is normal.", p,
                        torch.randn(cfg.num_frames, tokens_per_frame(cfg), cfg.encoder_width, generator=g), 40)
               for i, p in enumerate(["chest", "abdomen", "pelvis"])]
    tok = build_word_tokenizer([s.question + " " + s.answer for s in samples])
    mllm = _mu2(cfg, tok)
    if lora:
        from rrg_lite.mllm.stages import apply_lora

        apply_lora(mllm, r=4, alpha=8, dropout=0.0)
    with torch.no_grad():  # move every weight away from its seeded init, so a rebuild from the seed cannot pass
        for p in mllm.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    return cfg, mllm, make_examples(mllm, samples)


@pytest.mark.parametrize("lora", [False, True])
def test_saved_sft_model_loads_by_path_with_the_same_outputs(tmp_path, lora):
    from rrg_lite.mllm.prompt import MLLMCollator

    cfg, mllm, examples = _setup(lora)
    folder = save_pretrained_mllm(mllm, tmp_path / "sft", config={"profile": cfg.as_dict(), "variant": "μ² (SFT)"})
    assert sorted(p.name for p in folder.iterdir()) == ["lm_config.json", "mllm.json", "model.safetensors", "tokenizer"]
    assert not list(tmp_path.glob(".tmp-*"))

    def build(config, lm, tok):
        from rrg_lite.profiles import load_profile

        assert config["variant"] == "μ² (SFT)"
        profile = load_profile("mu2", "cpu", **{k: config["profile"][k] for k in ("llm_hidden", "k", "num_queries")})
        return _mu2(profile, tok, lm=lm)

    loaded, config = load_mllm(folder, build)
    assert config["profile"]["k"] == 8
    assert hasattr(loaded.lm, "peft_config") == lora
    batch = MLLMCollator(mllm.tokenizer.pad_token_id)(examples)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval().sequence_logprobs(**batch), mllm.eval().sequence_logprobs(**batch))


def test_wrong_architecture_or_damaged_folder_is_named(tmp_path):
    cfg, mllm, _ = _setup()
    folder = save_pretrained_mllm(mllm, tmp_path / "sft", config={"profile": cfg.as_dict()})

    def other(config, lm, tok):
        from rrg_lite.profiles import load_profile

        return _mu2(load_profile("mu2", "cpu", llm_hidden=32, k=4, num_queries=4), tok, lm=lm)

    with pytest.raises(CheckpointError, match=r"model.safetensors: .* is \(.*\), the rebuilt model has"):
        load_mllm(folder, other)
    meta = folder / "mllm.json"
    meta.write_text(meta.read_text()[:30])
    with pytest.raises(CheckpointError, match="mllm.json: not valid JSON"):
        load_mllm(folder, other)
    with pytest.raises(CheckpointError, match="no saved MLLM folder"):
        load_mllm(tmp_path / "nowhere", other)
    json.loads((folder / "lm_config.json").read_text())  # still readable JSON
