"""DPO: the loss by hand, log 2 at the start, the reference options, and plugging into the shared training loop."""
import copy
import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rrg_lite.train.dpo import (DPOCollator, DPOObjective, concat_pair_batch, dpo_loss, dpo_metrics,
                                precompute_reference_logps, sequence_logprobs)


def tiny_lm(seed=0, vocab=12):
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, pad_token_id=0))


def example(prompt, target):
    ids = torch.tensor(prompt + target)
    labels = torch.tensor([-100] * len(prompt) + target)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def collate(examples):
    length = max(len(e["input_ids"]) for e in examples)
    pad = lambda t, v: torch.nn.functional.pad(t, (0, length - len(t)), value=v)  # noqa: E731
    return {"input_ids": torch.stack([pad(e["input_ids"], 0) for e in examples]),
            "attention_mask": torch.stack([pad(e["attention_mask"], 0) for e in examples]),
            "labels": torch.stack([pad(e["labels"], -100) for e in examples])}


PAIRS = [{"chosen": example([1, 2], [5, 6, 7]), "rejected": example([1, 2], [8, 9])},
         {"chosen": example([1, 3], [4, 4]), "rejected": example([1, 3], [10, 11, 5, 6])}]


def test_sequence_logprobs_by_hand():
    # B=1, S=3, V=2: position 0 predicts token 1, position 1 predicts token 2; the prompt token 0 is masked
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])
    labels = torch.tensor([[-100, 1, 0]])
    # p(1 | pos 0) = 1/2 ; p(0 | pos 1) = 3/4
    expected = math.log(0.5) + math.log(0.75)
    assert sequence_logprobs(logits, labels).item() == pytest.approx(expected)
    assert sequence_logprobs(logits, labels, average=True).item() == pytest.approx(expected / 2)
    with pytest.raises(ValueError, match="disagree"):
        sequence_logprobs(logits, labels[:, :2])


def test_dpo_loss_by_hand():
    beta = 0.5
    pc, pr, rc, rr = torch.tensor([-3.0]), torch.tensor([-6.0]), torch.tensor([-4.0]), torch.tensor([-5.0])
    losses, cr, rj = dpo_loss(pc, pr, rc, rr, beta)
    # rewards: 0.5*(−3+4) = 0.5 and 0.5*(−6+5) = −0.5 ; margin 1 ; loss = −log σ(1) = log(1 + e^−1)
    assert cr.item() == pytest.approx(0.5) and rj.item() == pytest.approx(-0.5)
    assert losses.item() == pytest.approx(math.log(1 + math.exp(-1.0)))
    m = dpo_metrics(cr, rj, pc, pr)
    assert m["rewards/margins"] == pytest.approx(1.0) and m["rewards/accuracies"] == 1.0
    # conservative DPO with ε: (1−ε)·(−log σ(1)) + ε·(−log σ(−1))
    eps = 0.1
    smoothed = dpo_loss(pc, pr, rc, rr, beta, label_smoothing=eps)[0].item()
    assert smoothed == pytest.approx((1 - eps) * math.log(1 + math.exp(-1)) + eps * math.log(1 + math.exp(1)))
    with pytest.raises(ValueError):
        dpo_loss(pc, pr, rc, rr, beta=0)


def test_loss_is_log2_when_policy_equals_reference():
    policy = tiny_lm()
    objective = DPOObjective(policy, beta=0.3, reference="copy")
    batch = DPOCollator(collate, pad_token_id=0)(PAIRS)
    assert batch["input_ids"].shape[0] == 4  # chosen rows first, then rejected
    policy.train()
    loss = objective(policy, batch)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert objective.history[-1]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)


def test_gradient_raises_chosen_and_lowers_rejected():
    policy = tiny_lm()
    objective = DPOObjective(policy, beta=0.5)
    batch = DPOCollator(collate, 0)(PAIRS)
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    policy.train()
    for _ in range(20):
        loss = objective(policy, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = objective.history[-1]
    assert last["loss"] < math.log(2) - 0.1
    assert last["rewards/chosen"] > 0 > last["rewards/rejected"] and last["rewards/accuracies"] == 1.0
    # the reference copy did not move
    ref_logps = objective.reference_logps(policy, batch)
    fresh = tiny_lm()
    assert torch.allclose(ref_logps, DPOObjective(fresh, reference="copy").reference_logps(fresh, batch))


def test_precomputed_reference_matches_copy():
    policy = tiny_lm()
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sft = tiny_lm()
    pairs = precompute_reference_logps(sft, PAIRS, collate)
    batch_pre = DPOCollator(collate, 0)(pairs)
    batch = DPOCollator(collate, 0)(PAIRS)
    policy.train()
    a = DPOObjective(policy, 0.2, reference="precomputed")(policy, batch_pre)
    obj = DPOObjective(sft, 0.2, reference="copy")
    b = obj(policy, batch)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    with pytest.raises(KeyError, match="precomputed"):
        DPOObjective(policy, reference="precomputed")(policy, batch)


def test_disable_adapter_reference_is_the_base_model():
    from peft import LoraConfig, get_peft_model

    base = tiny_lm()
    base_copy = copy.deepcopy(base)
    policy = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                             init_lora_weights=False))  # non-zero adapters: policy != base
    batch = DPOCollator(collate, 0)(PAIRS)
    objective = DPOObjective(policy, beta=0.1, reference="disable_adapter")
    ref = objective.reference_logps(policy, batch)
    expected = DPOObjective(base_copy, reference="copy").reference_logps(base_copy, batch)
    assert torch.allclose(ref, expected, atol=1e-5)
    policy.train()
    assert objective(policy, batch).item() != pytest.approx(math.log(2), abs=1e-4)
    with pytest.raises(ValueError, match="PEFT"):
        DPOObjective(tiny_lm(), reference="disable_adapter")


def test_plugs_into_the_shared_training_loop():
    from rrg_lite.train.loop import TrainConfig, train

    policy = tiny_lm()
    objective = DPOObjective(policy, beta=0.5)
    cfg = TrainConfig(lr=5e-2, batch_size=2, max_steps=15, schedule="constant", progress=False, log_every=5,
                      max_grad_norm=None)
    result = train(policy, PAIRS, cfg, collate_fn=DPOCollator(collate, 0), loss_fn=objective)
    assert len(objective.history) == 15 and result.global_step == 15
    assert objective.history[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert objective.history[-1]["rewards/margins"] > 0.5


def test_concat_pair_batch_pads_both_halves():
    a = collate([PAIRS[0]["chosen"]])
    b = collate([PAIRS[1]["rejected"]])
    out = concat_pair_batch(a, b, pad_token_id=0)
    assert out["input_ids"].shape == (2, 6)
    assert out["labels"][0, -1].item() == -100 and out["attention_mask"][0].sum().item() == 5
