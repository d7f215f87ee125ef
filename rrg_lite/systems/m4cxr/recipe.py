"""M4CXR's recipe in functions: world X-rays -> instruction dataset -> frozen features -> MLLM -> two stages.

    data = world_data(cfg)                         # studies -> StudyFacts + frozen features, computed once
    tok = build_text_tokenizer(data)               # word-level vocabulary of every template and answer
    warm = warm_up_lm(cfg, tok, data, seed)        # text-only LM warm-up (stand-in for Mistral-7B-Instruct)
    s1 = train_stage1(cfg, tok, data, seed, warm)  # stage 1: projector only, image -> FINDINGS
    mllm = train_stage2(cfg, tok, data, seed, s1, tasks=...)   # stage 2: projector + LoRA on the task mix
    preds = generate_reports_cot(mllm, data, cfg)  # turn 1 = the model's own findings list, fed back

Paper -> code:

=====================================================  ==========================================================
paper (Sec. III, IV-D, Table II)                       here
=====================================================  ==========================================================
RAD-DINO, frozen in our CPU profile (the paper tunes   :func:`load_encoders` (``get_encoder("xray_frontal")`` /
it in stage 2)                                         ``"xray_lateral"``), :func:`extract_features` (once)
X_i = C-Abstractor(f_i), each image on its own         :func:`build_projector` (``"c-abstractor"``, ``"linear"``,
                                                       ``"pool-only"`` at the C-Abstractor's token count)
one instruction dataset, many tasks (Table I, IX)      :func:`instruction_pool` (tasks each study can make),
                                                       :func:`task_mixture` (:class:`.sampling.TaskSampler`)
multi-turn CoT (Fig. 3): loss on both answers          :func:`encode_instruction` (``MultimodalLM.encode_dialogue``)
stage 1: projector only, image -> FINDINGS              :func:`train_stage1` (``configure_stage(..., "align")``)
stage 2: projector + LLM (LoRA r 8, α 32, 0.05)         :func:`train_stage2` (``apply_lora`` + ``"lora"``)
inference: greedy, the model's own turn 1 fed back      :func:`generate_cot` (``cot_followup``)
boxes as text, integers 0-100                          :func:`ground_phrases` (parsed by ``metrics.grounding``)
=====================================================  ==========================================================

What is ours, not the paper's (CPU scale):

- The LLM is a tiny Llama with a word-level tokenizer; it is first warmed up on the conversations' text with the
  images removed (:func:`warm_up_lm`), standing in for a pre-trained instruct LLM. Every variant of one seed
  starts from the same warm LM, so the recipe's parts are what differ.
- The encoders are the book's world-trained 2-D ViTs, frozen; their standardised tokens are computed once
  (:func:`extract_features`) and reused by every variant and seed.
- The world has one "source dataset"; its task-datasets are one per task (``TaskDataset(task, "world", n)``),
  mixed with the paper's 0.54 / 0.35 / 0.11 task-type ratios (``strategy="type_ratios"``).
- The test set is the held-out studies' single-image MRG on the frontal view (the paper's Table III setting),
  their phrase grounding (Table V) and one VQA question each (Table VI).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from rrg_lite.mllm.text import IMAGE_TOKEN

from .instructions import (CXR_CONDITIONS, NOT_FOUND, SYSTEM_PROMPT, TASKS, TEMPLATES, StudyFacts,
                           available_tasks, build_instruction, cot_followup, facts_from_xray_study)
from .sampling import TaskDataset, TaskSampler

__all__ = ["M4CXRData", "PROJECTORS", "world_studies", "load_encoders", "extract_features", "world_data",
           "facts_from_mimic_record", "mimic_data", "load_data", "instruction_pool", "task_mixture",
           "strip_images", "encode_instruction", "build_text_tokenizer", "new_lm", "build_projector",
           "build_mllm", "warm_up_lm", "train_stage1", "train_stage2", "test_instructions", "generate_turns",
           "generate_cot", "generate_single_turn", "ground_phrases", "answer_vqa", "answer_nll", "shifted"]

#: The projectors the chapter compares (Sec. IV-D; the Honeybee controls).
PROJECTORS = ("c-abstractor", "linear", "pool-only")


@dataclass
class M4CXRData:
    """Studies as the instruction builder sees them, with their frozen features.

    facts:      one :class:`StudyFacts` per study; the first ``n_train`` train, the rest are held out
    features:   study_id -> {image key ("frontal", "lateral", "prior/frontal", ...) -> (1, N, E) float32}
    labels:     (n, 14) CheXpert codes of each study's record (1, 0, -1, NaN): turn-1 references
    """

    facts: list[StudyFacts]
    features: dict[str, dict[str, torch.Tensor]]
    labels: np.ndarray
    n_train: int
    num_patches: int
    width: int
    notes: list[str] = field(default_factory=list)

    @property
    def train(self) -> list[StudyFacts]:
        return self.facts[: self.n_train]

    @property
    def test(self) -> list[StudyFacts]:
        return self.facts[self.n_train:]


# ---- data ------------------------------------------------------------------------------------------------------
def world_studies(cfg, world: dict | None = None):
    """``cfg.n_train + cfg.n_test`` seeded world X-ray studies (``cfg.world_seed``; the encoders were trained on
    other seeds), in the world configuration ``world`` (the encoders' own, so the features mean what they learnt)."""
    from rrg_lite.world.config import WorldConfig
    from rrg_lite.world.xray import generate_xray_cohort

    return generate_xray_cohort(cfg.n_train + cfg.n_test, seed=cfg.world_seed, cfg=WorldConfig(**(world or {})))


def load_encoders(cfg, views: Sequence[str] | None = None, **overrides) -> dict:
    """view -> frozen :class:`~rrg_lite.encoders.hub.EncoderBundle` (world-trained and cached, or RAD-DINO from
    ``cfg.encoder_weights``). ``overrides``: encoder spec keys (tests use a smaller ``n_train`` / ``epochs``)."""
    from rrg_lite.encoders.hub import get_encoder

    views = list(views or cfg.views)
    bad = [v for v in views if v not in ("frontal", "lateral")]
    if bad:
        raise ValueError(f"views {bad}: M4CXR's world views are 'frontal' and 'lateral'")
    if cfg.encoder_weights is not None:
        return {v: get_encoder(f"xray_{v}", weights=cfg.encoder_weights) for v in views}
    return {v: get_encoder(f"xray_{v}", **overrides) for v in views}


def _encoder_input(image: np.ndarray, size: int) -> torch.Tensor:
    from rrg_lite.data.transforms import resize

    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"an X-ray image must be (H, W), got shape {img.shape}")
    if img.shape != (size, size):
        img = resize(img, (size, size))
    return torch.from_numpy(img)[None]          # (1, S, S)


def extract_features(images: dict[str, dict[str, np.ndarray]], bundles: dict) -> dict[str, dict[str, torch.Tensor]]:
    """study_id -> {key -> (H, W) image} to study_id -> {key -> (1, N, E)}: every image through its view's frozen
    encoder once (keys "frontal", "lateral", "prior/frontal", ...; a view without an encoder is left out)."""
    out: dict[str, dict[str, torch.Tensor]] = {sid: {} for sid in images}
    for view, bundle in bundles.items():
        size = bundle.preprocess.get("size", 128)
        jobs = [(sid, key) for sid, imgs in images.items() for key in imgs if key.split("/")[-1] == view]
        if not jobs:
            continue
        x = torch.stack([_encoder_input(images[sid][key], size) for sid, key in jobs])   # (m, 1, S, S)
        feats = bundle.features(x)                                                          # (m, 1, N, E)
        for (sid, key), f in zip(jobs, feats):
            out[sid][key] = f.contiguous()
    return out


def _restrict_views(facts: StudyFacts, views: Sequence[str]) -> StudyFacts:
    """The study with only ``views`` (the images that have features); its prior too."""
    keep = tuple(v for v in facts.views if v in views)
    prior = _restrict_views(facts.prior, views) if facts.prior is not None else None
    if prior is not None and not prior.views:
        prior = None
    return replace(facts, views=keep or facts.views[:1], prior=prior)


def world_data(cfg, bundles: dict | None = None, studies=None) -> M4CXRData:
    """The chapter's data on the synthetic world: studies, facts, frozen features of every image (and prior)."""
    bundles = bundles or load_encoders(cfg)
    world = dict(next(iter(bundles.values())).spec.get("world") or {})
    studies = studies if studies is not None else world_studies(cfg, world)
    facts, images = [], {}
    for st in studies:
        f = _restrict_views(facts_from_xray_study(st), list(bundles))
        facts.append(f)
        imgs = {v: st.images[v] for v in f.views}
        if st.prior is not None and f.prior is not None:
            imgs.update({f"prior/{v}": st.prior.images[v] for v in f.prior.views})
        images[st.study_id] = imgs
    feats = extract_features(images, bundles)
    labels = np.stack([np.asarray(st.labels, dtype=float) for st in studies])
    any_f = next(iter(feats[studies[0].study_id].values()))
    dropped = sum(f.dropped_boxes for f in facts)
    notes = [f"{dropped} boxes vanished on the 0-100 grid and were left out"] if dropped else []
    return M4CXRData(facts, feats, labels, cfg.n_train, any_f.shape[1], any_f.shape[2], notes)


def facts_from_mimic_record(rec, prior=None) -> StudyFacts:
    """A MIMIC-CXR record (:func:`rrg_lite.data.formats.mimic.read_mimic`) -> :class:`StudyFacts` for MRG and
    classification (real MIMIC has no boxes; the world's stand-in carries them in its annotation sidecar, and
    :func:`rrg_lite.data.formats.mimic.attach_annotations` puts them on the record — used here only for the
    frontal view, on the 0-100 scale of that image)."""
    from rrg_lite.data.boxes import is_valid_box_100, to_relative_100

    views = []
    for im in rec.images:
        v = "lateral" if im.view in ("LATERAL", "LL") else "frontal"
        if v not in views:
            views.append(v)
    if not views:
        raise ValueError(f"MIMIC study {rec.study_id}: no images")
    findings = (rec.report.get("findings") or "").strip()
    labels = {k.lower(): int(v) for k, v in rec.labels.items() if v is not None and not np.isnan(v)}
    boxes = []
    front = next((im for im in rec.images if im.view not in ("LATERAL", "LL")), None)
    w = (front.meta or {}).get("columns") if front is not None else None
    h = (front.meta or {}).get("rows") if front is not None else None
    for b in getattr(rec, "boxes", []) or []:
        if b.get("kind") == "finding" and b.get("view") == "frontal" and w and h:
            rel = to_relative_100(b["box"], int(w), int(h))
            if is_valid_box_100(rel):
                boxes.append((str(b["label"]).lower(), rel))
    qa = [(q["question"], q["answer"]) for q in (rec.qa or []) if q.get("category") != "change"]
    p = facts_from_mimic_record(prior) if prior is not None and (prior.report.get("findings") or "").strip() else None
    return StudyFacts(study_id=str(rec.study_id), views=tuple(views), labels=labels, findings=findings,
                      finding_boxes=boxes, qa=qa, prior=p, source="mimic-cxr")


def mimic_data(cfg, bundles: dict | None = None) -> M4CXRData:
    """The full-scale path: a MIMIC-CXR(-JPG) folder (``cfg.data_root``) -> facts and frozen features.

    Train = the ``train`` split, test = ``test`` (``cfg.n_train`` / ``cfg.n_test`` > 0 keep the first ones). Studies
    without a FINDINGS section are counted in ``notes`` and left out (MRG needs the section).
    """
    from rrg_lite.data.formats.mimic import attach_annotations, read_mimic
    from rrg_lite.data.images import load_xray
    from rrg_lite.world.vocab import CHEXPERT_LABELS

    if cfg.data_root is None:
        raise ValueError("mimic_data needs data_root (a MIMIC-CXR-JPG folder converted by data_scripts/)")
    bundles = bundles or load_encoders(cfg)
    facts, images, labels, notes = [], {}, [], []
    n_train = 0
    all_recs = {}
    for split in ("train", "test"):
        for r in read_mimic(cfg.data_root, split=split):
            all_recs[r.study_id] = r
    for split, limit in (("train", cfg.n_train), ("test", cfg.n_test)):
        recs = attach_annotations(read_mimic(cfg.data_root, split=split), cfg.data_root)
        usable = [r for r in recs if (r.report.get("findings") or "").strip()]
        if len(usable) < len(recs):
            notes.append(f"{split}: {len(recs) - len(usable)} studies without FINDINGS left out")
        usable = usable[: limit or None]
        for r in usable:
            prior = all_recs.get(r.prior_study_id) if r.prior_study_id else None
            f = _restrict_views(facts_from_mimic_record(r, prior), list(bundles))
            facts.append(f)
            imgs = {}
            for im in r.images:
                v = "lateral" if im.view in ("LATERAL", "LL") else "frontal"
                if v in f.views and v not in imgs:
                    imgs[v] = load_xray(im.path)
            if f.prior is not None:
                for im in prior.images:
                    v = "lateral" if im.view in ("LATERAL", "LL") else "frontal"
                    if v in f.prior.views and f"prior/{v}" not in imgs:
                        imgs[f"prior/{v}"] = load_xray(im.path)
            images[f.study_id] = imgs
            labels.append([np.nan if r.labels.get(l) is None else float(r.labels[l]) for l in CHEXPERT_LABELS])
        if split == "train":
            n_train = len(facts)
    if n_train == 0 or len(facts) == n_train:
        raise ValueError(f"{cfg.data_root}: need studies with FINDINGS in both the train and the test split "
                         f"(got {n_train} and {len(facts) - n_train})")
    feats = extract_features(images, bundles)
    any_f = next(iter(feats[facts[0].study_id].values()))
    return M4CXRData(facts, feats, np.asarray(labels, dtype=float), n_train, any_f.shape[1], any_f.shape[2], notes)


def load_data(cfg, bundles: dict | None = None) -> M4CXRData:
    """The profile's data: the world (``data_root=None``) or a MIMIC-CXR-layout folder."""
    return world_data(cfg, bundles) if cfg.data_root is None else mimic_data(cfg, bundles)


# ---- the instruction dataset -----------------------------------------------------------------------------------
def instruction_pool(facts: Sequence[StudyFacts], tasks: Sequence[str] = TASKS) -> dict[str, list[int]]:
    """task -> indices of the studies that can make it (the task's "dataset" on the world)."""
    pool: dict[str, list[int]] = {t: [] for t in tasks}
    for i, f in enumerate(facts):
        for t in available_tasks(f):
            if t in pool:
                pool[t].append(i)
    return {t: idx for t, idx in pool.items() if idx}


def task_mixture(cfg, facts: Sequence[StudyFacts], n: int, seed: int, tasks: Sequence[str] = TASKS, *,
                 cot: bool = True) -> tuple[list[dict], TaskSampler]:
    """``n`` training conversations drawn as M4CXR does: a task-dataset by the sampler, then a study uniformly.

    Returns (instructions, sampler); ``sampler.table()`` shows the mixture. ``cot=False``: MRG single-turn (Exp1).
    """
    pool = instruction_pool(facts, tasks)
    if not pool:
        raise ValueError(f"no study can make any of the tasks {list(tasks)}")
    items = [TaskDataset(t, "world", len(idx)) for t, idx in pool.items()]
    ratios = dict(zip(("mrg", "image_understanding", "vqa"), cfg.type_ratios))
    sampler = TaskSampler(items, cfg.sampling, seed=seed, type_ratios=ratios)
    rng = np.random.default_rng(seed + 7)
    out = []
    for k, j in sampler.sample_items(n):
        task = items[k].task
        out.append(build_instruction(task, facts[pool[task][j]], rng, paraphrase=cfg.paraphrase, cot=cot))
    return out, sampler


def strip_images(messages: Sequence[dict]) -> list[dict]:
    """The conversation without its ``<image>`` placeholders (the text-only LM warm-up reads these)."""
    out = []
    for m in messages:
        text = " ".join(m["content"].replace(IMAGE_TOKEN, " ").split())
        out.append({"role": m["role"], "content": text})
    return out


def _features_for(data: M4CXRData, inst: dict, donor: str | None = None) -> torch.Tensor:
    """(n_images, 1, N, E) for an instruction's images; ``donor``: take them from another study (wrong image)."""
    feats = data.features[donor or inst["study_id"]]
    rows = []
    for key in inst["images"]:
        if key not in feats:
            # a donor without this view lends its frontal image (the wrong-image control must never fail)
            if donor is None:
                raise KeyError(f"study {inst['study_id']}: no features for image {key!r} (have {sorted(feats)})")
            key = next(iter(feats))
        rows.append(feats[key])
    return torch.stack(rows)


def encode_instruction(mllm, data: M4CXRData, inst: dict, *, messages: Sequence[dict] | None = None,
                       donor: str | None = None, blank: bool = False, max_length: int | None = None) -> dict:
    """One conversation as token ids + labels on every assistant turn + its images' features.

    ``messages`` replaces the instruction's (e.g. a generation prompt: it then ends with a user turn and has no
    labels); ``donor`` another study's images (wrong-image control); ``blank`` all-zero features.
    """
    msgs = list(messages if messages is not None else inst["messages"])
    n = len(inst["images"])
    ex = mllm.encode_dialogue(msgs, num_images=n, num_patches=data.num_patches, max_length=max_length)
    ex.pop("assistant_spans", None)
    feats = _features_for(data, inst, donor)
    ex["features"] = torch.zeros_like(feats) if blank else feats
    return ex


def build_text_tokenizer(data: M4CXRData, seed: int = 0):
    """A word-level tokenizer over every training conversation, the templates and the integers 0-100 (boxes)."""
    from rrg_lite.mllm.text import build_word_tokenizer

    rng = np.random.default_rng(seed)
    texts = [SYSTEM_PROMPT, NOT_FOUND, " ".join(CXR_CONDITIONS), " ".join(str(i) for i in range(101)) + " [ ] , ."]
    texts += [t for options in TEMPLATES.values() for t in options]
    for f in data.train:
        for task in available_tasks(f):
            for cot in (True, False):
                texts += [m["content"] for m in build_instruction(task, f, rng, cot=cot)["messages"]]
        texts += [a for _, a in f.qa] + [p for p, _ in f.phrases] + [q for q, _ in f.qa]
    return build_word_tokenizer(texts)


# ---- the model ---------------------------------------------------------------------------------------------------
def new_lm(cfg, tok, seed: int):
    """A seeded tiny Llama (``cfg.llm == "tiny"``), or the pre-trained ``cfg.llm`` in fp32 (full scale)."""
    from rrg_lite.mllm.lm import new_language_model

    return new_language_model(cfg.llm, tok, cfg.llm_hidden, cfg.llm_layers, seed=seed, num_heads=4, num_kv_heads=2)


def build_projector(cfg, kind: str, in_dim: int, out_dim: int, num_patches: int, seed: int):
    """``(n, T, N, E) -> (n, T·K, D)``: the C-Abstractor (depth ``cfg.projector_depth``, ``cfg.num_queries``
    tokens), the pool-only control at the same K, or LLaVA's linear MLP (every patch: K = N)."""
    from rrg_lite.tokenizers.cabstractor import CAbstractor, CAbstractorConfig, pool_only_projector
    from rrg_lite.tokenizers.linear import LinearProjector

    if kind not in PROJECTORS:
        raise ValueError(f"unknown projector {kind!r}; choose one of {PROJECTORS}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "c-abstractor":
            return CAbstractor(CAbstractorConfig(in_dim=in_dim, out_dim=out_dim, num_patches=num_patches,
                                                 num_queries=cfg.num_queries, hidden_dim=cfg.projector_hidden,
                                                 depth=cfg.projector_depth, mlp_depth=cfg.mlp_depth))
        if kind == "pool-only":
            return pool_only_projector(in_dim, out_dim, num_patches, cfg.num_queries, mlp_depth=cfg.mlp_depth)
        return LinearProjector(in_dim, out_dim, num_patches=num_patches, depth=min(cfg.mlp_depth, 2))


def build_mllm(cfg, tok, data: M4CXRData, seed: int, projector: str = "c-abstractor", lm_state: dict | None = None):
    """A :class:`~rrg_lite.mllm.model.MultimodalLM`: (warm) LM + one projector for slot "image"."""
    from rrg_lite.mllm.model import MultimodalLM

    lm = new_lm(cfg, tok, seed)
    if lm_state is not None:
        lm.load_state_dict(lm_state)
    proj = build_projector(cfg, projector, data.width, lm.config.hidden_size, data.num_patches, seed)
    return MultimodalLM(lm, tok, {"image": proj})


def _train(mllm, examples: list[dict], cfg, steps: int, lr: float, seed: int, desc: str, weight_decay: float):
    from rrg_lite.mllm.prompt import MLLMCollator
    from rrg_lite.train.loop import TrainConfig, train

    tc = TrainConfig(lr=lr, weight_decay=weight_decay, batch_size=cfg.batch_size, max_steps=steps,
                     warmup_steps=min(cfg.warmup_steps, steps // 5), schedule="cosine", seed=seed, progress=False,
                     desc=desc, log_every=max(steps // 5, 1), mixed_precision=cfg.precision)
    return train(mllm, examples, tc, collate_fn=MLLMCollator(mllm.tokenizer.pad_token_id))


def warm_up_lm(cfg, tok, data: M4CXRData, seed: int) -> dict | None:
    """Text-only warm-up of the tiny LM on the task mix with the images removed: it learns the templates and the
    answers' language, not the images (a stand-in for a pre-trained LLM). Returns its state dict (None for a
    pre-trained LLM or ``lm_warmup_steps = 0``)."""
    from rrg_lite.mllm.dialogue import encode_dialogue
    from rrg_lite.train.loop import TrainConfig, train
    from rrg_lite.mllm.prompt import MLLMCollator

    if cfg.llm != "tiny" or not cfg.lm_warmup_steps:
        return None
    lm = new_lm(cfg, tok, seed)
    insts, _ = task_mixture(cfg, data.train, cfg.lm_warmup_steps * cfg.batch_size, seed + 100)
    # a few single-turn reports too, so the single-turn variant starts from a LM that knows its prompt as well
    single, _ = task_mixture(cfg, data.train, cfg.lm_warmup_steps * cfg.batch_size // 4, seed + 101,
                             tasks=("single_image_mrg",), cot=False)
    examples = [encode_dialogue(tok, strip_images(i["messages"]), num_visual_tokens={}) for i in insts + single]
    for e in examples:
        e.pop("assistant_spans", None)
    tc = TrainConfig(lr=cfg.lm_warmup_lr, batch_size=cfg.batch_size, max_steps=cfg.lm_warmup_steps,
                     warmup_steps=min(cfg.warmup_steps, cfg.lm_warmup_steps // 5), schedule="cosine", seed=seed,
                     progress=False, desc=f"LM warm-up s{seed}", mixed_precision=cfg.precision)
    train(lm, examples, tc, collate_fn=MLLMCollator(tok.pad_token_id))
    return {k: v.detach().clone() for k, v in lm.state_dict().items()}


def train_stage1(cfg, tok, data: M4CXRData, seed: int, lm_state: dict | None, projector: str = "c-abstractor"):
    """Stage 1 (Table II): only the projector learns, on image -> FINDINGS (single-turn, every view).

    Returns (mllm, the projector's state dict after the stage)."""
    from rrg_lite.mllm.stages import configure_stage

    mllm = build_mllm(cfg, tok, data, seed, projector, lm_state)
    configure_stage(mllm, "align")
    insts, _ = task_mixture(cfg, data.train, cfg.stage1_steps * cfg.batch_size, seed + 200,
                            tasks=("single_image_mrg",), cot=False)
    examples = [encode_instruction(mllm, data, i) for i in insts]
    _train(mllm, examples, cfg, cfg.stage1_steps, cfg.stage1_lr, seed + 1, f"stage 1 {projector} s{seed}",
           cfg.stage1_weight_decay)
    return mllm, {k: v.detach().clone() for k, v in mllm.projectors["image"].state_dict().items()}


def train_stage2(cfg, tok, data: M4CXRData, seed: int, lm_state: dict | None, projector_state: dict | None,
                 projector: str = "c-abstractor", tasks: Sequence[str] = TASKS, cot: bool = True):
    """Stage 2 (Table II): projector + LoRA adapters on the task mix (``tasks``; ``cot`` for the MRG tasks).

    Returns (mllm, TrainResult, sampler)."""
    from rrg_lite.mllm.stages import apply_lora, configure_stage

    mllm = build_mllm(cfg, tok, data, seed, projector, lm_state)
    if projector_state is not None:
        mllm.projectors["image"].load_state_dict(projector_state)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 3)                        # LoRA's A matrices are drawn here
        apply_lora(mllm, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                   target_modules=tuple(cfg.lora_targets))
    configure_stage(mllm, "lora")
    insts, sampler = task_mixture(cfg, data.train, cfg.stage2_steps * cfg.batch_size, seed + 300, tasks, cot=cot)
    examples = [encode_instruction(mllm, data, i) for i in insts]
    result = _train(mllm, examples, cfg, cfg.stage2_steps, cfg.stage2_lr, seed + 2, f"stage 2 {projector} s{seed}",
                    cfg.stage2_weight_decay)
    return mllm, result, sampler


# ---- inference ---------------------------------------------------------------------------------------------------
def test_instructions(data: M4CXRData, task: str = "single_image_mrg", cot: bool = True, seed: int = 0,
                      view: str = "frontal") -> list[dict]:
    """One conversation of ``task`` per held-out study that can make it, on ``view`` (MRG: Table III's
    single-image setting)."""
    rng = np.random.default_rng(seed)
    out = []
    for f in data.test:
        g = _restrict_views(f, [view]) if view in f.views else f
        if task in available_tasks(g):
            out.append(build_instruction(task, g, rng, cot=cot))
    return out


def _first_turn(messages: Sequence[dict]) -> list[dict]:
    """The conversation up to (and with) its first user turn: the generation prompt of turn 1."""
    i = next(k for k, m in enumerate(messages) if m["role"] == "user")
    return list(messages[: i + 1])


def generate_turns(mllm, data: M4CXRData, insts: list[dict], prompts: list[list[dict]], max_new_tokens: int,
                   batch_size: int = 64, donors: Sequence[str] | None = None) -> list[str]:
    """Greedy answers to ``prompts`` (conversations ending with a user turn), each with its instruction's images
    (or ``donors[i]``'s: wrong-image control)."""
    from rrg_lite.train.evaluate import generate_reports

    examples = [encode_instruction(mllm, data, inst, messages=p, donor=None if donors is None else donors[i])
                for i, (inst, p) in enumerate(zip(insts, prompts))]
    return generate_reports(mllm, examples, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=False)


def generate_cot(mllm, data: M4CXRData, insts: list[dict], cfg, turn1: Sequence[str] | None = None,
                 donors: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """Multi-turn CoT inference (Fig. 3): turn 1 (the findings list) generated, or given as ``turn1`` (oracle /
    another patient's), then fed back with :func:`cot_followup` and the report generated. Returns
    (turn-1 answers, reports)."""
    if turn1 is None:
        turn1 = generate_turns(mllm, data, insts, [_first_turn(i["messages"]) for i in insts],
                               cfg.turn1_max_new_tokens, cfg.eval_batch_size, donors)
    prompts = [cot_followup(i["messages"], t or NOT_FOUND) for i, t in zip(insts, turn1)]
    reports = generate_turns(mllm, data, insts, prompts, cfg.max_new_tokens, cfg.eval_batch_size, donors)
    return list(turn1), reports


def generate_single_turn(mllm, data: M4CXRData, insts: list[dict], cfg, donors=None) -> list[str]:
    """Single-turn MRG inference (Table VIII, Exp1): the report straight from the image."""
    return generate_turns(mllm, data, insts, [_first_turn(i["messages"]) for i in insts], cfg.max_new_tokens,
                          cfg.eval_batch_size, donors)


def ground_phrases(mllm, data: M4CXRData, cfg, seed: int = 0, donors=None) -> tuple[list[str], list[list[int]]]:
    """Phrase grounding of the held-out studies (Table V's setting): (answers, true boxes 0-100)."""
    from rrg_lite.data.boxes import parse_box

    insts = test_instructions(data, "phrase_grounding", seed=seed)
    answers = generate_turns(mllm, data, insts, [_first_turn(i["messages"]) for i in insts], 16,
                             cfg.eval_batch_size, donors)
    return answers, [parse_box(i["messages"][-1]["content"]) for i in insts]


def answer_vqa(mllm, data: M4CXRData, cfg, seed: int = 0) -> tuple[list[str], list[str]]:
    """One VQA question per held-out study (Table VI's setting): (answers, references)."""
    insts = test_instructions(data, "vqa", seed=seed)
    answers = generate_turns(mllm, data, insts, [_first_turn(i["messages"]) for i in insts], 8, cfg.eval_batch_size)
    return answers, [i["messages"][-1]["content"] for i in insts]


@torch.no_grad()
def answer_nll(mllm, data: M4CXRData, insts: list[dict], batch_size: int = 64, donors: Sequence[str] | None = None,
               turn: str = "last") -> np.ndarray:
    """Teacher-forced mean NLL (nats per token) of each conversation's answer, (n,): ``turn="last"`` the final
    answer (for CoT: the report given the true turn 1), ``"first"`` the first answer (CoT: the findings list),
    ``"all"`` every assistant turn. ``donors``: another study's images. The NLL with another study's image minus
    with its own is the image gain (chapter 6's control, here per study)."""
    from rrg_lite.mllm.inference import batched_inference
    from rrg_lite.mllm.prompt import MLLMCollator

    if turn not in ("last", "first", "all"):
        raise ValueError(f"turn must be 'last', 'first' or 'all', got {turn!r}")
    examples = []
    for i, inst in enumerate(insts):
        msgs = inst["messages"]
        if turn == "first":   # the conversation through its first answer; labels on that answer only
            first = next(k for k, m in enumerate(msgs) if m["role"] == "assistant")
            msgs = msgs[: first + 1]
        ex = encode_instruction(mllm, data, inst, messages=msgs, donor=None if donors is None else donors[i])
        if turn != "all":
            ex["labels"] = mllm.encode_dialogue(msgs, num_images=len(inst["images"]), num_patches=data.num_patches,
                                                train_on="last")["labels"]
        examples.append(ex)
    nll = batched_inference(mllm, examples, lambda m, b: -m.sequence_logprobs(
        b["input_ids"], b["attention_mask"], b["labels"], features=b["features"], average=True),
        batch_size=batch_size, collate=MLLMCollator(mllm.tokenizer.pad_token_id))
    return torch.stack(nll).numpy() if nll else np.zeros(0)


def shifted(ids: Sequence[str], seed: int = 0) -> list[str]:
    """Another study for every study (a seeded :func:`~rrg_lite.data.controls.derangement`): the donor of the
    wrong-image / other-patient controls."""
    from rrg_lite.data.controls import derangement

    if len(ids) < 2:
        raise ValueError(f"a derangement needs at least 2 studies, got {len(ids)}")
    return [ids[int(d)] for d in derangement(len(ids), seed)]
