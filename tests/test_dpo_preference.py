"""Preference pairs: sample → GREEN → best/worst, drop rules, JSONL round trip."""
import pytest

from rrg_lite.train.preference import build_preference_pairs, rank_samples, read_pairs, write_pairs


def test_rank_samples_by_hand():
    assert rank_samples([0.2, 0.8, 0.1, 0.8]) == (1, 2, None)      # earliest best, the worst
    assert rank_samples([0.5, 0.1, 0.9, 0.1]) == (2, 3, None)      # latest worst on a tie
    assert rank_samples([0.0, 0.0, 0.0])[2] == "best_zero"
    assert rank_samples([0.4, 0.4])[2] == "no_preference"
    assert rank_samples([0.4, None])[2] == "unscored"
    assert rank_samples([])[2] == "no_samples"


def fake_sampler(cases, k, seed):
    # sample j of a case repeats the reference's first j words: longer prefix = better
    return [[" ".join(c["reference"].split()[:j]) or "nothing" for j in range(k)] for c in cases]


def prefix_score(preds, refs):
    return [len(p.split()) / len(r.split()) if p != "nothing" else 0.0 for p, r in zip(preds, refs)]


def test_build_pairs_and_drop_cases(tmp_path):
    cases = [{"id": f"c{i}", "image": f"v{i}.nii.gz", "question": "Write the report.",
              "reference": "a nodule in the right lung"} for i in range(3)]
    cases.append({"id": "zero", "image": "z.nii.gz", "question": "q", "reference": "x"})
    zero_scorer = lambda preds, refs: [0.0 if r == "x" else s for s, r in zip(prefix_score(preds, refs), refs)]  # noqa
    pairs, stats = build_preference_pairs(cases, fake_sampler, zero_scorer, num_samples=4, batch_size=3,
                                          progress=False, provenance={"scorer": "prefix"})
    assert stats["pairs"] == 3 and stats["dropped"] == {"best_zero": 1}
    p = pairs[0]
    assert p["chosen"] == "a nodule in" and p["rejected"] == "nothing"
    assert p["chosen_score"] == pytest.approx(0.5) and p["rejected_score"] == 0.0
    assert p["scores"] == pytest.approx([0.0, 1 / 6, 2 / 6, 3 / 6]) and p["provenance"]["scorer"] == "prefix"
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    assert read_pairs(tmp_path / "pairs.jsonl") == pairs
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "chosen": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_pairs(tmp_path / "bad.jsonl")


def test_bad_sampler_output_is_an_error():
    cases = [{"id": "a", "reference": "r"}]
    with pytest.raises(ValueError, match="expected 3 each"):
        build_preference_pairs(cases, lambda c, k, s: [["only one"]], prefix_score, num_samples=3, progress=False)
    with pytest.raises(ValueError, match="at least 2"):
        build_preference_pairs(cases, fake_sampler, prefix_score, num_samples=1, progress=False)


def test_green_scorer_prefers_the_right_report():
    from rrg_lite.train.preference import green_scorer

    ref = "There is a 12 mm nodule in the right upper lobe. There is a small left pleural effusion."
    score = green_scorer("ctrate")
    good, bad = score([ref, "No pleural effusion. The lungs are clear."], [ref, ref])
    assert good == pytest.approx(1.0) and bad < good


def _tiny_mllm():
    import torch
    from torch import nn

    from rrg_lite.mllm.lm import tiny_llama
    from rrg_lite.mllm.model import MultimodalLM
    from rrg_lite.mllm.text import build_word_tokenizer
    from rrg_lite.tokenizers.base import VisualTokenizer

    class QuestionAware(VisualTokenizer):
        """K tokens from the mean feature plus the mean question embedding (so the prompt matters)."""

        def __init__(self, in_dim, out_dim, k):
            super().__init__()
            self.in_dim, self.out_dim, self.num_tokens = in_dim, out_dim, k
            self.proj = nn.Linear(in_dim, out_dim)

        def tokenize(self, features, question_embeds=None, question_mask=None):
            q = (question_embeds * question_mask[..., None]).sum(1) / question_mask.sum(1, keepdim=True)
            return (self.proj(features.mean(dim=(1, 2))) + q)[:, None, :].repeat(1, self.num_tokens, 1)

    tok = build_word_tokenizer(["a nodule in the right lung .", "no effusion .", "what is in the chest ?",
                                "describe the abdomen ."])
    torch.manual_seed(0)
    lm = tiny_llama(tok, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1, seed=0)
    return MultimodalLM(lm, tok, {"image": QuestionAware(8, 16, 3)})


def test_cached_visual_tokens_give_the_same_model_outputs():
    import torch

    from rrg_lite.mllm.prompt import MLLMCollator
    from rrg_lite.train.dpo import DPOCollator, DPOObjective
    from rrg_lite.train.preference import cache_visual_tokens, pair_examples

    mllm = _tiny_mllm().eval()
    torch.manual_seed(1)
    feats = {"c1": torch.randn(1, 2, 4, 8), "c2": torch.randn(1, 2, 4, 8)}
    prompts = {"c1": "<image> what is in the chest ?", "c2": "<image> describe the abdomen ."}
    examples = []
    for cid in ("c1", "c2"):
        ex = mllm.encode_example(prompts[cid], "a nodule in the right lung .")
        ex["features"] = feats[cid]
        examples.append(ex)
    cached = cache_visual_tokens(mllm, examples, batch_size=1)
    assert "features" not in cached[0] and cached[0]["visual_embeds"].shape == (1, 3, 16)
    collate = MLLMCollator(mllm.tokenizer.pad_token_id)
    with torch.no_grad():
        a = mllm.sequence_logprobs(**collate(examples))
        b = mllm.sequence_logprobs(**collate(cached))
    assert torch.allclose(a, b, atol=1e-5)
    # and the tokens depend on the question (μ²'s tokenizer reads it): same features, other prompt -> other tokens
    other = mllm.encode_example(prompts["c2"], "no effusion .")
    other["features"] = feats["c1"]
    assert not torch.allclose(cache_visual_tokens(mllm, [other])[0]["visual_embeds"], cached[0]["visual_embeds"])

    pairs = [{"id": "c1", "chosen": "a nodule in the right lung .", "rejected": "no effusion ."}]
    data = pair_examples(mllm, pairs, prompts, {"c1": {"visual_embeds": cached[0]["visual_embeds"]}})
    batch = DPOCollator(collate, mllm.tokenizer.pad_token_id)(data)
    mllm.train()
    loss = DPOObjective(mllm, beta=0.1, reference="copy")(mllm, batch)
    assert abs(loss.item() - 0.6931472) < 1e-5
