"""Our DPO loss, rewards and sequence log-probs against TRL's DPOTrainer and helpers on the same batch."""
import copy
import tempfile

import pytest
import torch

from rrg_lite.train.dpo import DPOObjective, sequence_logprobs

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")


def test_sequence_logprobs_matches_trl_selective_log_softmax():
    from trl.trainer.utils import selective_log_softmax

    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    labels = torch.randint(0, 11, (3, 7))
    labels[:, :2] = -100
    labels[1, 5:] = -100
    mask = labels[:, 1:] != -100
    theirs = (selective_log_softmax(logits[:, :-1], labels[:, 1:].clamp(min=0)) * mask).sum(-1)
    assert torch.allclose(sequence_logprobs(logits, labels), theirs, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_loss_and_rewards_match_trl_dpo_trainer(beta):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<unk>", "write", "the", "report", ":", "a", "nodule", "in", "lung", "no",
             "effusion", "liver", "is", "normal", "."]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=0, eos_token_id=1)
    reference = LlamaForCausalLM(config)
    policy = copy.deepcopy(reference)
    with torch.no_grad():  # make the policy differ from the reference, so the loss is not just log 2
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    data = datasets.Dataset.from_list([
        {"prompt": "write the report :", "chosen": " a nodule in the lung .", "rejected": " no effusion ."},
        {"prompt": "write the report :", "chosen": " the liver is normal .", "rejected": " a nodule ."},
    ])
    args = trl.DPOConfig(output_dir=tempfile.mkdtemp(), beta=beta, report_to=[], per_device_train_batch_size=2,
                         use_cpu=True, max_length=64, padding_free=False)
    trainer = trl.DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=data,
                             processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()  # no dropout anywhere (tiny Llama has none; be explicit)
    trl_loss = trainer.compute_loss(trainer.model, batch).item()
    trl_metrics = {k: v[-1] for k, v in trainer._metrics["eval"].items()}

    # Same rows (TRL also stacks chosen first, then rejected); labels = tokens where completion_mask is 1.
    ours_batch = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                  "labels": batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)}
    objective = DPOObjective(reference, beta=beta, reference="copy")
    policy.train()
    ours = objective(policy, ours_batch).item()
    assert ours == pytest.approx(trl_loss, rel=1e-4, abs=1e-5)
    mine = objective.history[-1]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                "logps/chosen", "logps/rejected"):
        assert mine[key] == pytest.approx(trl_metrics[key], rel=1e-4, abs=1e-5), key
