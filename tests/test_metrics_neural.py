"""Full-scale wrappers: tiny random stand-ins, never a download."""
import sys

import numpy as np
import pytest

from rrg_lite.metrics.ctrate_labeler import CTRATE_LABELS
from rrg_lite.metrics.green import green_with_judge
from rrg_lite.metrics.neural_labelers import chexbert_label, ctclip_radbert_label


@pytest.mark.slow
def test_ctclip_radbert_from_tiny_local_checkpoint(tmp_path):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "pleural", "effusion", "nodule", "."]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, num_labels=18, problem_type="multi_label_classification",
                     id2label=dict(enumerate(CTRATE_LABELS)), label2id={n: i for i, n in enumerate(CTRATE_LABELS)})
    BertForSequenceClassification(cfg).save_pretrained(tmp_path, safe_serialization=True)
    out = ctclip_radbert_label(["no pleural effusion .", "nodule ."], str(tmp_path), batch_size=1)
    assert out.shape == (2, 18) and set(np.unique(out)) <= {0, 1}
    with pytest.raises(FileNotFoundError, match="not a local directory"):
        ctclip_radbert_label(["x"], str(tmp_path / "missing"))


def test_chexbert_wrapper_explains_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "f1chexbert", None)
    with pytest.raises(ImportError, match="f1chexbert"):
        chexbert_label(["No effusion."])


def test_green_with_any_judge():
    def judge(ref, cand):
        return ("[Clinically Significant Errors]:\n(a) False report of a finding in the candidate: 1.\n\n"
                "[Matched Findings]:\n1. effusion") if cand != ref else "garbled"
    res = green_with_judge(["a", "b"], ["a", "c"], judge)
    assert res.value == 0.5 and "1 malformed" in res.notes[0]
