"""ViPET-VLM's view of a world PET/CT study: lesion facts, the three overlapping region crops, a Vietnamese
report with ViMed-PET's section keys, and VQA per crop.

==========================================================  ======================================================
paper / dataset                                             code
==========================================================  ======================================================
ViMed-PET (ViPET-VLM §4.1.1): each study split into         :func:`split_regions` → three :class:`RegionCrop`;
head-neck, chest, abdomen-pelvis "with a 20-slice overlap"  slices :func:`rrg_lite.data.petct.region_slices`
                                                            (overlap :attr:`PetCtConfig.overlap`, 20 scaled to
                                                            the volume by default); boundaries from the anatomy
                                                            :func:`rrg_lite.world.pet.region_boundaries`
lesion-level facts of the dataset paper (type, position,    :class:`LesionFact`, :func:`lesion_facts` (from the
FDG uptake) behind F1-T / -TP / -TF / -TPF                  record); parsed from text and scored in
                                                            :mod:`rrg_lite.metrics.petct_facts`
reports in Vietnamese JSON keyed "Đầu - cổ", "Lồng ngực",   :func:`vietnamese_report`, :func:`vietnamese_parts`
"Ổ bụng - khung chậu", "Hệ cơ - xương"                      (:attr:`PetCtConfig.language` = "vi" in the crops)
GPT-4o VQA: 27,855 single-turn QA (≈3.4 per pair) and       :func:`crop_qa` (``qa_per_crop``, default 3),
8,271 multi-turn dialogues (one per pair)                   :func:`crop_dialogue` (PET → CT → impression)
==========================================================  ======================================================

The hard cases that make PET and CT both necessary are drawn by the world itself (only with ``cfg.pet``):
CT-identical benign twins of malignant lesions and normal-size hypermetabolic nodes
(:func:`rrg_lite.world.findings.pet_hard_cases`), malignant SUVmax 4–15 vs benign < 2.5, a coarse blurred PET
and physiological uptake (:func:`rrg_lite.world.pet.make_pet`), cold cysts described only by the CT half and an
impression graded from CT size + PET uptake (:func:`rrg_lite.world.report.petct_report`,
:func:`rrg_lite.world.petct_grammar.suspicion_grade`).

In this world malignancy is decided by PET alone (a twin differs from its lesion only in uptake) and the wording of
the impression by CT size as well: an impression needs both halves. Region membership of a finding is the slice of
its mask's centre (set in :func:`~rrg_lite.world.pet.make_pet`), so a crop always shows what its halves describe.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

from rrg_lite.data.petct import region_slices, scaled_overlap

from . import petct_grammar as PG
from .findings import Finding
from .pet import HOT_SUV, region_boundaries
from .qa import _choose, _qa
from .report import _organ_pet_region, ct_rate_vector
from .report import _pet_region as pet_region_of
from .vocab import PET_REGIONS

__all__ = ["PetCtConfig", "LesionFact", "RegionCrop", "is_lesion", "lesion_facts", "split_regions", "vietnamese_parts",
           "vietnamese_report", "crop_qa", "crop_dialogue", "UPTAKES", "REGION_WORDS"]

#: FDG uptake of a lesion fact (the "F" of F1-TF): SUVmax ≥ 2.5 reads as increased.
UPTAKES: tuple[str, ...] = ("increased", "not increased")
#: How questions name a region.
REGION_WORDS = {"head_neck": "head and neck", "chest": "chest", "abdomen_pelvis": "abdomen and pelvis"}
_LANGUAGES = ("en", "vi")


@dataclass(frozen=True)
class PetCtConfig:
    """Knobs of the region crops.

    overlap: slices shared by neighbouring crops; ``None`` = the paper's 20 of ~375 slices scaled to the volume
      (:func:`rrg_lite.data.petct.scaled_overlap`: 2 slices for a 36-slice world volume).
    language: ``"en"`` (the world's grammar) or ``"vi"`` (the Vietnamese phrase table) for the crops' halves.
    qa_per_crop: single-turn questions per crop (ViMed-PET: 27,855 / 8,271 ≈ 3.4).
    seed: mixes into the per-crop question choice (which depends on study id and region only otherwise).
    """

    overlap: int | None = None
    language: str = "en"
    qa_per_crop: int = 3
    seed: int = 0

    def __post_init__(self):
        if self.language not in _LANGUAGES:
            raise ValueError(f"PetCtConfig.language must be one of {_LANGUAGES}, got {self.language!r}")
        if self.overlap is not None and self.overlap < 0:
            raise ValueError(f"PetCtConfig.overlap must be ≥ 0 slices or None, got {self.overlap}")
        if self.qa_per_crop < 0:
            raise ValueError(f"PetCtConfig.qa_per_crop must be ≥ 0, got {self.qa_per_crop}")


@dataclass(frozen=True)
class LesionFact:
    """One lesion as ViMed-PET's lesion-level metrics see it.

    lesion_type: :data:`rrg_lite.world.petct_grammar.LESION_TYPES`; position: location words
    (:data:`~rrg_lite.world.petct_grammar.LOCATIONS`); region: PET region; uptake: :data:`UPTAKES`;
    suv_max: measured SUVmax, 0.1 (None when a text gives none); size_mm: largest diameter on CT (mm; the
    record's value, reports round it to whole mm);
    malignant: the world's truth (= hypermetabolic), or the text's suspicion; grade: the impression's grade;
    finding_id / twin_group: links to the record (None for facts parsed from text).
    """

    lesion_type: str
    position: str
    region: str | None
    uptake: str
    suv_max: float | None
    size_mm: float | None
    malignant: bool
    grade: str | None = None
    finding_id: int | None = None
    twin_group: int | None = None

    def key(self, fields: tuple[str, ...]) -> tuple:
        """The fact reduced to ``fields`` (e.g. ``("lesion_type", "position")``), for set matching."""
        return tuple(getattr(self, f) for f in fields)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["size_mm"] is not None:
            d["size_mm"] = round(d["size_mm"], 1)
        return d


def _fact(f: Finding) -> LesionFact:
    hot = bool(f.hypermetabolic)
    return LesionFact(lesion_type=PG.LESION_TYPE[f.kind], position=f.location, region=pet_region_of(f),
                      uptake=UPTAKES[0] if hot else UPTAKES[1], suv_max=f.suv_max,
                      size_mm=None if f.size_mm is None else float(f.size_mm), malignant=hot,
                      grade=PG.suspicion_grade(f.kind, f.size_mm, hot), finding_id=f.id,
                      twin_group=f.params.get("twin_group"))


def is_lesion(f: Finding) -> bool:
    """A finding that is a lesion fact: present, a PET/CT lesion kind, with a PET reading."""
    return f.present and f.kind in PG.LESION_TYPE and f.hypermetabolic is not None


def lesion_facts(study) -> list[LesionFact]:
    """The lesion facts of a PET/CT study from its record (not its text), in finding order."""
    if getattr(study, "pet", None) is None:
        raise ValueError(f"lesion_facts: study {getattr(study, 'study_id', '?')} has no PET; generate it with "
                         f"generate_petct_cohort or WorldConfig(pet=True)")
    facts = [_fact(f) for f in study.findings if is_lesion(f)]
    for fa in facts:   # the record and the reading rule agree (make_pet guarantees it; a silent drift would not)
        if fa.suv_max is not None and (fa.suv_max >= HOT_SUV) != fa.malignant:
            raise ValueError(f"study {study.study_id}: finding {fa.finding_id} has SUVmax {fa.suv_max} but "
                             f"hypermetabolic={fa.malignant}")
    return facts


# ---------------------------------------------------------------------------------------------------------------
# Vietnamese rendering of the same facts
# ---------------------------------------------------------------------------------------------------------------
def _fill_vi(template: str, fact: LesionFact, kind_noun: str) -> str:
    size = f"{int(round(fact.size_mm))} mm" if fact.size_mm is not None else ""
    suv = f"{fact.suv_max:.1f}" if fact.suv_max is not None else ""
    return PG.nfc(template.format(Noun=PG.cap(kind_noun), noun=kind_noun, size=size, suv=suv))


def _vi_sentences(study, facts: list[LesionFact]) -> dict[str, dict[str, list[str]]]:
    """region → {"pet": [...], "ct": [...], "msk_pet": [...], "msk_ct": [...]} Vietnamese sentences."""
    kinds = {f.id: f for f in study.findings}
    out = {r: {"pet": [], "ct": [], "msk_pet": [], "msk_ct": []} for r in PET_REGIONS}
    for fa in facts:
        f = kinds[fa.finding_id]
        noun = PG.lesion_noun(f.kind, f.location, "vi")
        bone = fa.lesion_type == "bone_lesion"
        if not f.params.get("pet_only"):
            out[fa.region]["msk_ct" if bone else "ct"].append(_fill_vi(PG.CT_VI, fa, noun))
        if fa.lesion_type != "cyst":
            tpl = PG.PET_VI["hot" if fa.malignant else "cold"]
            out[fa.region]["msk_pet" if bone else "pet"].append(_fill_vi(tpl, fa, noun))
    return out


def _vi_physiological(study, region: str) -> list[str]:
    organs = [PG.ORGAN_VI[o] for o, on in study.physiological.items() if on and _organ_pet_region(o) == region]
    if not organs:
        return []
    listed = organs[0] if len(organs) == 1 else ", ".join(organs[:-1]) + " và " + organs[-1]
    return [PG.nfc(PG.PHYSIOLOGICAL_VI.format(organs=listed))]


def vietnamese_parts(study) -> dict[str, dict[str, str]]:
    """ViPET-style {region: {"pet", "ct"}} in Vietnamese, from the lesion facts (bone lesions included in their
    region). Covers the lesion facts and physiological uptake, not the world's other CT findings (emphysema, ...):
    the phrase table is small on purpose."""
    facts = lesion_facts(study)
    sents = _vi_sentences(study, facts)
    out = {}
    for r in PET_REGIONS:
        s = sents[r]
        pet = s["pet"] + s["msk_pet"]
        pet += _vi_physiological(study, r)
        if not any(fa.malignant for fa in facts if fa.region == r):
            pet.append(PG.NORMAL_VI[r])
        out[r] = {"pet": PG.nfc(" ".join(pet)), "ct": PG.nfc(" ".join(s["ct"] + s["msk_ct"]))}
    return out


def _impression_vi(facts: list[LesionFact], study) -> str:
    kinds = {f.id: f for f in study.findings}
    order = sorted(facts, key=lambda fa: (not fa.malignant, -(fa.size_mm or 0)))
    lines = [_fill_vi(PG.IMPRESSION["vi"][fa.grade], fa,
                      PG.lesion_noun(kinds[fa.finding_id].kind, fa.position, "vi")) for fa in order]
    if not any(fa.malignant for fa in facts):
        lines.append(PG.IMPRESSION["vi"]["none"])
    return PG.nfc(" ".join(lines))


def vietnamese_report(study) -> dict[str, str]:
    """The study's report as ViMed-PET's JSON: {"Đầu - cổ", "Lồng ngực", "Ổ bụng - khung chậu", "Hệ cơ - xương",
    "Kết luận"} → Vietnamese text (NFC). Each region section holds its CT then PET sentences; bone lesions of any
    region go to "Hệ cơ - xương"; "Kết luận" is the graded impression."""
    facts = lesion_facts(study)
    sents = _vi_sentences(study, facts)
    out = {}
    for r in PET_REGIONS:
        s = sents[r]
        body = s["ct"] + s["pet"] + _vi_physiological(study, r)
        if not any(fa.malignant and fa.lesion_type != "bone_lesion" for fa in facts if fa.region == r):
            body.append(PG.NORMAL_VI[r])
        out[PG.SECTION_VI[r]] = PG.nfc(" ".join(body))
    msk = [t for r in PET_REGIONS for t in sents[r]["msk_ct"] + sents[r]["msk_pet"]]
    out[PG.SECTION_VI["musculoskeletal"]] = PG.nfc(" ".join(msk) if msk else PG.NORMAL_VI["musculoskeletal"])
    out[PG.CONCLUSION_VI] = _impression_vi(facts, study)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Region crops
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class RegionCrop:
    """One region of a PET/CT study, the unit ViPET-VLM trains on (an image-report pair).

    ct, pet: float32 (z1 − z0, H, W); masks: name → bool (z1 − z0, H, W) (the study's masks, cut);
    lesion_map: uint8, finding id + 1; findings: the study's findings of this region (ids unchanged, so
    ``lesion_map == f.id + 1`` is its mask); facts: their :class:`LesionFact` records; labels: CT-RATE vector of
    these findings; pet_text / ct_text: the region's report halves (in ``language``); impression: the impression
    sentences about this region's findings; qa / dialogue: :func:`crop_qa`, :func:`crop_dialogue`.
    """

    study_id: str
    region: str
    z0: int
    z1: int
    ct: np.ndarray
    pet: np.ndarray
    masks: dict[str, np.ndarray]
    lesion_map: np.ndarray
    findings: list[Finding]
    facts: list[LesionFact]
    labels: np.ndarray
    pet_text: str
    ct_text: str
    impression: str
    language: str = "en"
    qa: list[dict] = field(default_factory=list)
    dialogue: list[dict] = field(default_factory=list)

    @property
    def report(self) -> dict[str, str]:
        """``{"PET": ..., "CT": ...}``, the strict-JSON split ViPET-VLM's stage 1a trains on."""
        return {"PET": self.pet_text, "CT": self.ct_text}

    def text(self) -> str:
        """The crop's report: CT half, PET half, impression (the stage-2/3 target)."""
        return " ".join(t for t in (self.ct_text, self.pet_text, self.impression) if t)

    def finding_mask(self, finding_id: int) -> np.ndarray:
        return self.lesion_map == finding_id + 1


def split_regions(study, cfg: PetCtConfig | None = None) -> list[RegionCrop]:
    """A whole-body PET/CT study → its three region crops (head-neck, chest, abdomen-pelvis), with overlap.

    Boundaries: :func:`rrg_lite.world.pet.region_boundaries` (lung apices, lung bases); slices:
    :func:`rrg_lite.data.petct.region_slices`. For real volumes without a study record use
    :func:`rrg_lite.data.petct.crop_regions` with boundaries of your own (e.g. from a segmentation).
    """
    cfg = cfg or PetCtConfig()
    if getattr(study, "pet", None) is None:
        raise ValueError(f"split_regions: study {getattr(study, 'study_id', '?')} has no PET volume")
    if study.pet.shape != study.ct.shape:
        raise ValueError(f"split_regions: PET {study.pet.shape} and CT {study.ct.shape} are not on one grid")
    depth = study.ct.shape[0]
    overlap = scaled_overlap(depth) if cfg.overlap is None else cfg.overlap
    spans = region_slices(depth, region_boundaries(study.labelmap), overlap)
    facts = lesion_facts(study)
    masks = study.masks
    parts = vietnamese_parts(study) if cfg.language == "vi" else study.report.pet_ct_parts
    crops = []
    for i, region in enumerate(PET_REGIONS):
        z0, z1 = spans[region]
        fs = [f for f in study.findings if f.present and pet_region_of(f) == region]
        ids = {f.id for f in fs}
        rfacts = [fa for fa in facts if fa.finding_id in ids]
        crop = RegionCrop(study_id=study.study_id, region=region, z0=z0, z1=z1, ct=study.ct[z0:z1],
                          pet=study.pet[z0:z1], masks={k: v[z0:z1] for k, v in masks.items()},
                          lesion_map=study.lesion_map[z0:z1], findings=fs, facts=rfacts,
                          labels=ct_rate_vector(fs), pet_text=parts[region]["pet"], ct_text=parts[region]["ct"],
                          impression=_crop_impression(study, rfacts, cfg.language), language=cfg.language)
        rng = np.random.default_rng([cfg.seed, zlib.crc32(study.study_id.encode()), i])
        crop.qa = crop_qa(crop, study.physiological, rng, cfg.qa_per_crop)
        crop.dialogue = crop_dialogue(crop, study.physiological)
        crops.append(crop)
    return crops


def _crop_impression(study, facts: list[LesionFact], language: str) -> str:
    if language == "vi":
        return _impression_vi(facts, study)
    ids = {fa.finding_id for fa in facts}
    lines = [s.text for s in study.report.sentences
             if s.section == "impression" and s.finding_ids and set(s.finding_ids) <= ids]
    if not any(fa.malignant for fa in facts):
        lines.append(PG.IMPRESSION["en"]["none"])
    return " ".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# VQA per crop (answers from the facts, never from the text; the style of rrg_lite.world.qa)
# ---------------------------------------------------------------------------------------------------------------
def _noun(fa: LesionFact) -> str:
    return PG.TYPE_NOUN["en"][fa.lesion_type].format(loc=fa.position)


def _organs(physiological: dict, region: str) -> list[str]:
    return [o for o, on in physiological.items() if on and _organ_pet_region(o) == region]


def crop_qa(crop: RegionCrop, physiological: dict, rng: np.random.Generator, n: int = 3) -> list[dict]:
    """Up to ``n`` single-turn questions about one crop: ``{question, answer, type, category, finding_id}`` with
    categories ``metabolism`` (any hot lesion?), ``count``, ``location``, ``suv``, ``size``, ``malignancy``,
    ``physiological``.
    """
    where = REGION_WORDS[crop.region]
    hot = [fa for fa in crop.facts if fa.malignant]
    pool = [_qa(f"Is there any abnormal hypermetabolic lesion in the {where}?", "Yes" if hot else "No", "closed",
                "metabolism")]
    pool.append(_qa(f"How many focal lesions are seen in the {where}?", str(len(crop.facts)), "open", "count"))
    organs = _organs(physiological, crop.region)
    pool.append(_qa(f"Which organs in the {where} show physiological FDG uptake?",
                    ", ".join(organs) if organs else "None", "open", "physiological"))
    for fa in crop.facts:
        noun = _noun(fa)
        pool.append(_qa(f"Where is the {fa.lesion_type.replace('_', ' ')} located?", fa.position, "open",
                        "location", fa.finding_id))
        if fa.size_mm is not None:
            pool.append(_qa(f"What is the size of the {noun} on CT?", f"{int(round(fa.size_mm))} mm", "open", "size",
                            fa.finding_id))
        if fa.malignant and fa.suv_max is not None:
            pool.append(_qa(f"What is the SUVmax of the {noun}?", f"{fa.suv_max:.1f}", "open", "suv", fa.finding_id))
        pool.append(_qa(f"Is the {noun} suspicious for malignancy?", "Yes" if fa.malignant else "No", "closed",
                        "malignancy", fa.finding_id))
    return _choose(rng, pool, n)


#: The image placeholder of a user turn (the same string as :data:`rrg_lite.mllm.text.IMAGE_TOKEN`; the world
#: does not import the model package).
IMAGE_PLACEHOLDER = "<image>"


def crop_dialogue(crop: RegionCrop, physiological: dict) -> list[dict]:
    """One multi-turn dialogue (chat messages, :mod:`rrg_lite.mllm.dialogue`'s format) that reads like the
    clinician the paper describes: uptake on PET first, then the anatomy on CT, then the impression."""
    where = REGION_WORDS[crop.region]
    hot = [fa for fa in crop.facts if fa.malignant]
    organs = _organs(physiological, crop.region)
    if hot:
        a1 = "Yes: " + "; ".join(f"{_noun(fa)}, SUVmax {fa.suv_max:.1f}" for fa in hot) + "."
    else:
        a1 = "No abnormal hypermetabolic focus."
    if organs:
        a1 += " Physiological uptake in the " + ", ".join(organs) + "."
    seen = [fa for fa in crop.facts if fa.size_mm is not None]
    a2 = ("; ".join(f"{int(round(fa.size_mm))} mm {_noun(fa)}" for fa in seen) + ".") if seen else \
        "No focal lesion is described on CT."
    a3 = crop.impression if crop.language == "en" else _crop_impression_en(crop)   # the dialogue is English
    return [{"role": "user", "content": f"{IMAGE_PLACEHOLDER}\nIs there abnormal FDG uptake in the {where}?"},
            {"role": "assistant", "content": a1},
            {"role": "user", "content": "Where are the lesions on CT, and how large are they?"},
            {"role": "assistant", "content": a2},
            {"role": "user", "content": "What is your impression?"},
            {"role": "assistant", "content": a3}]


def _crop_impression_en(crop: RegionCrop) -> str:
    """English impression lines of a crop's facts (the dialogue's last answer when the crop is Vietnamese)."""
    lines = [PG.IMPRESSION["en"][fa.grade].format(
        Size="" if fa.size_mm is None else f"{int(round(fa.size_mm))} mm", noun=_noun(fa),
        suv="" if fa.suv_max is None else f"{fa.suv_max:.1f}").strip() for fa in crop.facts]
    return " ".join(lines) if any(fa.malignant for fa in crop.facts) else \
        " ".join(lines + [PG.IMPRESSION["en"]["none"]])
