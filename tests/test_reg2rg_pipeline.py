"""Reg2RG's parts fit together: a world study -> LFD tokens -> shuffled RRA prompt/target -> the shared MLLM's loss."""
import numpy as np
import torch

from rrg_lite.data.transforms import window
from rrg_lite.encoders.vit import vit3d
from rrg_lite.mllm.lm import tiny_llama
from rrg_lite.mllm.model import DEFAULT_SLOTS, MultimodalLM
from rrg_lite.mllm.prompt import MLLMCollator, encode_example
from rrg_lite.mllm.text import build_word_tokenizer
from rrg_lite.systems.reg2rg.alignment import parse_regions, rra_example
from rrg_lite.systems.reg2rg.features import LFDConfig, LocalFeatureDecoupling
from rrg_lite.world.ct import make_ct_study


def test_world_study_through_lfd_rra_and_the_mllm():
    st = make_ct_study(0)
    # three CT windows as channels; air is 0.217 in the lung window (−600, 1500) and 0 in the other two
    vol = torch.from_numpy(np.stack([window(st.ct, w) for w in ("lung", "mediastinum", "bone")]))
    reports = st.report.region_reports
    regions = [r for r in reports if st.region_masks[r].any()]        # a mask and a report, as RadGenome pairs them
    masks = torch.from_numpy(np.stack([st.region_masks[r] for r in regions]))
    torch.manual_seed(0)
    enc = vit3d(img_size=(16, 32, 32), patch_size=(4, 8, 8), in_channels=3, embed_dim=32, depth=1, heads=2)
    lfd = LocalFeatureDecoupling(enc, LFDConfig(input_shape=(16, 32, 32), llm_dim=32, mask_patch=(4, 8, 8),
                                                perceiver_depth=1, fill=(0.217, 0.0, 0.0)))
    out = lfd(vol, masks)
    assert out.regions.shape == (len(regions), 33, 32) and out.image.shape == (32, 32)

    ex = rra_example(regions, reports, rng=0)
    assert parse_regions(ex.target) == {r: " ".join(reports[r].split()) for r in regions}
    tok = build_word_tokenizer([ex.target, ex.prompt])
    lm = tiny_llama(tok, hidden_size=32, num_layers=1)
    mllm = MultimodalLM(lm, tok, projectors={}, slots=DEFAULT_SLOTS)   # tokens come ready: visual_embeds only
    e = encode_example(tok, ex.prompt, ex.target, num_visual_tokens=out.num_visual_tokens(),
                       num_images={"<image>": 1, "<region>": len(regions)})
    e["visual_embeds"] = out.visual_embeds(order=ex.rows)
    n_visual = 32 + 33 * len(regions)
    region_id = tok.convert_tokens_to_ids("<region>")
    assert int((e["input_ids"] == region_id).sum()) == 33 * len(regions)
    batch = MLLMCollator(tok.pad_token_id)([e])
    loss = mllm(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()                                                    # Eq. 9 reaches f_A, f_M and f_P, not f_V
    assert any(p.grad is not None for p in lfd.mask_encoder.parameters())
    assert any(p.grad is not None for p in lfd.adapter.parameters())
    assert all(p.grad is None for p in lfd.encoder.parameters())
    assert n_visual < batch["input_ids"].shape[1]
