"""End to end through the encoder: raw volumes split into frames -> ViT -> tokenizer -> LM; chapter helpers."""
import numpy as np
import pytest
import torch

from rrg_lite.encoders.vit import vit3d
from rrg_lite.systems.llava_ct.recipe import preprocess_ct
from rrg_lite.mllm.lm import tiny_llama
from rrg_lite.mllm.model import MultimodalLM
from rrg_lite.mllm.prompt import MLLMCollator
from rrg_lite.mllm.text import build_word_tokenizer
from rrg_lite.tokenizers.perceiver import PerceiverResampler


def test_frames_through_encoder_and_gradients():
    torch.manual_seed(0)
    tok = build_word_tokenizer(["Write the report .", "The lungs are clear ."])
    enc = vit3d(img_size=(4, 16, 16), patch_size=(2, 8, 8), embed_dim=16, depth=1, heads=2)
    mllm = MultimodalLM(tiny_llama(tok, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1),
                        tok, PerceiverResampler(16, 16, num_tokens=3, depth=1, heads=2), encoder=enc)
    ex = mllm.encode_example("<image> Write the report .", "The lungs are clear .", num_images=1)
    ex["images"] = torch.randn(1, 3, 1, 4, 16, 16)  # 1 volume, T=3 frames of 4 slices
    batch = MLLMCollator(tok.pad_token_id)([ex, ex])
    out = mllm(**batch)
    out.loss.backward()
    assert enc.patch_embed.weight.grad is not None and mllm.projectors["image"].latents.grad is not None
    with pytest.raises(ValueError, match="spatial shape"):
        mllm(**{**batch, "images": [torch.randn(1, 3, 1, 4, 16, 8)] * 2})
    with pytest.raises(ValueError, match="channel"):
        mllm(**{**batch, "images": [torch.randn(1, 3, 2, 4, 16, 16)] * 2})
    with pytest.raises(TypeError, match="floating"):
        mllm(**{**batch, "images": [torch.ones(1, 3, 1, 4, 16, 16, dtype=torch.int16)] * 2})


def test_preprocess_ct_windows():
    hu = np.full((4, 8, 8), -1000.0, dtype=np.float32)
    hu[:, :4] = 40.0
    out = preprocess_ct(hu, shape=(4, 8, 8))
    assert out.shape == (2, 4, 8, 8) and out.dtype == np.float32
    # lung window (-600, 1500): -1000 HU -> (−1000 + 1350) / 1500; mediastinal (40, 400): 40 HU -> 0.5
    assert out[0, 0, 7, 0] == pytest.approx(350 / 1500)
    assert out[1, 0, 0, 0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="D, H, W"):
        preprocess_ct(np.zeros((8, 8)))
