"""The multimodal LM wrapper: placeholders, splicing, label masking, question embeddings, generation, errors."""
import pytest
import torch
from torch import nn

from rrg_lite.mllm.lm import llama_parameter_count, tiny_llama
from rrg_lite.mllm.model import MultimodalLM, compact_rows
from rrg_lite.mllm.prompt import IGNORE_INDEX, MLLMCollator
from rrg_lite.mllm.stages import apply_lora, configure_stage, count_parameters
from rrg_lite.mllm.text import add_special_tokens, build_word_tokenizer, check_special_tokens
from rrg_lite.tokenizers.base import VisualTokenizer

TEXTS = ["The lungs are clear.", "A 12 mm nodule in the right upper lobe.", "Write the report.", "Describe region"]


class Recorder(VisualTokenizer):
    """Mean-pools features to K tokens and records the question it was given."""

    def __init__(self, in_dim, out_dim, k):
        super().__init__()
        self.in_dim, self.out_dim, self.num_tokens = in_dim, out_dim, k
        self.proj = nn.Linear(in_dim, out_dim)

    def tokenize(self, features, question_embeds=None, question_mask=None):
        self.seen = (question_embeds, question_mask)
        return self.proj(features.mean(dim=(1, 2)))[:, None, :].repeat(1, self.num_tokens, 1)


@pytest.fixture(scope="module")
def tok():
    return build_word_tokenizer(TEXTS)


def make(tok, k=3, d=16):
    lm = tiny_llama(tok, hidden_size=d, num_layers=1, num_heads=2, num_kv_heads=1, seed=0)
    return MultimodalLM(lm, tok, {"image": Recorder(8, d, k), "region": Recorder(8, d, 2)})


def test_word_tokenizer_roundtrip_and_specials(tok):
    ids = tok("The lungs are clear.", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "The lungs are clear."
    assert tok("Write <image> the", add_special_tokens=False)["input_ids"][1] == tok.convert_tokens_to_ids("<image>")
    assert tok.convert_tokens_to_ids("unseenword") == tok.unk_token_id
    assert check_special_tokens(tok)["<region>"] == tok.convert_tokens_to_ids("<region>")


def test_encode_expands_placeholders_and_masks_prompt(tok):
    m = make(tok, k=3)
    ex = m.encode_example("Write the report. <image> <image>", "The lungs are clear.", num_images=2)
    ids, labels = ex["input_ids"], ex["labels"]
    img = tok.convert_tokens_to_ids("<image>")
    assert int((ids == img).sum()) == 6
    target = tok("The lungs are clear.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert labels[-len(target):].tolist() == target
    assert (labels[: len(ids) - len(target)] == IGNORE_INDEX).all()


def test_splice_puts_image_tokens_at_placeholders(tok):
    m = make(tok, k=3)
    ex = m.encode_example("Write <image> the report. <region>", "The lungs are clear.",
                          num_images={"image": 1, "region": 1})
    feats = {"image": torch.randn(1, 2, 4, 8), "region": torch.randn(1, 1, 4, 8)}
    batch = MLLMCollator(tok.pad_token_id)([{**ex, "features": feats}])
    embeds, _, labels = m.build_inputs(batch["input_ids"], batch["attention_mask"], batch["labels"], features=batch["features"])
    img_pos = batch["input_ids"][0] == tok.convert_tokens_to_ids("<image>")
    reg_pos = batch["input_ids"][0] == tok.convert_tokens_to_ids("<region>")
    want_img = m.projectors["image"].proj(feats["image"].mean(dim=(1, 2)))[0]
    want_reg = m.projectors["region"].proj(feats["region"].mean(dim=(1, 2)))[0]
    torch.testing.assert_close(embeds[0, img_pos], want_img.expand(3, -1))
    torch.testing.assert_close(embeds[0, reg_pos], want_reg.expand(2, -1))
    text_pos = ~(img_pos | reg_pos)
    torch.testing.assert_close(embeds[0, text_pos], m.lm.get_input_embeddings()(batch["input_ids"][0, text_pos]))
    assert (labels[0, img_pos | reg_pos] == IGNORE_INDEX).all()


def test_question_embeddings_are_prompt_text_only(tok):
    m = make(tok, k=2)
    exs = [m.encode_example("Write the report. <image>", "The lungs are clear.", num_images=1),
           m.encode_example("Write <image> <image>", "A nodule.", num_images=2)]
    for e, n in zip(exs, (1, 2)):
        e["features"] = torch.randn(n, 1, 3, 8)
    batch = MLLMCollator(tok.pad_token_id)(exs)
    m(**batch)
    q, qm = m.projectors["image"].seen
    assert q.shape[0] == 3 and qm.shape[0] == 3  # one question copy per image
    emb = m.lm.get_input_embeddings()
    for row, sample in ((0, 0), (1, 1), (2, 1)):
        ids = batch["input_ids"][sample]
        keep = (batch["labels"][sample] == IGNORE_INDEX) & (batch["attention_mask"][sample] == 1)
        keep &= ids != tok.convert_tokens_to_ids("<image>")
        n = int(keep.sum())
        assert int(qm[row].sum()) == n
        torch.testing.assert_close(q[row, :n], emb(ids[keep]))


def test_compact_rows_by_hand():
    x = torch.arange(6.0).reshape(1, 6, 1).repeat(2, 1, 1)
    mask = torch.tensor([[0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    out, m = compact_rows(x, mask)
    assert out[..., 0].tolist() == [[1, 3, 4], [0, 0, 0]]
    assert m.tolist() == [[True, True, True], [True, False, False]]


def test_loss_ignores_prompt_and_matches_manual_ce(tok):
    m = make(tok, k=2)
    ex = m.encode_example("Write <image>", "The lungs are clear.", num_images=1)
    ex["features"] = torch.randn(1, 1, 3, 8)
    batch = MLLMCollator(tok.pad_token_id)([ex])
    out = m(**batch)
    logits = out.logits[0, :-1]
    tgt = batch["labels"][0, 1:]
    keep = tgt != IGNORE_INDEX
    manual = nn.functional.cross_entropy(logits[keep], tgt[keep])
    torch.testing.assert_close(out.loss, manual)
    torch.testing.assert_close(m.sequence_logprobs(**batch, average=True), -manual[None])


def test_generation_greedy_and_seeded_sampling(tok):
    m = make(tok, k=2).eval()
    ex = m.encode_example("Write <image>", num_images=1)
    ex["features"] = torch.randn(1, 1, 3, 8)
    short = m.encode_example("<image>", num_images=1)
    short["features"] = torch.randn(1, 1, 3, 8)
    batch = MLLMCollator(tok.pad_token_id, padding_side="left")([ex, short])
    ids = m.generate(**batch, max_new_tokens=4)
    assert ids.shape[0] == 2 and ids.shape[1] <= 4
    # Left padding must not change a row's greedy continuation.
    alone = m.generate(**MLLMCollator(tok.pad_token_id, padding_side="left")([short]), max_new_tokens=4)
    assert ids[1, : alone.shape[1]].tolist() == alone[0].tolist()
    a = m.generate_text(**batch, max_new_tokens=4, do_sample=True, seed=3, num_return_sequences=2)
    b = m.generate_text(**batch, max_new_tokens=4, do_sample=True, seed=3, num_return_sequences=2)
    assert a == b and len(a) == 4
    with pytest.raises(ValueError, match="left-padded"):
        m.generate(**MLLMCollator(tok.pad_token_id, padding_side="right")([ex, short]), max_new_tokens=2)


def test_bad_inputs_raise_clear_errors(tok):
    m = make(tok, k=2)
    with pytest.raises(ValueError, match="1 <image> placeholder"):
        m.encode_example("Write <image>", "x", num_images=2)
    ex = m.encode_example("Write <image>", "The lungs.", num_images=1)
    batch = MLLMCollator(tok.pad_token_id)([ex])
    with pytest.raises(ValueError, match="placeholder tokens but 2 image"):
        m(**batch, features=[torch.randn(2, 1, 3, 8)])
    with pytest.raises(ValueError, match="no image inputs"):
        m(**batch)
    with pytest.raises(ValueError, match=r"\(B, T, N, E\)"):
        m(**batch, features=[torch.randn(1, 3, 8)])
    with pytest.raises(TypeError, match="floating"):
        m(**batch, features=[torch.ones(1, 1, 3, 8, dtype=torch.long)])
    with pytest.raises(ValueError, match="width E=5"):
        m(**batch, features=[torch.randn(1, 1, 3, 5)])


def test_lm_without_placeholders_is_refused():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"<pad>": 0, "<unk>": 1, "</s>": 2, "a": 3}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    plain = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")
    lm = tiny_llama(plain, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1)
    with pytest.raises(ValueError, match="lacks the special token"):
        MultimodalLM(lm, plain, Recorder(8, 16, 2))
    add_special_tokens(plain)  # tokenizer grows, model not resized -> still refused
    with pytest.raises(ValueError, match="outside the LM"):
        MultimodalLM(lm, plain, Recorder(8, 16, 2))
    add_special_tokens(plain, lm)
    MultimodalLM(lm, plain, Recorder(8, 16, 2))


def test_llama_parameter_count_matches_model(tok):
    lm = tiny_llama(tok, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=48)
    n = sum(p.numel() for p in lm.parameters())
    assert llama_parameter_count(len(tok), 32, 48, 2, 4, 2, tie_word_embeddings=True) == n


def test_stages_and_lora(tok):
    m = make(tok, k=2)
    counts = configure_stage(m, "align")
    assert counts["lm_trainable"] == 0 and counts["projectors_trainable"] == counts["projectors_total"] > 0
    with pytest.raises(ValueError, match="apply_lora"):
        configure_stage(m, "lora")
    apply_lora(m, r=2, alpha=4, dropout=0.0, target_modules=("q_proj", "v_proj"))
    counts = configure_stage(m, "lora")
    lora = [n for n, p in m.lm.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n for n in lora)
    # LoRA B starts at zero: the adapted LM computes exactly what the base LM did.
    ex = m.encode_example("Write <image>", "The lungs are clear.", num_images=1)
    ex["features"] = torch.randn(1, 1, 3, 8)
    batch = MLLMCollator(tok.pad_token_id)([ex])
    with m.lm.disable_adapter():
        base = m(**batch).loss
    torch.testing.assert_close(m(**batch).loss, base)
    # q_proj 16->16: A (2x16) + B (16x2); v_proj 16->8 (one kv head of 8): A (2x16) + B (8x2).
    assert counts["lm_trainable"] == count_parameters(m)["lm_trainable"] == (32 + 32) + (32 + 16)
    with pytest.raises(ValueError, match="not in the LM"):
        apply_lora(make(tok), target_modules=("nope",))
