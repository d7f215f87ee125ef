"""The MLLM's three shared extensions: per-token loss weights (LLM-RG4 TLW), multi-turn chat with the loss on
assistant turns (M4CXR CoT), attention from text to visual tokens (ViPET Eq. 10) — on hand-checkable cases."""
import copy
import math

import pytest
import torch
from torch import nn

from rrg_lite.mllm.attention import mean_attention_to, select_layers, visual_positions
from rrg_lite.mllm.dialogue import encode_dialogue
from rrg_lite.mllm.lm import tiny_llama
from rrg_lite.mllm.losses import per_token_loss, weighted_lm_loss
from rrg_lite.mllm.model import MultimodalLM
from rrg_lite.mllm.prompt import (IGNORE_INDEX, MLLMCollator, encode_example, target_token_ids,
                                  token_weights_from_spans)
from rrg_lite.mllm.text import build_word_tokenizer
from rrg_lite.tokenizers.base import VisualTokenizer

TEXTS = ["The lungs are clear. A nodule.", "Write the report.", "Which findings ?", "No finding"]
K = 2  # visual tokens per image in the model tests


class MeanPool(VisualTokenizer):
    """Mean-pools features (n, T, N, E) and repeats a linear projection K times: (n, K, D)."""

    def __init__(self, in_dim, out_dim, k):
        super().__init__()
        self.in_dim, self.out_dim, self.num_tokens = in_dim, out_dim, k
        self.proj = nn.Linear(in_dim, out_dim)

    def tokenize(self, features, question_embeds=None, question_mask=None):
        return self.proj(features.mean(dim=(1, 2)))[:, None, :].repeat(1, self.num_tokens, 1)


@pytest.fixture(scope="module")
def tok():
    return build_word_tokenizer(TEXTS)


def make(tok, attn="eager", layers=2, d=16):
    lm = tiny_llama(tok, hidden_size=d, num_layers=layers, num_heads=2, num_kv_heads=1, seed=0, attn_implementation=attn)
    return MultimodalLM(lm, tok, {"image": MeanPool(8, d, K)})


def toks(tok, ids):
    return tok.convert_ids_to_tokens(ids.tolist() if isinstance(ids, torch.Tensor) else ids)


# ---- 1. per-token loss weights ---------------------------------------------------------------------------------
def _hand_logits():
    """V = 2, S = 4. Position t predicts labels[t + 1] (the shift).

    logits[0] = [ln 3, 0] -> p = [3/4, 1/4]; labels[1] = 0 -> ℓ_0 = −ln(3/4) = ln(4/3) ≈ 0.2877
    logits[1] = [ln 3, 0] -> labels[2] = 1 -> ℓ_1 = −ln(1/4) = ln 4 ≈ 1.3863
    logits[2] = [0, 0]    -> labels[3] = -100 -> ℓ_2 = 0 (ignored); logits[3] predicts nothing.
    """
    logits = torch.tensor([[[math.log(3), 0.0], [math.log(3), 0.0], [0.0, 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 0, 1, IGNORE_INDEX]])
    return logits, labels


def test_per_token_loss_by_hand():
    logits, labels = _hand_logits()
    ell = per_token_loss(logits, labels)
    assert ell.shape == (1, 3)
    torch.testing.assert_close(ell, torch.tensor([[math.log(4 / 3), math.log(4), 0.0]]))


def test_weighted_loss_both_norms_by_hand():
    logits, labels = _hand_logits()
    w = torch.tensor([[0.0, 2.0, 1.0, 7.0]])    # aligned with labels: c = 2 on ℓ_0, 1 on ℓ_1; 7 sits on an ignored label
    num = 2 * math.log(4 / 3) + math.log(4)     # Σ c·ℓ = 0.5754 + 1.3863 = 1.9617
    # "mean": / N = 2 target tokens -> 0.9808; "weighted_mean": / Σ c = 3 -> 0.6539
    torch.testing.assert_close(weighted_lm_loss(logits, labels, w, "mean"), torch.tensor(num / 2))
    torch.testing.assert_close(weighted_lm_loss(logits, labels, w, "weighted_mean"), torch.tensor(num / 3))
    plain = (math.log(4 / 3) + math.log(4)) / 2
    torch.testing.assert_close(weighted_lm_loss(logits, labels), torch.tensor(plain))
    ones = torch.ones(1, 4)
    for norm in ("mean", "weighted_mean"):
        torch.testing.assert_close(weighted_lm_loss(logits, labels, ones, norm), torch.tensor(plain))


def test_weighted_loss_errors():
    logits, labels = _hand_logits()
    with pytest.raises(ValueError, match="loss_weight_norm"):
        weighted_lm_loss(logits, labels, norm="sum")
    with pytest.raises(ValueError, match=r"\(B, S\) tensor"):
        weighted_lm_loss(logits, labels, torch.ones(1, 3))
    with pytest.raises(ValueError, match="non-negative"):
        weighted_lm_loss(logits, labels, torch.tensor([[0.0, -1.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="floating"):
        weighted_lm_loss(logits, labels, torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="disagree"):
        per_token_loss(logits, labels[:, :3])
    with pytest.raises(ValueError, match="integer"):
        per_token_loss(logits, labels.float())


def test_token_weights_from_spans_by_hand(tok):
    report = "The lungs are clear. A nodule."
    # tokens: ▁The ▁lungs ▁are ▁clear . | ▁A ▁nodule . | </s>; the 2nd sentence is characters 21..30
    # ("▁A" has offsets (20, 22) — its leading space must not make it overlap a span ending at 20).
    w = token_weights_from_spans(tok, report, [(21, 30, 1.75)])
    assert w == [1.0] * 5 + [1.75] * 3 + [1.0]
    assert len(w) == len(target_token_ids(tok, report))
    w = token_weights_from_spans(tok, report, [(0, 20, 1.75)], default=0.5, eos_weight=2.0)
    assert w == [1.75] * 5 + [0.5] * 3 + [2.0]
    with pytest.raises(ValueError, match="character range"):
        token_weights_from_spans(tok, report, [(5, 99, 1.75)])
    with pytest.raises(ValueError, match="negative weight"):
        token_weights_from_spans(tok, report, [(0, 5, -1.0)])


def test_encode_example_target_weights(tok):
    kw = dict(num_visual_tokens={"<image>": 3}, num_images={"<image>": 1})
    report = "The lungs are clear."
    n = len(target_token_ids(tok, report))            # 5 tokens + EOS = 6
    assert n == 6
    w = [1.0, 2.0, 1.0, 1.0, 3.0, 1.0]
    ex = encode_example(tok, "Write the report. <image>", report, target_weights=w, **kw)
    plain = encode_example(tok, "Write the report. <image>", report, **kw)
    assert torch.equal(ex["input_ids"], plain["input_ids"]) and torch.equal(ex["labels"], plain["labels"])
    lw = ex["loss_weights"]
    assert lw.dtype == torch.float32 and lw.shape == ex["input_ids"].shape
    prompt_len = len(lw) - n
    assert lw[:prompt_len].tolist() == [0.0] * prompt_len and lw[prompt_len:].tolist() == w
    assert (ex["labels"][:prompt_len] == IGNORE_INDEX).all() and (ex["labels"][prompt_len:] != IGNORE_INDEX).all()
    cut = encode_example(tok, "Write the report. <image>", report, target_weights=torch.tensor(w), max_length=prompt_len + 2, **kw)
    assert cut["loss_weights"].tolist() == [0.0] * prompt_len + [1.0, 2.0]
    with pytest.raises(ValueError, match="5 entries but the target has 6 tokens"):
        encode_example(tok, "Write <image>", report, target_weights=w[:5], **kw)
    with pytest.raises(ValueError, match="without a target"):
        encode_example(tok, "Write <image>", None, target_weights=w, **kw)
    with pytest.raises(ValueError, match="non-negative"):
        encode_example(tok, "Write <image>", report, target_weights=[-1.0] + w[1:], **kw)


def test_collator_pads_loss_weights(tok):
    kw = dict(num_visual_tokens={"<image>": 1}, num_images={"<image>": 1})
    a = encode_example(tok, "<image>", "No finding", target_weights=[2.0, 2.0, 1.0], **kw)
    b = encode_example(tok, "<image>", "The lungs are clear.", target_weights=[1.0] * 6, **kw)
    right = MLLMCollator(tok.pad_token_id)([a, b])
    assert right["loss_weights"].shape == right["labels"].shape
    pad = len(b["input_ids"]) - len(a["input_ids"])
    assert right["loss_weights"][0].tolist() == a["loss_weights"].tolist() + [0.0] * pad
    left = MLLMCollator(tok.pad_token_id, padding_side="left")([a, b])
    assert left["loss_weights"][0].tolist() == [0.0] * pad + a["loss_weights"].tolist()
    with pytest.raises(ValueError, match="'loss_weights' and others do not"):
        MLLMCollator(tok.pad_token_id)([a, encode_example(tok, "<image>", "No finding", **kw)])


def _weighted_batch(m, tok, weights_a, weights_b):
    a = m.encode_example("Write the report. <image>", "The lungs are clear.", num_images=1, target_weights=weights_a)
    b = m.encode_example("<image>", "No finding", num_images=1, target_weights=weights_b)
    gen = torch.Generator().manual_seed(0)
    for e in (a, b):
        e["features"] = torch.randn(1, 1, 3, 8, generator=gen)
    return MLLMCollator(tok.pad_token_id)([a, b])


def test_model_weighted_loss_matches_plain_and_manual(tok):
    from rrg_lite.train.loop import default_loss

    m = make(tok)
    ones = _weighted_batch(m, tok, [1.0] * 6, [1.0] * 3)
    plain = {k: v for k, v in ones.items() if k != "loss_weights"}
    base = m(**plain).loss
    for norm in ("mean", "weighted_mean"):
        torch.testing.assert_close(m(**ones, loss_weight_norm=norm).loss, base)
    # weights 3 on "clear" of sample a, 0.5 on every token of sample b: check against per-token CE by hand
    batch = _weighted_batch(m, tok, [1.0, 1.0, 1.0, 3.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    out = m(**batch)
    ell = per_token_loss(out.logits, batch["labels"])
    c = batch["loss_weights"][:, 1:]
    keep = batch["labels"][:, 1:] != IGNORE_INDEX
    assert int(keep.sum()) == 9
    torch.testing.assert_close(out.loss, (c * ell)[keep].sum() / 9)
    torch.testing.assert_close(out["loss"], out.loss)
    torch.testing.assert_close(m(**batch, loss_weight_norm="weighted_mean").loss, (c * ell)[keep].sum() / c[keep].sum())
    assert not torch.allclose(out.loss, base)
    # the training loop's default loss (model(**batch).loss) picks the weights up from the collated batch
    torch.testing.assert_close(default_loss(m, batch), out.loss)
    # log-probabilities stay unweighted, and a training batch may be passed as it is
    torch.testing.assert_close(m.sequence_logprobs(**batch), m.sequence_logprobs(**plain))
    torch.testing.assert_close(m.sequence_logprobs(**plain), -per_token_loss(out.logits, batch["labels"]).sum(1))
    with pytest.raises(ValueError, match="without labels"):
        m(**{k: v for k, v in batch.items() if k != "labels"})
    with pytest.raises(ValueError, match="loss_weight_norm"):
        m(**batch, loss_weight_norm="sum")


# ---- 2. multi-turn chat ------------------------------------------------------------------------------------------
TWO_TURNS = [
    {"role": "user", "content": "Which findings ? <image>"},
    {"role": "assistant", "content": "A nodule."},
    {"role": "user", "content": "Write the report."},
    {"role": "assistant", "content": "The lungs are clear."},
]
KW = dict(num_visual_tokens={"<image>": 2}, num_images={"<image>": 1})


def test_two_turn_dialogue_labels_token_by_token(tok):
    ex = encode_dialogue(tok, TWO_TURNS, **KW)
    # The word-level template: "<s>user: Q assistant: A</s> user: Q2 assistant: A2</s> ", <image> expanded x2.
    assert toks(tok, ex["input_ids"]) == [
        "<s>", "▁user", ":", "▁Which", "▁findings", "▁", "?", "<image>", "<image>", "▁assistant", ":",   # 0..10
        "▁A", "▁nodule", ".", "</s>",                                                                   # 11..14 turn 1
        "▁user", ":", "▁Write", "▁the", "▁report", ".", "▁assistant", ":",                              # 15..22
        "▁The", "▁lungs", "▁are", "▁clear", ".", "</s>",                                                # 23..28 turn 2
    ]
    ids, labels = ex["input_ids"].tolist(), ex["labels"].tolist()
    learned = set(range(11, 15)) | set(range(23, 29))
    assert labels == [ids[p] if p in learned else IGNORE_INDEX for p in range(len(ids))]
    assert ex["assistant_spans"] == [(11, 15), (23, 29)]
    assert torch.equal(ex["attention_mask"], torch.ones(29, dtype=torch.long))


def test_train_on_last_and_generation_prompt(tok):
    full = encode_dialogue(tok, TWO_TURNS, **KW)
    last = encode_dialogue(tok, TWO_TURNS, train_on="last", **KW)
    assert torch.equal(last["input_ids"], full["input_ids"])
    assert (last["labels"][:23] == IGNORE_INDEX).all() and torch.equal(last["labels"][23:], full["labels"][23:])
    gen = encode_dialogue(tok, TWO_TURNS[:3], **KW)                 # ends with a user turn
    assert "labels" not in gen
    # the generation prompt is exactly the training sequence up to the second answer
    assert torch.equal(gen["input_ids"], full["input_ids"][:23])
    assert toks(tok, gen["input_ids"][-2:]) == ["▁assistant", ":"]


def test_single_turn_dialogue_equals_encode_example(tok):
    msgs = [{"role": "user", "content": "Write the report. <image>"}, {"role": "assistant", "content": "The lungs are clear."}]
    d = encode_dialogue(tok, msgs, system="No finding", **KW)
    e = encode_example(tok, "Write the report. <image>", "The lungs are clear.", system="No finding", **KW)
    assert torch.equal(d["input_ids"], e["input_ids"]) and torch.equal(d["labels"], e["labels"])


def test_dialogue_images_in_turn_one_and_counts(tok):
    ex = encode_dialogue(tok, TWO_TURNS, num_visual_tokens={"<image>": 3}, num_images={"<image>": 1})
    img = tok.convert_tokens_to_ids("<image>")
    pos = (ex["input_ids"] == img).nonzero().flatten().tolist()
    assert pos == [7, 8, 9] and (ex["labels"][pos] == IGNORE_INDEX).all()
    assert ex["assistant_spans"] == [(12, 16), (24, 30)]       # shifted by the extra placeholder
    with pytest.raises(ValueError, match="1 <image> placeholder"):
        encode_dialogue(tok, TWO_TURNS, num_visual_tokens={"<image>": 2}, num_images={"<image>": 2})


def test_dialogue_max_length(tok):
    cut = encode_dialogue(tok, TWO_TURNS, max_length=25, **KW)
    assert len(cut["input_ids"]) == 25 and cut["labels"][23:].tolist() == cut["input_ids"][23:].tolist()
    assert cut["assistant_spans"] == [(11, 15), (23, 25)]
    with pytest.raises(ValueError, match="no target token would remain"):
        encode_dialogue(tok, TWO_TURNS, max_length=23, **KW)
    with pytest.raises(ValueError, match="max_length"):
        encode_dialogue(tok, TWO_TURNS[:3], max_length=10, **KW)


def test_dialogue_bad_input_errors(tok):
    with pytest.raises(ValueError, match="non-empty list"):
        encode_dialogue(tok, [], **KW)
    with pytest.raises(ValueError, match="role 'doctor'"):
        encode_dialogue(tok, [{"role": "doctor", "content": "x <image>"}], **KW)
    with pytest.raises(ValueError, match="start .* with a user turn"):
        encode_dialogue(tok, [{"role": "assistant", "content": "x"}], **KW)
    with pytest.raises(ValueError, match="'role' and 'content'"):
        encode_dialogue(tok, [{"role": "user"}], **KW)
    with pytest.raises(ValueError, match="train_on"):
        encode_dialogue(tok, TWO_TURNS, train_on="first", **KW)
    with pytest.raises(ValueError, match="already start with a system"):
        encode_dialogue(tok, [{"role": "system", "content": "x"}] + TWO_TURNS, system="y", **KW)
    with pytest.raises(ValueError, match="assistant turn contains an image placeholder"):
        encode_dialogue(tok, [TWO_TURNS[0], {"role": "assistant", "content": "<image>"}], num_visual_tokens={"<image>": 2})


def test_end_of_turn_token_and_prefix_violation(tok):
    # A Llama-3-like template: a header per turn and an end-of-turn token ("</s>" here) after *every* turn.
    header = copy.deepcopy(tok)
    header.chat_template = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }} : {{ m['content'] }}{{ eos_token }}"
                            "{% endfor %}{% if add_generation_prompt %}assistant :{% endif %}")
    ex = encode_dialogue(header, TWO_TURNS[:2], **KW)
    s, e = ex["assistant_spans"][0]
    assert toks(header, ex["input_ids"][s:e]) == ["▁A", "▁nodule", ".", "</s>"]
    assert toks(header, ex["input_ids"][s - 3:s]) == ["▁assistant", "▁", ":"]     # the header is not learned
    assert (ex["labels"][:s] == IGNORE_INDEX).all() and ex["labels"][s:].tolist() == ex["input_ids"][s:].tolist()
    # A template that drops earlier answers (as some "thinking" templates do) cannot give stable boundaries.
    forgetful = copy.deepcopy(tok)
    forgetful.chat_template = ("{% for m in messages %}{{ m['role'] }}: "
                               "{% if m['role'] != 'assistant' or loop.last %}{{ m['content'] }}{% endif %} {% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% endif %}")
    with pytest.raises(ValueError, match="not prefix-stable at assistant turn 1"):
        encode_dialogue(forgetful, TWO_TURNS, **KW)


def test_model_dialogue_loss_is_ce_over_both_answers(tok):
    m = make(tok, layers=1)
    ex = m.encode_dialogue(TWO_TURNS, num_images=1)
    assert int((ex["input_ids"] == tok.convert_tokens_to_ids("<image>")).sum()) == K
    ex["features"] = torch.randn(1, 1, 3, 8)
    batch = MLLMCollator(tok.pad_token_id)([ex])
    out = m(**batch)
    ell = per_token_loss(out.logits, batch["labels"])[0]
    # labels at positions 11..14 and 23..28 are predicted by logits at 10..13 and 22..27
    cols = list(range(10, 14)) + list(range(22, 28))
    torch.testing.assert_close(out.loss, ell[cols].mean())
    assert (ell[[c for c in range(ell.shape[0]) if c not in cols]] == 0).all()


# ---- 3. attention to visual tokens -------------------------------------------------------------------------------
def _hand_attentions():
    """L = 2 layers, B = 2, H = 2, S = 3. Visual keys: sample 0 at positions (0, 1); sample 1 at (0,) + padding.

    Sample 0, query rows 1 and 2 (row 0 is not a query):
      layer 1 head 1: row1 [.5 .5 0], row2 [.2 .3 .5]     head 2: row1 [1 0 0],   row2 [.6 .2 .2]
      layer 2 head 1: row1 [0 1 0],   row2 [.1 .1 .8]     head 2: row1 [.3 .7 0], row2 [.4 .4 .2]
      M^v_0 = (.5+.2 + 1+.6 + 0+.1 + .3+.4) / (L·H·|Q| = 8) = 3.1/8 = .3875
      M^v_1 = (.5+.3 + 0+.2 + 1+.1 + .7+.4) / 8 = 3.2/8 = .4           (Σ = .7875 ≤ 1)
    Sample 1, query row 2 only, every head of every layer: row2 [.25 .25 .5] -> M^v_0 = .25, padding -> 0.
    """
    a = torch.zeros(2, 2, 2, 3, 3)                   # (L, B, H, S, S)
    a[..., 0, 0] = 1.0                               # row 0 attends to itself (causal)
    a[:, :, :, 1, :2] = 0.5                          # a default row 1 for sample 1; sample 0 overwritten below
    rows = {(0, 0): ([.5, .5, 0], [.2, .3, .5]), (0, 1): ([1, 0, 0], [.6, .2, .2]),
            (1, 0): ([0, 1, 0], [.1, .1, .8]), (1, 1): ([.3, .7, 0], [.4, .4, .2])}
    for (layer, head), (r1, r2) in rows.items():
        a[layer, 0, head, 1] = torch.tensor(r1)
        a[layer, 0, head, 2] = torch.tensor(r2)
    a[:, 1, :, 2] = torch.tensor([.25, .25, .5])
    query = torch.tensor([[False, True, True], [False, False, True]])
    keys = torch.tensor([[0, 1], [0, -1]])
    return a, query, keys


def test_mean_attention_to_by_hand():
    a, query, keys = _hand_attentions()
    want = torch.tensor([[0.3875, 0.4], [0.25, 0.0]])
    torch.testing.assert_close(mean_attention_to(tuple(a.unbind(0)), query, keys), want)
    torch.testing.assert_close(mean_attention_to(a, query, keys), want)       # one (L, B, H, S, S) tensor
    # the last layer alone: M^v_0 = (0+.1+.3+.4)/4 = .2, M^v_1 = (1+.1+.7+.4)/4 = .55
    last = select_layers(list(a.unbind(0)), [-1])
    torch.testing.assert_close(mean_attention_to(last, query, keys)[0], torch.tensor([0.2, 0.55]))


def test_mean_attention_to_agrees_with_vipet_eq10():
    from rrg_lite.systems.vipet.alignment import visual_attention_map

    gen = torch.Generator().manual_seed(0)
    a = torch.rand(3, 2, 2, 7, 7, generator=gen).softmax(-1)
    query = torch.zeros(2, 7, dtype=torch.bool)
    query[:, 4:] = True
    keys = torch.tensor([[1, 2, 3], [1, 2, 3]])
    torch.testing.assert_close(mean_attention_to(a, query, keys),
                               visual_attention_map(a, [1, 2, 3], [4, 5, 6]))


def test_mean_attention_to_errors_and_grad():
    a, query, keys = _hand_attentions()
    with pytest.raises(ValueError, match="eager"):
        mean_attention_to((), query, keys)
    with pytest.raises(ValueError, match="eager"):
        mean_attention_to(None, query, keys)
    with pytest.raises(ValueError, match="no query rows"):
        mean_attention_to(a, torch.zeros(2, 3, dtype=torch.bool), keys)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        mean_attention_to(a, query, torch.tensor([[0, 3], [0, 1]]))
    with pytest.raises(ValueError, match="query_mask"):
        mean_attention_to(a, query.float(), keys)
    with pytest.raises(ValueError, match="key_positions"):
        mean_attention_to(a, query, keys.float())
    with pytest.raises(ValueError, match=r"\(B, H, S, S\)"):
        mean_attention_to([a[0, :, 0]], query, keys)
    with pytest.raises(ValueError, match="out of range"):
        select_layers(list(a.unbind(0)), [2])
    leaf = a.clone().requires_grad_(True)
    mean_attention_to(leaf, query, keys).sum().backward()
    # d/dA of M^v_0 for sample 1: only row 2, column 0 of each (layer, head), with weight 1/(L·H·|Q|) = 1/4
    assert torch.allclose(leaf.grad[:, 1, :, 2, 0], torch.full((2, 2), 0.25))
    assert leaf.grad[:, 1, :, 2, 1:].abs().sum() == 0 and leaf.grad[:, :, :, 0].abs().sum() == 0


def test_visual_positions_by_hand():
    ids = torch.tensor([[5, 9, 9, 1, 9], [9, 2, 3, 4, 0], [1, 2, 3, 4, 5]])
    assert visual_positions(ids, 9).tolist() == [[1, 2, 4], [0, -1, -1], [-1, -1, -1]]
    assert visual_positions(ids, 7).shape == (3, 0)
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        visual_positions(ids[0], 9)


def _attention_batch(m, tok, padding_side="right"):
    a = m.encode_example("Write <image> the report.", "The lungs are clear.", num_images=1)
    b = m.encode_example("<image> <image>", "No finding", num_images=2)
    gen = torch.Generator().manual_seed(1)
    a["features"] = torch.randn(1, 1, 3, 8, generator=gen)
    b["features"] = torch.randn(2, 1, 3, 8, generator=gen)
    return MLLMCollator(tok.pad_token_id, padding_side=padding_side)([a, b])


def test_visual_attention_on_tiny_llama(tok):
    m = make(tok, layers=2)
    batch = _attention_batch(m, tok)
    va = m.visual_attention(**batch)
    assert va.attention.shape == (2, 2 * K) and va.positions.shape == (2, 2 * K)
    img = tok.convert_tokens_to_ids("<image>")
    assert va.positions[0].tolist() == [4, 5, -1, -1]                           # "<s> user : Write <image>x2 ..."
    assert (batch["input_ids"][1, va.positions[1]] == img).all()
    assert (va.attention >= 0).all() and (va.attention[0, 2:] == 0).all()
    assert (va.attention.sum(1) <= 1 + 1e-5).all() and (va.attention[:, 0] > 0).all()
    # the same pass gives the plain loss
    torch.testing.assert_close(va.output.loss, m(**batch).loss)
    # by hand from forward(output_attentions=True): query rows = the target tokens
    out = m(**batch, output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape[-1] == batch["input_ids"].shape[1]
    query = batch["labels"] != IGNORE_INDEX
    torch.testing.assert_close(va.attention, mean_attention_to(out.attentions, query, va.positions))
    # "after_image": sample 0 also counts the prompt text after its image ("the report . assistant :")
    after = m.visual_attention(**batch, queries="after_image")
    rows = torch.zeros_like(query)
    rows[0, 6:] = True
    rows[1, int(va.positions[1].max()) + 1:] = True
    rows &= batch["attention_mask"].bool()
    torch.testing.assert_close(after.attention, mean_attention_to(out.attentions, rows, va.positions))
    assert not torch.allclose(after.attention[0], va.attention[0])
    last = m.visual_attention(**batch, layers=[-1])
    torch.testing.assert_close(last.attention, mean_attention_to(out.attentions[-1:], query, va.positions))


def test_visual_attention_is_differentiable_to_the_projector(tok):
    m = make(tok, layers=2)
    batch = _attention_batch(m, tok)
    va = m.visual_attention(**batch)
    (va.output.loss + (1 - va.attention.sum(1)).pow(2).mean()).backward()
    grad = m.projectors["image"].proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    m.zero_grad()
    va = m.visual_attention(**batch)
    va.attention.sum().backward()                     # the alignment term alone also reaches the projector
    assert m.projectors["image"].proj.weight.grad.abs().sum() > 0


def test_visual_attention_left_padding_and_weights(tok):
    m = make(tok, layers=1)
    right = m.visual_attention(**_attention_batch(m, tok, "right"))
    left_batch = _attention_batch(m, tok, "left")
    left = m.visual_attention(**left_batch, queries="targets")
    # padding moves positions but not the map (the LM masks padded keys; RoPE is relative)
    torch.testing.assert_close(left.attention, right.attention, atol=1e-5, rtol=1e-4)
    assert (left.positions[0, :K] == right.positions[0, :K] + (left_batch["input_ids"][0] == tok.pad_token_id).sum()).all()
    # the pass's loss is the weighted one when the batch carries loss_weights (L_llm of TLW + L_align in one pass)
    weighted = _weighted_batch(m, tok, [1.0, 1.0, 1.0, 3.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    va = m.visual_attention(**weighted, loss_weight_norm="weighted_mean")
    torch.testing.assert_close(va.output.loss, m(**weighted, loss_weight_norm="weighted_mean").loss)


def test_visual_attention_errors(tok):
    batch = _attention_batch(make(tok), tok)
    with pytest.raises(ValueError, match="eager"):
        make(tok, attn="sdpa").visual_attention(**batch)
    m = make(tok)
    with pytest.raises(ValueError, match="needs labels"):
        m.visual_attention(**{k: v for k, v in batch.items() if k != "labels"})
    m.visual_attention(**{k: v for k, v in batch.items() if k != "labels"}, queries="after_image")
    with pytest.raises(ValueError, match="queries must be"):
        m.visual_attention(**batch, queries="all")
    with pytest.raises(ValueError, match="unknown slot"):
        m.visual_attention(**batch, slot="mask")
    with pytest.raises(ValueError, match="out of range"):
        m.visual_attention(**batch, layers=[5])
