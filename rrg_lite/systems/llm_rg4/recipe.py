"""LLM-RG4's recipe in functions: studies -> frozen features -> ATF (or interleaved) + LLM -> stage 1, stage 2.

    studies = world_studies(cfg)                               # XRayStudy with frontal, lateral and a prior study
    data = prepare_data(cfg, studies)                          # RG4Data: frozen features once, targets per scenario
    model = build_model(cfg, tokenizer, fusion="atf", seed=0)  # RG4Model = fusion module + MultimodalLM
    train_stage(model, data, stage=1, ...)                     # frontal ATF only, LLM frozen, sn
    train_stage(model, data, stage=2, ...)                     # ATF + LoRA, all four scenarios, one scenario a batch
    nll = test_nll(model, data, test_idx, "mn"); texts = generate(model, data, test_idx, "mn")

paper -> code:

- the four scenarios from the same patients: every world study has a lateral view and a prior study
  (profile ``world``: ``p_lateral = p_prior_xray = 1``); a scenario *drops* inputs (:class:`.scenarios.Scenario`).
- frozen encoders (RAD-DINO, CXR-BERT): :func:`rrg_lite.encoders.hub.get_encoder` ``("xray_frontal")`` and
  ``("xray_lateral")`` -> v_f, v_l (n, N_I, E); the prior report through :class:`PriorReportEncoder` (the frontal
  encoder's CLIP text tower, frozen, one token per sentence) -> v_t (n, N_T, D_t) with a mask. Computed once in
  :func:`prepare_data`; every variant and seed reads the same tensors.
- the clean per-scenario target (MIMIC-RG4's rewriting, here exact from the world's tags): :func:`clean_sentences`
  drops input-agnostic sentences and keeps comparisons only when a prior is given; the original report keeps all.
- ATF vs the interleaved baseline (Table 4 "ATF"): :class:`RG4Model` runs the fusion module and hands its tokens
  to :class:`rrg_lite.mllm.model.MultimodalLM` as ``visual_embeds`` at the prompt's ``<image>`` placeholders
  (K = N for ATF in every scenario, K = :meth:`.atf.InterleavedTokens.tokens_for` for the baseline).
- TLW (Eq. 10): per-token weights through ``encode_example(target_weights=...)`` -> ``loss_weights`` ->
  :func:`.tlw.tlw_lm_loss` (``form`` "paper" or "code").
- stage 1 (frontal branch only, LLM frozen, sn) and stage 2 (ATF + LoRA, all four scenarios, each mini-batch from
  one scenario): :func:`train_stage` with :func:`rrg_lite.train.loop.train`. The loop shuffles its items, so the
  items here are whole single-scenario batches cut by :func:`.scenarios.round_robin_batches` — the turns come in
  a shuffled order rather than strictly in turn (the batches' content is what the code's sampler gives).

Inputs can be swapped per example (``sources``): another patient's frontal/lateral/prior, or a zeroed lateral —
the controls of the experiment (:mod:`.experiment`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from rrg_lite.metrics.text import split_sentences
from rrg_lite.world.vocab import AGNOSTIC_TAGS, CHEXPERT_LABELS

from .atf import ATFConfig, AdaptiveTokenFusion, InterleavedTokens
from .discriminator import CATEGORIES, WORLD_TAG_TO_CATEGORY
from .scenarios import SCENARIOS, Scenario, as_scenario, round_robin_batches
from .tlw import tlw_lm_loss

__all__ = ["PROMPTS", "world_studies", "clean_sentences", "target_text", "PriorReportEncoder", "RG4Data",
           "prepare_data", "RG4Model", "build_tokenizer", "build_model", "warm_up_lm", "encode_items",
           "Sources", "train_stage", "test_nll", "generate", "lateral_only_labels", "other_patient", "sentence_flags",
           "configure", "add_lora", "collate", "new_lm", "atf_config"]

#: The view-specific task of the paper's prompt; the image tokens come last, right before the answer (chapter 5).
PROMPTS = {
    Scenario.SN: "Write the report for this frontal chest X-ray. <image>",
    Scenario.SW: "Write the report for this frontal chest X-ray, given the prior report. <image>",
    Scenario.MN: "Write the report for these frontal and lateral chest X-rays. <image>",
    Scenario.MW: "Write the report for these frontal and lateral chest X-rays, given the prior report. <image>",
}


# ---- data ------------------------------------------------------------------------------------------------------
def world_studies(cfg, n: int | None = None, seed: int | None = None):
    """``cfg.n_train + cfg.n_test`` seeded world X-ray studies (``cfg.world`` overrides); each must have a lateral
    view and a prior study, or the four scenarios would not come from the same patients (an error says which)."""
    from rrg_lite.world.config import WorldConfig
    from rrg_lite.world.xray import generate_xray_cohort

    n = cfg.n_train + cfg.n_test if n is None else n
    studies = generate_xray_cohort(n, seed=cfg.world_seed if seed is None else seed,
                                   cfg=WorldConfig(**dict(cfg.world or {})))
    for st in studies:
        if st.lateral is None or st.prior is None:
            raise ValueError(f"world study {st.study_id} has no {'lateral view' if st.lateral is None else 'prior'}:"
                             " set world p_lateral = p_prior_xray = 1 (the profile's world) for LLM-RG4")
    return studies


def clean_sentences(report, scenario: Scenario | str | None, sections: Sequence[str] = ("findings", "impression")):
    """The sentences of the target for ``scenario`` (``None`` = the original report, every sentence).

    Clean (MIMIC-RG4's rewrite, exact here): no input-agnostic sentence (prior procedure, view, communication,
    recommendation, "compared with the prior"), and a comparison ("the effusion has increased") only with a prior.
    """
    sents = [s for s in report.sentences if s.section in sections]
    if scenario is None:
        return sents
    sc = as_scenario(scenario)
    return [s for s in sents if s.tag not in AGNOSTIC_TAGS and (s.tag != "comparison" or sc.has_prior)]


def target_text(sentences) -> str:
    return " ".join(s.text for s in sentences)


class PriorReportEncoder:
    """The frozen prior-report encoder: a report -> one token per sentence, (N_T, D_t) + mask (N_T,).

    CPU: the CLIP text tower the frontal X-ray encoder was pre-trained with (hashed word n-grams, see
    :class:`rrg_lite.encoders.text.NgramTextEncoder`) — a text encoder trained on the world's reports, frozen, as
    CXR-BERT is in the paper. Tokens are z-scored per channel with :meth:`fit` statistics (training reports).
    """

    def __init__(self, text_encoder: nn.Module, max_tokens: int):
        if max_tokens < 1:
            raise ValueError(f"PriorReportEncoder: max_tokens must be >= 1, got {max_tokens}")
        self.encoder, self.max_tokens = text_encoder.eval(), int(max_tokens)
        self.mean, self.std = None, None

    @torch.no_grad()
    def _raw(self, reports: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        dim = self.encoder.dim
        out = torch.zeros(len(reports), self.max_tokens, dim)
        mask = torch.zeros(len(reports), self.max_tokens, dtype=torch.bool)
        for i, r in enumerate(reports):
            sents = split_sentences(r)[: self.max_tokens]
            if not sents:
                raise ValueError(f"PriorReportEncoder: prior report {i} is empty")
            out[i, : len(sents)] = self.encoder.encode(sents).float()
            mask[i, : len(sents)] = True
        return out, mask

    def fit(self, reports: Sequence[str]) -> "PriorReportEncoder":
        x, m = self._raw(reports)
        tokens = x[m]
        self.mean, self.std = tokens.mean(0), tokens.std(0) + 1e-3
        return self

    def __call__(self, reports: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """reports -> (tokens (n, N_T, D_t), mask (n, N_T) bool); padding rows are zero."""
        x, m = self._raw(reports)
        if self.mean is not None:
            x = torch.where(m[..., None], (x - self.mean) / self.std, torch.zeros(()))
        return x, m


def sentence_flags(sentences) -> np.ndarray:
    """World sentences -> (n, 4) bool: each sentence's input-agnostic category (:data:`.discriminator.CATEGORIES`
    order) through :data:`.discriminator.WORLD_TAG_TO_CATEGORY`, exactly as the world tagged it."""
    rows = [[WORLD_TAG_TO_CATEGORY.get(s.tag) == c for c in CATEGORIES] for s in sentences]
    return np.array(rows, dtype=bool).reshape(len(rows), len(CATEGORIES))


def lateral_only_labels(study) -> np.ndarray:
    """(14,) bool: CheXpert labels of the study's present findings that only the lateral view shows."""
    out = np.zeros(len(CHEXPERT_LABELS), dtype=bool)
    for f in study.findings:
        if f.present and f.label in CHEXPERT_LABELS and tuple(f.views) == ("lateral",):
            out[CHEXPERT_LABELS.index(f.label)] = True
    return out


@dataclass
class RG4Data:
    """Everything the models read, per study (the first ``n_train`` train, the rest are held out).

    v_f, v_l: (n, N_I, E) frozen frontal / lateral tokens. v_t: (n, N_T, D_t) prior-report tokens, t_mask (n, N_T).
    targets[sc]: the clean target of scenario sc (str per study); original: the report as written.
    flags[sc] / flags_original: per study an (n_sentences, 4) bool array of the target's input-agnostic categories
    (exact, from the world's tags). labels: (n, 14) CheXpert codes. lateral_only: (n, 14) bool.
    """

    study_ids: list[str]
    v_f: torch.Tensor
    v_l: torch.Tensor
    v_t: torch.Tensor
    t_mask: torch.Tensor
    targets: dict
    original: list[str]
    flags: dict
    flags_original: list
    key_sentences: dict               # sc or "original" -> per study (sentence texts, key flags) for oracle TLW
    labels: np.ndarray
    lateral_only: np.ndarray
    n_train: int
    seconds: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.study_ids)

    @property
    def train_idx(self) -> list[int]:
        return list(range(self.n_train))

    @property
    def test_idx(self) -> list[int]:
        return list(range(self.n_train, len(self)))

    def target(self, i: int, scenario, original: bool = False) -> str:
        return self.original[i] if original else self.targets[as_scenario(scenario)][i]


def _view_features(bundle, images: list[np.ndarray]) -> torch.Tensor:
    """(n, S, S) images -> (n, N, E) standardised tokens of the frozen encoder, at its input size."""
    from rrg_lite.data.transforms import resize

    size = bundle.preprocess.get("size")
    x = np.stack([img if size is None or img.shape == (size, size) else resize(img, (size, size)) for img in images])
    return bundle.features(torch.from_numpy(x.astype(np.float32))[:, None])[:, 0]


def _key_sentences(sents) -> tuple[list[str], list[bool]]:
    key = [s.tag == "finding" or (s.tag == "comparison" and bool(s.finding_ids) and not s.negated) for s in sents]
    return [s.text for s in sents], key


def prepare_data(cfg, studies, frontal=None, lateral=None, text_encoder: nn.Module | None = None) -> RG4Data:
    """World studies -> :class:`RG4Data`: the frozen features once, and every scenario's target.

    ``frontal`` / ``lateral``: encoder bundles (default ``get_encoder("xray_frontal" / "xray_lateral")``, cached);
    ``text_encoder``: the prior-report encoder (default the frontal bundle's CLIP text tower).
    """
    import time

    from rrg_lite.encoders.hub import get_encoder

    if cfg.encoder != "vit2d":
        raise ValueError(f"prepare_data reads world studies with the book's encoders (encoder='vit2d'); "
                         f"encoder={cfg.encoder!r} needs a MIMIC-CXR reader, which this recipe does not have yet")
    t0 = time.perf_counter()
    frontal = frontal or get_encoder("xray_frontal")
    lateral = lateral or get_encoder("xray_lateral")
    v_f = _view_features(frontal, [s.frontal for s in studies])
    v_l = _view_features(lateral, [s.lateral for s in studies])
    if text_encoder is None and getattr(cfg, "text_encoder", None) is not None:
        raise ValueError(f"text_encoder={cfg.text_encoder!r}: a real prior-report encoder (CXR-BERT) is not wired "
                         "into this recipe yet; pass text_encoder= (a module with .encode(texts) and .dim) or None")
    if text_encoder is None:
        if frontal.heads is None or getattr(frontal.heads, "text", None) is None:
            raise ValueError("the frontal encoder has no CLIP text tower to encode the prior report; pass text_encoder")
        text_encoder = frontal.heads.text
    sections = tuple(cfg.sections)
    priors = [target_text(clean_sentences(s.prior.report, None, sections)) for s in studies]
    prior_enc = PriorReportEncoder(text_encoder, cfg.prior_tokens).fit(priors[: cfg.n_train])
    v_t, t_mask = prior_enc(priors)
    t1 = time.perf_counter()
    targets, flags, keys = {}, {}, {}
    for sc in SCENARIOS:
        sents = [clean_sentences(s.report, sc, sections) for s in studies]
        targets[sc] = [target_text(x) for x in sents]
        flags[sc] = [sentence_flags(x) for x in sents]
        keys[sc] = [_key_sentences(x) for x in sents]
    orig = [clean_sentences(s.report, None, sections) for s in studies]
    keys["original"] = [_key_sentences(x) for x in orig]
    for i, t in enumerate(targets[Scenario.SN]):
        if not t.strip():
            raise ValueError(f"study {studies[i].study_id}: the clean sn target is empty")
    return RG4Data([s.study_id for s in studies], v_f, v_l, v_t, t_mask, targets, [target_text(x) for x in orig],
                   flags, [sentence_flags(x) for x in orig], keys, np.stack([s.labels for s in studies]),
                   np.stack([lateral_only_labels(s) for s in studies]), cfg.n_train,
                   {"features": t1 - t0, "targets": time.perf_counter() - t1})


# ---- model -----------------------------------------------------------------------------------------------------
class RG4Model(nn.Module):
    """The fusion module (:class:`.atf.AdaptiveTokenFusion` or :class:`.atf.InterleavedTokens`) + a
    :class:`~rrg_lite.mllm.model.MultimodalLM` that reads its tokens as ``visual_embeds``.

    forward(input_ids (B, S), attention_mask, labels, loss_weights (B, S) or None, v_f (B, N_I, E), v_l or None,
            v_t or None, t_mask, has_lateral (B,) bool, has_prior (B,) bool) -> object with ``.loss`` (and ``.logits``)
    """

    def __init__(self, mllm, fusion: nn.Module, loss_form: str = "paper", lam: float = 1.75):
        super().__init__()
        self.mllm, self.fusion, self.loss_form, self.lam = mllm, fusion, loss_form, lam

    @property
    def kind(self) -> str:
        return "atf" if isinstance(self.fusion, AdaptiveTokenFusion) else "interleaved"

    def tokens_for(self, scenario) -> int:
        return self.fusion.tokens_for(scenario)

    def visual_tokens(self, v_f, v_l=None, v_t=None, t_mask=None, has_lateral=None, has_prior=None):
        """-> (B, K, D) tokens, K the same for every row of a single-scenario batch."""
        if self.kind == "atf":
            return self.fusion(v_f, v_l, v_t, has_lateral, has_prior, prior_mask=t_mask)
        # the interleaved baseline reads every prior token (the code pads reports and attends the padding)
        tokens, mask = self.fusion(v_f, v_l, v_t, has_lateral, has_prior)
        if not bool(mask.all()):
            raise ValueError("RG4Model: an interleaved batch must be single-scenario (rows of one token count)")
        return tokens

    def forward(self, input_ids, attention_mask=None, labels=None, loss_weights=None, v_f=None, v_l=None, v_t=None,
                t_mask=None, has_lateral=None, has_prior=None):
        tokens = self.visual_tokens(v_f, v_l, v_t, t_mask, has_lateral, has_prior)
        embeds = tokens[:, None]                                        # (B, 1 image, K, D)
        if loss_weights is None:
            return self.mllm(input_ids, attention_mask, labels=labels, visual_embeds=embeds)
        out = self.mllm(input_ids, attention_mask, visual_embeds=embeds)
        out["loss"] = tlw_lm_loss(out.logits, labels.to(out.logits.device), loss_weights, form=self.loss_form,
                                  lam=self.lam)
        return out


def build_tokenizer(cfg, data: RG4Data):
    """The word-level tokenizer of the tiny LM, learned from the training targets (every scenario, original) and
    the prompts; a pre-trained LLM's own tokenizer otherwise (placeholders added)."""
    from rrg_lite.mllm.lm import text_tokenizer_for

    texts = [data.original[i] for i in data.train_idx]
    texts += [data.targets[sc][i] for sc in SCENARIOS for i in data.train_idx]
    return text_tokenizer_for(cfg.llm, texts, extra_texts=list(PROMPTS.values()))


def new_lm(cfg, tokenizer, seed: int):
    """A fresh LM: a seeded tiny Llama or the pre-trained ``cfg.llm`` (:func:`rrg_lite.mllm.lm.new_language_model`)."""
    from rrg_lite.mllm.lm import new_language_model

    return new_language_model(cfg.llm, tokenizer, cfg.llm_hidden, cfg.llm_layers, seed=seed)


def atf_config(cfg, llm_dim: int) -> ATFConfig:
    return ATFConfig(enc_dim=cfg.encoder_width, text_dim=cfg.text_width, llm_dim=llm_dim,
                     num_queries=cfg.num_queries, num_heads=cfg.atf_heads, dropout=cfg.atf_dropout,
                     proj_hidden=cfg.proj_hidden)


def build_model(cfg, tokenizer, fusion: str = "atf", seed: int = 0, lm_state: dict | None = None) -> RG4Model:
    """A seeded :class:`RG4Model`: ``fusion`` "atf" or "interleaved", the LM from ``lm_state`` (warm) if given."""
    from rrg_lite.mllm.model import MultimodalLM

    lm = new_lm(cfg, tokenizer, seed)
    if lm_state is not None:
        lm.load_state_dict(lm_state)
    acfg = atf_config(cfg, lm.get_input_embeddings().embedding_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if fusion == "atf":
            module = AdaptiveTokenFusion(acfg)
        elif fusion == "interleaved":
            module = InterleavedTokens(acfg, text_tokens=cfg.prior_tokens)
        else:
            raise ValueError(f"fusion must be 'atf' or 'interleaved', got {fusion!r}")
    return RG4Model(MultimodalLM(lm, tokenizer, {}), module, loss_form=cfg.tlw_form, lam=cfg.tlw_lambda)


def warm_up_lm(cfg, tokenizer, data: RG4Data, seed: int) -> dict | None:
    """Text-only warm-up of the tiny LM on (scenario prompt without image -> clean target) for
    ``cfg.lm_warmup_steps``: a stand-in for a pre-trained LLM, so that stage 1's frozen LLM can already write
    reports. Every variant of a seed starts from this state. ``None`` for a pre-trained LLM."""
    from rrg_lite.mllm.prompt import MLLMCollator, encode_example
    from rrg_lite.train.loop import TrainConfig, train

    if cfg.llm != "tiny" or not cfg.lm_warmup_steps:
        return None
    lm = new_lm(cfg, tokenizer, seed)
    examples = [encode_example(tokenizer, PROMPTS[sc].replace(" <image>", ""), data.targets[sc][i],
                               num_visual_tokens={}) for sc in SCENARIOS for i in data.train_idx]
    tc = TrainConfig(lr=cfg.lm_warmup_lr, batch_size=cfg.batch_size, max_steps=cfg.lm_warmup_steps,
                     warmup_steps=10, schedule="cosine", seed=seed, progress=False, desc=f"LM warm-up s{seed}",
                     mixed_precision=cfg.precision)
    train(lm, examples, tc, collate_fn=MLLMCollator(tokenizer.pad_token_id))
    return {k: v.detach().clone() for k, v in lm.state_dict().items()}


# ---- examples, sources, batches --------------------------------------------------------------------------------
@dataclass
class Sources:
    """Where each example's inputs come from (the controls): ``frontal[i]`` / ``lateral[i]`` / ``prior[i]`` is
    the study whose input study ``idx[i]`` reads (None = its own); ``zero_lateral`` = an all-zero lateral."""

    frontal: Sequence[int] | None = None
    lateral: Sequence[int] | None = None
    prior: Sequence[int] | None = None
    zero_lateral: bool = False


def encode_items(model: RG4Model, data: RG4Data, idx: Sequence[int], scenario, with_target: bool = True,
                 original: bool = False, weights: dict | None = None, sources: Sources | None = None) -> list[dict]:
    """One example per study of ``idx`` in ``scenario``: token ids (+ labels, + loss weights) and input indices.

    ``weights``: target text -> word-level :class:`.tlw.TokenWeights` (its ``.spans`` become per-token weights).
    """
    from rrg_lite.mllm.prompt import encode_example, token_weights_from_spans

    sc = as_scenario(scenario)
    tok = model.mllm.tokenizer
    k = model.tokens_for(sc)
    src = sources or Sources()
    out = []
    for j, i in enumerate(idx):
        target = data.target(i, sc, original) if with_target else None
        tw = None
        if target is not None and weights is not None:
            if target not in weights:
                raise KeyError(f"encode_items: no TLW weights for the target of study {data.study_ids[i]}")
            tw = token_weights_from_spans(tok, target, weights[target].spans)
        ex = encode_example(tok, PROMPTS[sc], target, num_visual_tokens={"<image>": k},
                            num_images={"<image>": 1}, target_weights=tw)
        ex.update(scenario=sc, i=int(i),
                  f=int(i if src.frontal is None else src.frontal[j]),
                  l=int(i if src.lateral is None else src.lateral[j]),
                  t=int(i if src.prior is None else src.prior[j]), zero_lateral=src.zero_lateral)
        out.append(ex)
    return out


def collate(data: RG4Data, pad_id: int, padding_side: str = "right"):
    """Examples of ONE scenario -> a batch for :class:`RG4Model` (features gathered from ``data``)."""
    from rrg_lite.mllm.prompt import MLLMCollator

    base = MLLMCollator(pad_id, padding_side=padding_side)

    def fn(examples: list[dict]) -> dict:
        scs = {e["scenario"] for e in examples}
        if len(scs) != 1:
            raise ValueError(f"a batch must hold one scenario, got {sorted(s.value for s in scs)}")
        sc = scs.pop()
        b = len(examples)
        batch = base(examples)
        batch["v_f"] = data.v_f[[e["f"] for e in examples]]
        if sc.has_lateral:
            v_l = data.v_l[[e["l"] for e in examples]]
            batch["v_l"] = torch.zeros_like(v_l) if examples[0]["zero_lateral"] else v_l
        if sc.has_prior:
            ti = [e["t"] for e in examples]
            batch["v_t"], batch["t_mask"] = data.v_t[ti], data.t_mask[ti]
        batch["has_lateral"] = torch.full((b,), sc.has_lateral)
        batch["has_prior"] = torch.full((b,), sc.has_prior)
        return batch

    return fn


class _Batches(torch.utils.data.Dataset):
    """Whole single-scenario batches as the training loop's items (batch_size 1, the collate unwraps)."""

    def __init__(self, batches: list[list[dict]]):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


def configure(model: RG4Model, stage: int) -> None:
    """Stage 1: the frontal branch of the fusion module (p_f, Linear_f and the fusion Linear) trains, the LLM is
    frozen. Stage 2: the whole fusion module and the LoRA adapters (call :func:`add_lora` first)."""
    for p in model.parameters():
        p.requires_grad_(False)
    if stage == 1:
        names = ("p_f.", "linear_f.", "fuse.")
        for n, p in model.fusion.named_parameters():
            if n.startswith(names):
                p.requires_grad_(True)
    elif stage == 2:
        if not hasattr(model.mllm.lm, "peft_config"):
            raise ValueError("stage 2 needs LoRA adapters: call add_lora(model, cfg) first")
        for p in model.fusion.parameters():
            p.requires_grad_(True)
        for n, p in model.mllm.lm.named_parameters():
            if "lora_" in n:
                p.requires_grad_(True)
    else:
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")


def add_lora(model: RG4Model, cfg) -> RG4Model:
    from rrg_lite.mllm.stages import apply_lora

    apply_lora(model.mllm, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
               target_modules=("q_proj", "v_proj"))
    return model


def train_stage(model: RG4Model, data: RG4Data, stage: int, steps: int, lr: float, scenarios=SCENARIOS,
                seed: int = 0, original: bool = False, weights: dict | None = None, batch_size: int = 16,
                warmup_ratio: float = 0.1, precision: str = "no"):
    """Train stage ``stage`` (1 or 2) for ``steps`` optimizer steps on the training studies in ``scenarios``
    (stage 1 is sn only), single-scenario batches; returns the loop's ``TrainResult``."""
    from rrg_lite.train.loop import TrainConfig, train

    scenarios = (Scenario.SN,) if stage == 1 else tuple(as_scenario(s) for s in scenarios)
    configure(model, stage)
    items, by_sc = [], {}
    for sc in scenarios:
        exs = encode_items(model, data, data.train_idx, sc, original=original, weights=weights)
        by_sc[sc] = list(range(len(items), len(items) + len(exs)))
        items += exs
    batches = [[items[j] for j in b] for _, b in round_robin_batches(by_sc, batch_size, seed)]
    fn = collate(data, model.mllm.tokenizer.pad_token_id)
    tc = TrainConfig(lr=lr, batch_size=1, max_steps=steps, warmup_steps=max(1, int(warmup_ratio * steps)),
                     schedule="cosine", seed=seed, progress=False, desc=f"stage {stage}", log_every=10,
                     mixed_precision=precision)
    return train(model, _Batches(batches), tc, collate_fn=lambda b: fn(b[0]))


# ---- evaluation ------------------------------------------------------------------------------------------------
@torch.no_grad()
def test_nll(model: RG4Model, data: RG4Data, idx, scenario, sources: Sources | None = None,
             batch_size: int = 64) -> np.ndarray:
    """Teacher-forced mean NLL (nats per token) of each study's clean ``scenario`` target: (n,)."""
    from rrg_lite.mllm.inference import batched_inference

    def nll(m, b):
        tokens = m.visual_tokens(b["v_f"], b.get("v_l"), b.get("v_t"), b.get("t_mask"), b["has_lateral"],
                                 b["has_prior"])
        return -m.mllm.sequence_logprobs(b["input_ids"], b["attention_mask"], b["labels"],
                                         visual_embeds=tokens[:, None], average=True)

    model.eval()
    out = batched_inference(model, encode_items(model, data, idx, scenario, sources=sources), nll,
                            batch_size=batch_size, collate=collate(data, model.mllm.tokenizer.pad_token_id))
    return torch.stack(out).cpu().numpy()


@torch.no_grad()
def generate(model: RG4Model, data: RG4Data, idx, scenario, sources: Sources | None = None,
             batch_size: int = 64, max_new_tokens: int = 72) -> list[str]:
    """Greedy reports for the studies of ``idx`` in ``scenario`` (the paper decodes with beam 3; greedy here)."""
    from rrg_lite.mllm.inference import batched_inference

    def write(m, b):
        tokens = m.visual_tokens(b["v_f"], b.get("v_l"), b.get("v_t"), b.get("t_mask"), b["has_lateral"],
                                 b["has_prior"])
        return m.mllm.generate_text(b["input_ids"], b["attention_mask"], visual_embeds=tokens[:, None],
                                    max_new_tokens=max_new_tokens)

    model.eval()
    return batched_inference(model, encode_items(model, data, idx, scenario, with_target=False, sources=sources),
                             write, batch_size=batch_size,
                             collate=collate(data, model.mllm.tokenizer.pad_token_id, padding_side="left"))


def other_patient(idx: Sequence[int], seed: int = 0) -> list[int]:
    """For each study of ``idx``, another study of ``idx`` (a seeded :func:`~rrg_lite.data.controls.derangement`):
    the donor of the wrong-patient controls. Every world study is its own patient, so the donor is another patient."""
    from rrg_lite.data.controls import derangement

    idx = list(idx)
    if len(idx) < 2:
        raise ValueError(f"other_patient needs >= 2 studies, got {len(idx)}")
    return [idx[int(j)] for j in derangement(len(idx), seed)]
