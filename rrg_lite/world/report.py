"""Reports written from the structured record: sentences with provenance, sections, regions, body parts.

A :class:`Report` is a list of :class:`Sentence` objects. Each sentence knows its section, its region, the findings
it speaks about, the labels it negates and a ``tag`` (``finding``, ``negative``, ``normal``, ``comparison``, ``pet``
or one of the input-agnostic tags). Every text view of the report (the full text, the findings section, the
per-region reports of RadGenome, the per-body-part findings of AMOS-MM, the PET and CT parts of a PET/CT report)
is a filter over those sentences, so they always agree with each other and with the record.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import grammar as G
from . import petct_grammar as PG
from .findings import CT_KINDS, Finding
from .vocab import AGNOSTIC_TAGS, CHEXPERT_LABELS, CT_RATE_LABELS, PET_REGIONS


@dataclass
class Sentence:
    text: str
    section: str                        # "indication", "comparison", "findings", "impression"
    region: str | None = None           # Reg2RG region (CT) / anatomical group (CXR) / PET region
    body_part: str | None = None        # chest / abdomen / pelvis
    finding_ids: tuple[int, ...] = ()
    tag: str = "finding"                # finding | negative | normal | comparison | pet | <agnostic tag>
    negated: tuple[str, ...] = ()       # labels this sentence states as absent
    part: str | None = None             # "pet" or "ct" inside a PET/CT report

    @property
    def agnostic(self) -> bool:
        return self.tag in AGNOSTIC_TAGS

    def to_dict(self) -> dict:
        return {"text": self.text, "section": self.section, "region": self.region, "body_part": self.body_part,
                "finding_ids": list(self.finding_ids), "tag": self.tag, "negated": list(self.negated),
                "part": self.part}


@dataclass
class Report:
    """A report as tagged sentences. ``kind`` is "ct", "petct" or "cxr"."""

    kind: str
    sentences: list[Sentence] = field(default_factory=list)

    def _join(self, sents) -> str:
        return " ".join(s.text for s in sents)

    def section(self, name: str, include_agnostic: bool = True) -> str:
        return self._join(s for s in self.sentences if s.section == name and (include_agnostic or not s.agnostic))

    @property
    def findings(self) -> str:
        return self.section("findings")

    @property
    def impression(self) -> str:
        return self.section("impression")

    def text(self, include_agnostic: bool = True, headers: bool = True) -> str:
        """The whole report; with ``headers`` in the upper-case ``SECTION:`` style of MIMIC-CXR."""
        parts = []
        for name in ("indication", "comparison", "findings", "impression"):
            body = self.section(name, include_agnostic)
            if body:
                parts.append(f"{name.upper()}: {body}" if headers else body)
        return ("\n\n" if headers else " ").join(parts)

    @property
    def region_reports(self) -> dict[str, str]:
        """RadGenome-style region → sentences (findings section only; regions that are never mentioned are absent)."""
        out: dict[str, list[str]] = {}
        for s in self.sentences:
            if s.section == "findings" and s.region is not None and s.part != "pet":
                out.setdefault(s.region, []).append(s.text)
        return {k: " ".join(v) for k, v in out.items()}

    @property
    def body_parts(self) -> dict[str, str]:
        """AMOS-MM-style findings per body part (chest / abdomen / pelvis)."""
        out: dict[str, list[str]] = {}
        for s in self.sentences:
            if s.section == "findings" and s.body_part is not None and s.part != "pet":
                out.setdefault(s.body_part, []).append(s.text)
        return {k: " ".join(v) for k, v in out.items()}

    @property
    def pet_ct_parts(self) -> dict[str, dict[str, str]]:
        """ViPET-style {pet region: {"pet": text, "ct": text}} for a PET/CT report."""
        out = {r: {"pet": [], "ct": []} for r in PET_REGIONS}
        for s in self.sentences:
            if s.section == "findings" and s.part in ("pet", "ct") and s.region in out:
                out[s.region][s.part].append(s.text)
        return {r: {k: " ".join(v) for k, v in d.items()} for r, d in out.items()}

    @property
    def negated_labels(self) -> set[str]:
        return {lab for s in self.sentences for lab in s.negated}

    def word_count(self) -> int:
        return len(self.text(headers=False).split())

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sentences": [s.to_dict() for s in self.sentences]}


# ---------------------------------------------------------------------------------------------------------------
# Filling templates
# ---------------------------------------------------------------------------------------------------------------


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def fill(template: str, f: Finding | None = None, **extra) -> str:
    """Fill slots from a finding: {size} "12 mm", {loc}, {side}, {sev}, {subtype}, {suv}, {prior}."""
    slots = {}
    if f is not None:
        side = f.side if f.side not in (None, "bilateral") else "bilateral"
        slots = {"size": f"{int(round(f.size_mm))} mm" if f.size_mm is not None else "",
                 "loc": f.location, "side": side, "sev": f.severity or "mild", "subtype": f.subtype or "",
                 "suv": f"{f.suv_max:.1f}" if f.suv_max is not None else "",
                 "prior": f"{int(round(f.prior_size_mm))} mm" if f.prior_size_mm is not None else "a smaller size",
                 "cm": "4"}
    slots.update(extra)
    slots.update({k[:1].upper() + k[1:]: _cap(str(v)) for k, v in list(slots.items())})
    return _cap(template.format(**slots).replace("the both ", "both ").replace("a both ", "both "))


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def ct_noun(f: Finding) -> str:
    if f.kind in PG.CT_NOUN_EXTRA:    # PET/CT-only kinds (the normal-size hypermetabolic node)
        return fill(PG.CT_NOUN_EXTRA[f.kind], f).lower()
    return fill(G.CT_NOUN[f.kind], f).lower() if f.kind != "medical_material" else (f.subtype or "medical material")


def ct_positive(rng, f: Finding, sized: bool = False) -> str:
    """A positive CT sentence; ``sized`` (the CT half of a PET/CT report) keeps only phrasings with the size."""
    key = f.kind
    if f.kind == "pleural_effusion" and f.side == "bilateral":
        key = "pleural_effusion_bilateral"
    elif f.kind in ("medical_material", "bone_lesion"):
        key = f"{f.kind}/{f.subtype}"
    options = G.CT_POSITIVE[key]
    if f.size_mm is None:   # avoid templates with a size slot when there is no size
        options = [o for o in options if "{size" not in o.lower()] or options
    elif sized:
        options = [o for o in options if "{size" in o.lower()] or options
    return fill(_pick(rng, options), f)


def comparison_sentence(rng, f: Finding, noun: str, section="findings", region=None, body_part=None, part=None):
    text = fill(_pick(rng, G.COMPARISON[f.change]), f, noun=noun)
    negated = (f.label,) if (f.change == "resolved" and f.label) else ()
    return Sentence(text, section, region, body_part, (f.id,), "comparison", negated, part)


# ---------------------------------------------------------------------------------------------------------------
# CT
# ---------------------------------------------------------------------------------------------------------------


def _varied_order(rng, order, swaps=2):
    order = list(order)
    for _ in range(swaps):
        i = int(rng.integers(len(order) - 1))
        order[i], order[i + 1] = order[i + 1], order[i]
    return order


def _region_of_label() -> dict[str, str]:
    return {k.label: k.region for k in CT_KINDS.values() if k.label}


def ct_report(rng: np.random.Generator, findings: list[Finding], cfg, scan_range: str, has_prior: bool,
              part: str | None = None, p_mention: float = 0.4) -> Report:
    """CT-RATE-style findings (region by region) + impression, from the structured findings.

    ``has_prior``: add comparison sentences for changes. ``part="ct"`` marks sentences as the CT part of a
    PET/CT report (then sentences are also grouped by PET region).
    """
    rep = Report("ct" if part is None else "petct")
    present_labels = {f.label for f in findings if f.present and f.label}
    label_region = _region_of_label()
    regions = _varied_order(rng, G.CT_REGION_ORDER)
    for region in regions:
        fs = [f for f in findings if f.region == region]
        if region == "abdomen":
            fs.sort(key=lambda f: f.body_part == "pelvis")
        sents: list[Sentence] = []
        for f in fs:
            if f.params.get("pet_only"):   # PET/CT: normal on CT (a normal-size node), only the PET half tells
                continue
            pr = _pet_region(f) if part else region
            if f.present:
                sents.append(Sentence(ct_positive(rng, f, sized=part is not None), "findings",
                                      pr if part else region, f.body_part, (f.id,), "finding", part=part))
            if has_prior and f.change is not None and (f.change != "unchanged" or rng.random() < 0.5):
                sents.append(comparison_sentence(rng, f, ct_noun(f), region=pr if part else region,
                                                 body_part=f.body_part, part=part))
        pos = [s for s in sents if s.tag == "finding"]
        body_part = "chest" if region != "abdomen" else "abdomen"
        if not pos and (rng.random() < p_mention or region in ("lung", "heart")):
            key = "abdomen/cap" if (region == "abdomen" and scan_range != "chest") else region
            pr = {"thyroid": "head_neck", "abdomen": "abdomen_pelvis"}.get(region, "chest")
            sents.insert(0, Sentence(fill(_pick(rng, G.CT_NORMAL[key])), "findings", pr if part else region,
                                     body_part, (), "normal", part=part))
        # stated negatives for absent labels of this region
        absent = [lab for lab in CT_RATE_LABELS if label_region[lab] == region and lab not in present_labels]
        n_neg = 0
        for lab in absent:
            if n_neg < 1 and rng.random() < cfg.p_state_negative * 0.3:
                sents.append(Sentence(fill(_pick(rng, G.CT_NEGATIVE[lab])), "findings", "chest" if part else region,
                                      "chest", (), "negative", (lab,), part=part))
                n_neg += 1
        rep.sentences += sents
    if scan_range != "chest" and not any(f.body_part == "pelvis" and f.present for f in findings) \
            and rng.random() < p_mention:
        rep.sentences.append(Sentence(fill(_pick(rng, G.CT_NORMAL["pelvis"])), "findings",
                                      "abdomen_pelvis" if part else "abdomen", "pelvis", (), "normal", part=part))
    # impression: the positives, most important first
    pos = [f for f in findings if f.present and not f.params.get("pet_only")]
    pos.sort(key=lambda f: (f.label is None, -(f.size_mm or 0)))
    if pos:
        for f in pos[:3]:
            noun = ct_noun(f)
            if f.size_mm is not None and f.kind not in ("pleural_effusion", "pericardial_effusion") and rng.random() < 0.5:
                noun = f"{int(round(f.size_mm))} mm {noun}"
            if has_prior and f.change in ("new", "increased", "decreased"):
                noun = f"{f.change} {noun}"
            rep.sentences.append(Sentence(_cap(noun) + ".", "impression", None, f.body_part, (f.id,), "finding",
                                          part=part))
    else:
        rep.sentences.append(Sentence(_pick(rng, G.CT_IMPRESSION_NORMAL), "impression", None, None, (), "normal",
                                      part=part))
    if rng.random() < (cfg.p_input_agnostic_ct if part is None else 0.0):
        _add_agnostic(rng, rep, ("prior_comparison", "recommendation", "communication"))
    return rep


def _pet_region(f: Finding) -> str:
    if "pet_region" in f.params:     # set from the slice of its mask (rrg_lite.world.pet): the crops agree
        return f.params["pet_region"]
    if f.kind == "thyroid_nodule" or (f.center_mm is not None and f.center_mm[0] < -10):
        return "head_neck"
    return "chest" if f.body_part == "chest" else "abdomen_pelvis"


def petct_report(rng, findings: list[Finding], cfg, scan_range: str, physiological: dict[str, bool],
                 has_prior: bool = False) -> Report:
    """A PET/CT report: a CT half (as :func:`ct_report`: anatomy, sizes), a PET half (uptake and SUVmax, no
    sizes), both grouped by PET region, and a joint impression whose wording needs both halves.

    The PET half names each lesion by type and position (:func:`rrg_lite.world.petct_grammar.lesion_noun`); cold
    cysts are left to the CT half (they show only there), a normal-size hot node only to the PET half. The
    impression has one sentence per lesion, graded by :func:`~rrg_lite.world.petct_grammar.suspicion_grade` (CT
    size + PET uptake), most suspicious first, then up to two other CT findings.
    """
    rep = ct_report(rng, findings, cfg, scan_range, has_prior=has_prior, part="ct")
    rep.sentences = [s for s in rep.sentences if s.section != "impression"]
    for region in PET_REGIONS:
        fs = [f for f in findings if f.present and f.hypermetabolic is not None and _pet_region(f) == region]
        hot = False
        for f in fs:
            if f.kind in ("liver_cyst", "renal_cyst"):
                continue
            noun = PG.lesion_noun(f.kind, f.location) if f.kind in PG.LESION_TYPE else ct_noun(f)
            hot = hot or bool(f.hypermetabolic)
            text = fill(_pick(rng, G.PET_HOT if f.hypermetabolic else G.PET_COLD), f, noun=noun)
            tag = "finding" if f.params.get("pet_only") else "pet"
            rep.sentences.append(Sentence(text, "findings", region, f.body_part, (f.id,), tag, part="pet"))
        organs = [o for o, on in physiological.items() if on and _organ_pet_region(o) == region]
        if organs:
            listed = organs[0] if len(organs) == 1 else ", ".join(organs[:-1]) + " and " + organs[-1]
            rep.sentences.append(Sentence(fill(_pick(rng, G.PET_PHYSIOLOGICAL), organs=listed), "findings", region,
                                          None, (), "pet", part="pet"))
        if not hot:
            rep.sentences.append(Sentence(_pick(rng, G.PET_REGION_NORMAL[region]), "findings", region, None, (),
                                          "pet", part="pet"))
    lesions = [f for f in findings if f.present and f.kind in PG.LESION_TYPE and f.hypermetabolic is not None]
    lesions.sort(key=lambda f: (not f.hypermetabolic, -(f.size_mm or 0)))
    for f in lesions:
        grade = PG.suspicion_grade(f.kind, f.size_mm, bool(f.hypermetabolic))
        text = fill(PG.IMPRESSION["en"][grade], f, noun=PG.lesion_noun(f.kind, f.location))
        rep.sentences.append(Sentence(text, "impression", None, f.body_part, (f.id,), "finding"))
    others = [f for f in findings if f.present and f.kind not in PG.LESION_TYPE]
    others.sort(key=lambda f: (f.label is None, -(f.size_mm or 0)))
    for f in others[:2]:
        rep.sentences.append(Sentence(_cap(ct_noun(f)) + ".", "impression", None, f.body_part, (f.id,), "finding"))
    if not any(f.hypermetabolic for f in lesions):
        rep.sentences.append(Sentence(PG.IMPRESSION["en"]["none"], "impression", None, None, (), "normal"))
    return rep


def _organ_pet_region(organ: str) -> str:
    return {"brain": "head_neck", "myocardium": "chest"}.get(organ, "abdomen_pelvis")


def _add_agnostic(rng, rep: Report, tags, n: int | None = None) -> None:
    n = n or int(rng.integers(1, 3))
    chosen = list(rng.choice(len(tags), size=min(n, len(tags)), replace=False))
    for i in chosen:
        tag = tags[int(i)]
        text = fill(_pick(rng, G.AGNOSTIC[tag]), days=int(rng.integers(2, 400)))
        section = "impression" if tag in ("communication", "recommendation") else "findings"
        s = Sentence(text, section, None, None, (), tag)
        idx = [j for j, t in enumerate(rep.sentences) if t.section == section]
        if tag == "view" and idx:
            rep.sentences.insert(idx[0], s)
        elif idx:
            rep.sentences.insert(idx[-1] + 1, s)
        else:
            rep.sentences.append(s)


# ---------------------------------------------------------------------------------------------------------------
# Chest X-ray
# ---------------------------------------------------------------------------------------------------------------
_CXR_GROUPS = (
    ("devices", ("support_devices",), ()),
    ("cardiomediastinal", ("enlarged_cardiomediastinum", "cardiomegaly"), ("Cardiomegaly", "Enlarged Cardiomediastinum")),
    ("lungs", ("lung_opacity", "lung_lesion", "edema", "consolidation", "pneumonia", "atelectasis"),
     ("Edema", "Consolidation", "Lung Lesion", "Lung Opacity", "Pneumonia", "Atelectasis")),
    ("pleura", ("pleural_effusion", "pneumothorax", "pleural_other"), ("Pleural Effusion", "Pneumothorax", "Pleural Other")),
    ("bones", ("fracture",), ("Fracture",)),
)


def cxr_noun(f: Finding) -> str:
    return fill(G.CXR_NOUN[f.kind], f).lower()


def cxr_report(rng, findings: list[Finding], cfg, has_prior: bool, views: tuple[str, ...]) -> Report:
    """MIMIC-style report: INDICATION, COMPARISON, FINDINGS (devices, heart, lungs, pleura, bones), IMPRESSION."""
    rep = Report("cxr")
    if rng.random() < 0.6:
        rep.sentences.append(Sentence(_pick(rng, G.INDICATIONS), "indication", tag="normal"))
    rep.sentences.append(Sentence("Prior chest radiograph." if has_prior else "None.", "comparison",
                                  tag="comparison" if has_prior else "normal"))
    positive = {f.label for f in findings if f.present}
    for group, kinds, negatable in _CXR_GROUPS:
        fs = [f for f in findings if f.kind in kinds]
        for f in fs:
            if f.present:
                if f.certainty == "uncertain":
                    text = fill(_pick(rng, G.CXR_UNCERTAIN), f, noun=cxr_noun(f))
                else:
                    key = f.kind if f.kind != "support_devices" else f"support_devices/{f.subtype}"
                    if f.kind == "pleural_effusion" and f.side == "bilateral":
                        key = "pleural_effusion_bilateral"
                    opts = G.CXR_POSITIVE[key]
                    if f.size_mm is None:
                        opts = [o for o in opts if "{size" not in o.lower()] or opts
                    text = fill(_pick(rng, opts), f)
                rep.sentences.append(Sentence(text, "findings", group, "chest", (f.id,), "finding"))
            # A hedged finding gets no comparison sentence: "X is stable" would assert what the report hedged.
            if (has_prior and f.change is not None and not (f.present and f.certainty == "uncertain")
                    and (f.change != "unchanged" or rng.random() < 0.5)):
                rep.sentences.append(comparison_sentence(rng, f, cxr_noun(f), region=group, body_part="chest"))
        absent = [lab for lab in negatable if lab not in positive]
        if group == "lungs" and not any(f.present for f in fs) and rng.random() < 0.7:
            rep.sentences.append(Sentence(_pick(rng, G.CXR_CLEAR_LUNGS), "findings", group, "chest", (), "normal"))
        if group == "pleura" and {"Pleural Effusion", "Pneumothorax"} <= set(absent) and rng.random() < 0.6:
            rep.sentences.append(Sentence(_pick(rng, G.CXR_NEGATIVE_PAIR[2]), "findings", group, "chest", (),
                                          "negative", ("Pleural Effusion", "Pneumothorax")))
            absent = [a for a in absent if a not in ("Pleural Effusion", "Pneumothorax")]
        for lab in absent:
            p = cfg.p_state_negative * (1.0 if lab in ("Cardiomegaly", "Pneumothorax", "Pleural Effusion",
                                                       "Consolidation") else 0.25)
            if rng.random() < p:
                rep.sentences.append(Sentence(_pick(rng, G.CXR_NEGATIVE[lab]), "findings", group, "chest", (),
                                              "negative", (lab,)))
    if not any(s.section == "findings" for s in rep.sentences):   # never leave FINDINGS empty
        rep.sentences.append(Sentence(_pick(rng, G.CXR_CLEAR_LUNGS), "findings", "lungs", "chest", (), "normal"))
    pos = [f for f in findings if f.present and f.kind != "support_devices"]
    if pos:
        for f in pos[:3]:
            noun = cxr_noun(f)
            if f.certainty == "uncertain":
                text = fill(_pick(rng, G.CXR_UNCERTAIN), f, noun=noun)
            else:
                if has_prior and f.change in ("new", "increased", "decreased"):
                    noun = f"{f.change} {noun}"
                text = _cap(noun) + "."
            rep.sentences.append(Sentence(text, "impression", None, "chest", (f.id,), "finding"))
    else:
        rep.sentences.append(Sentence(_pick(rng, G.CXR_IMPRESSION_NORMAL), "impression", None, None, (), "normal"))
    if rng.random() < cfg.p_input_agnostic_xray:
        tags = ["prior_procedure", "view", "communication", "recommendation"]
        if not has_prior:
            tags.append("prior_comparison")
        _add_agnostic(rng, rep, tuple(tags))
    return rep


def chexpert_vector(findings: list[Finding], report: Report) -> np.ndarray:
    """CheXpert 14 from the record: 1 definite, −1 uncertain, 0 stated negative, NaN unmentioned.

    "No Finding" is 1 when no pathology (all but Support Devices) is 1 or −1, NaN otherwise, as in MIMIC's CSV.
    """
    v = np.full(len(CHEXPERT_LABELS), np.nan, np.float32)
    idx = {lab: i for i, lab in enumerate(CHEXPERT_LABELS)}
    for lab in report.negated_labels:
        v[idx[lab]] = 0.0
    for f in findings:
        if f.present and f.label:
            i = idx[f.label]
            val = 1.0 if f.certainty == "definite" else -1.0
            v[i] = val if np.isnan(v[i]) or v[i] != 1.0 else 1.0
    patho = [idx[l] for l in CHEXPERT_LABELS if l not in ("Support Devices", "No Finding")]
    if not np.any(np.isin(v[patho], (1.0, -1.0))):
        v[idx["No Finding"]] = 1.0
    return v


def ct_rate_vector(findings: list[Finding]) -> np.ndarray:
    """CT-RATE 18 binary labels: 1 if a present finding has that label."""
    present = {f.label for f in findings if f.present and f.label}
    return np.array([1 if lab in present else 0 for lab in CT_RATE_LABELS], np.int64)
