"""``OfflineStandInLLM``: a rule-based stand-in that answers the pipelines' prompts offline.

**This is not a language model.** It recognises which template of :mod:`rrg_lite.prompting.templates` rendered a
prompt (:func:`~rrg_lite.prompting.templates.identify` recovers the fields), looks the report up among the
synthetic world's *structured records* (the findings the world drew before writing the report), and composes the
reply from those records with fixed phrasings. It lets the book run the whole μ² pipeline, the PET/CT split and the
rewriting loops on a laptop with no model and no network, with answers that are right by construction.

To make the quality gates have something to catch, it also makes the mistakes real LLMs make, at documented rates,
decided by a hash of the request (so they are deterministic, and a re-ask — a new variant — draws again):

============================  ========================================================================  =========
fault                         what it does                                                              default
============================  ========================================================================  =========
``improper_question``         adds a question unsuitable for an exam ("What is the patient's name?")   0.10
``malformed``                 stage-2 reply without the ``Answer:`` line                                0.05
``wrong_answer``              stage-2 answer contradicting the record                                   0.08
``non_english``               stage-2 thinking written in Spanish                                       0.04
``vacuous``                   stage-2 thinking that says nothing ("Let me think about this.")           0.04
``contradiction``             stage-2 answer claiming a change over time that the report cannot know    0.04
``invalid_json``              PET/CT split wrapped in prose (not strict JSON)                           0.05
``leak``                      PET/CT split with an SUV value left in the CT part                        0.05
``drop_sentence``             paraphrase that loses one finding sentence                                0.05
============================  ========================================================================  =========

A *record* is a dict ``{"study_id", "report", "findings": [...], "normal": [organ, ...], "image"?}`` where each
finding is ``{"label", "organ", "size_mm"?, "hypermetabolic"?, "suv"?, "change"?}``;
:func:`record_from_study` builds one from a :mod:`rrg_lite.world` study.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable, Mapping

from .clients import ChatRequest, PermanentLLMError
from .templates import TEMPLATES, PromptTemplate, identify

__all__ = ["OfflineStandInLLM", "DEFAULT_FAULTS", "ANATOMICAL_ORDER", "record_from_study", "correct_answer",
           "sentence_tags"]

DEFAULT_FAULTS: dict[str, float] = {
    "improper_question": 0.10, "malformed": 0.05, "wrong_answer": 0.08, "non_english": 0.04, "vacuous": 0.04,
    "contradiction": 0.04, "invalid_json": 0.05, "leak": 0.05, "drop_sentence": 0.05,
}

#: Head-to-pelvis order used to sort reasoning ("orders arguments anatomically").
ANATOMICAL_ORDER: tuple[str, ...] = (
    "head", "neck", "thyroid", "trachea", "bronch", "lung", "lobe", "pleura", "mediastinum", "thoracic aorta",
    "heart", "coronary", "pericard", "esophagus",
    "breast", "chest", "liver", "gallbladder", "spleen", "pancreas", "stomach", "kidney", "adrenal", "aorta",
    "abdomen", "bowel", "bladder", "pelvis", "bone",
)

IMPROPER_QUESTION = "What is the patient's name?"


def _organ_text(organ: str) -> str:
    """``kidney_left`` -> ``left kidney`` (how a report says it)."""
    organ = organ.replace("_", " ")
    m = re.match(r"(\w+) (left|right)$", organ)
    return f"{m.group(2)} {m.group(1)}" if m else organ


def _in(place: str) -> str:
    """``left upper lobe`` -> ``the left upper lobe``; ``both lungs`` stays."""
    return place if place.startswith(("both ", "the ")) else f"the {place}"


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _anatomical_rank(text: str) -> int:
    low = text.lower()
    hits = [i for i, name in enumerate(ANATOMICAL_ORDER) if name in low]
    return min(hits) if hits else len(ANATOMICAL_ORDER)


# --- the questions the stand-in asks, and how to answer them from a record -----------------------------------------
_Q_PRESENCE = re.compile(r"^Is there an abnormality in (?:the )?(?P<organ>.+)\?$")
_Q_WHAT = re.compile(r"^What abnormality is seen in (?:the )?(?P<organ>.+)\?$")
_Q_SIZE = re.compile(r"^What is the size of the (?P<label>.+) in (?:the )?(?P<organ>.+)\?$")
_Q_METAB = re.compile(r"^Is the (?P<label>.+) in (?:the )?(?P<organ>.+) hypermetabolic\?$")
_Q_CHANGE = re.compile(r"^How has the (?P<label>.+) in (?:the )?(?P<organ>.+) changed since the prior study\?$")
_Q_FOLLOWUP = "What follow-up would you recommend?"


def _questions_for(record: Mapping[str, Any]) -> list[str]:
    qs = []
    for f in record.get("findings", []):
        organ, label = _organ_text(f["organ"]), f["label"].lower()
        qs.append(f"What abnormality is seen in {_in(organ)}?")
        if f.get("size_mm") is not None:
            qs.append(f"What is the size of the {label} in {_in(organ)}?")
        if f.get("hypermetabolic") is not None:
            qs.append(f"Is the {label} in {_in(organ)} hypermetabolic?")
        if f.get("change") not in (None, "new"):
            qs.append(f"How has the {label} in {_in(organ)} changed since the prior study?")
    for organ in list(record.get("normal", []))[:2]:
        qs.append(f"Is there an abnormality in {_in(_organ_text(organ))}?")
    qs.append(_Q_FOLLOWUP)
    return qs


def _find(record, organ: str, label: str | None = None):
    for f in record.get("findings", []):
        if _organ_text(f["organ"]) == organ and (label is None or f["label"].lower() == label):
            return f
    return None


def _needs_followup(f: Mapping[str, Any]) -> bool:
    return bool(f.get("hypermetabolic")) or (f.get("size_mm") or 0) >= 8 or f.get("change") in ("new", "increased")


def correct_answer(record: Mapping[str, Any], question: str) -> tuple[str, Mapping | None] | None:
    """The record's answer to one of the stand-in's questions, and the finding it is about; ``None`` if the
    question is not one the record can answer (e.g. the improper question)."""
    if question == _Q_FOLLOWUP:
        todo = [f for f in record.get("findings", []) if _needs_followup(f)]
        if not todo:
            return "No specific imaging follow-up is needed.", None
        names = "; ".join(f"the {f['label'].lower()} in {_in(_organ_text(f['organ']))}" for f in todo)
        return f"Follow-up imaging is advised for {names}.", todo[0]
    if m := _Q_PRESENCE.match(question):
        f = _find(record, m["organ"])
        if f is None:
            return f"No, {_in(m['organ'])} appears normal.", None
        return f"Yes, there is {_a(f['label'].lower())} in {_in(m['organ'])}.", f
    if m := _Q_WHAT.match(question):
        f = _find(record, m["organ"])
        return (f"{f['label']}." if f else f"No abnormality is seen in {_in(m['organ'])}."), f
    if m := _Q_SIZE.match(question):
        f = _find(record, m["organ"], m["label"])
        if f is None or f.get("size_mm") is None:
            return None
        return f"About {float(f['size_mm']):.0f} mm.", f
    if m := _Q_METAB.match(question):
        f = _find(record, m["organ"], m["label"])
        if f is None or f.get("hypermetabolic") is None:
            return None
        if f["hypermetabolic"]:
            suv = f" with SUVmax {float(f['suv']):.1f}" if f.get("suv") is not None else ""
            return f"Yes, it shows increased FDG uptake{suv}.", f
        return "No, it shows no increased FDG uptake.", f
    if m := _Q_CHANGE.match(question):
        f = _find(record, m["organ"], m["label"])
        if f is None or f.get("change") is None:
            return None
        return f"It is {f['change']} compared with the prior study.", f
    return None


def _thinking(record, question: str, answer: str, finding, cite_report: bool) -> str:
    source = "The report describes" if cite_report else "I see"
    if finding is None:
        organ = re.search(r"in (?:the )?(.+?)\?$", question)
        where = _in(organ.group(1)) if organ else "the scanned region"
        return (f"I review {where} systematically for masses, fluid or "
                f"abnormal density. {source} no abnormality in {where}, so it appears normal.")
    organ, label = _organ_text(finding["organ"]), finding["label"].lower()
    parts = [f"I look at {_in(organ)} and compare it with the surrounding tissue.",
             f"{source} {_a(label)} in {_in(organ)}"]
    if finding.get("size_mm") is not None:
        parts[-1] += f" measuring about {float(finding['size_mm']):.0f} mm"
    parts[-1] += "."
    if finding.get("hypermetabolic") is not None:
        parts.append("Its FDG uptake is increased, which suggests active disease." if finding["hypermetabolic"]
                     else "It shows no increased FDG uptake, which favours an inactive process.")
    if finding.get("change") not in (None, "new"):
        parts.append(f"Compared with the prior study it is {finding['change']}.")
    parts.append("This supports the answer.")
    return " ".join(parts)


# --- LLM-RG4: which sentences an image-only model cannot know --------------------------------------------------------
def sentence_tags(sentence: str) -> list[str]:
    """The LLM-RG4 categories a sentence contains (comparison, prior_procedure, view, communication).

    The stand-in judges with the same rule-based detector that :mod:`rrg_lite.metrics.hallucination` measures with
    (the DiscBERT stand-in), so after its rewrite the measured rate is low by construction for what the rules see.
    """
    from rrg_lite.metrics.hallucination import detect_input_agnostic

    return [tag for tag, hit in detect_input_agnostic(sentence).items() if hit]


def _sentences(text: str) -> list[str]:
    """Split after . ! ? — but not after a title or abbreviation ("Dr. Smith", "e.g. a")."""
    parts = re.split(r"(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bvs\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<=[.!?])\s+", text.strip())
    return [s.strip() for s in parts if s.strip()]


_PARAPHRASE = [(r"\bThere is\b", "Noted is"), (r"\bthere is\b", "noted is"), (r"\bmeasuring\b", "measuring roughly"),
               (r"\bis seen\b", "is identified"), (r"\bNo evidence of\b", "No sign of"), (r"\bnormal\b", "unremarkable")]

_GLOSSARY_DE = {"the": "die", "is": "ist", "in": "in", "no": "kein", "there": "es", "a": "ein", "of": "von",
                "and": "und", "with": "mit", "lung": "Lunge", "liver": "Leber", "nodule": "Knoten", "normal": "normal",
                "heart": "Herz", "kidney": "Niere", "spleen": "Milz", "left": "links", "right": "rechts",
                "size": "Größe", "mm": "mm", "effusion": "Erguss", "pleural": "pleural", "uptake": "Aufnahme"}


class OfflineStandInLLM:
    """Answers the :data:`~rrg_lite.prompting.templates.TEMPLATES` prompts from structured ``records``.

    ``faults`` overrides :data:`DEFAULT_FAULTS` (``{"wrong_answer": 0.0}``; ``faults={}`` keeps the defaults,
    :meth:`perfect` turns them all off). Unknown prompts raise :class:`~rrg_lite.prompting.clients.PermanentLLMError`.
    """

    def __init__(self, records: Iterable[Mapping[str, Any]] = (), faults: Mapping[str, float] | None = None,
                 seed: int = 0, name: str = "offline-standin", templates: Mapping[str, PromptTemplate] | None = None):
        self.records: dict[str, Mapping[str, Any]] = {}
        for r in records:
            self.add_record(r)
        self.faults = dict(DEFAULT_FAULTS)
        unknown = set(faults or {}) - set(DEFAULT_FAULTS)
        if unknown:
            raise ValueError(f"unknown stand-in faults {sorted(unknown)}; known: {sorted(DEFAULT_FAULTS)}")
        self.faults.update(faults or {})
        self.seed = seed
        self.name = name
        self.templates = dict(templates or TEMPLATES)

    @classmethod
    def perfect(cls, records=(), **kw) -> "OfflineStandInLLM":
        return cls(records, faults={k: 0.0 for k in DEFAULT_FAULTS}, **kw)

    def add_record(self, record: Mapping[str, Any]) -> None:
        if "report" not in record or not str(record["report"]).strip():
            raise ValueError(f"stand-in record {record.get('study_id', '?')!r} has no report text")
        self.records[str(record["report"]).strip()] = record

    def _record(self, report: str) -> Mapping[str, Any]:
        try:
            return self.records[report.strip()]
        except KeyError:
            raise PermanentLLMError(f"{self.name}: no structured record for the report {report[:60]!r}…",
                                    kind="unknown_report") from None

    def _draw(self, request: ChatRequest, tag: str) -> float:
        digest = hashlib.sha256(f"{self.seed}|{tag}|{request.key()}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64

    def _fault(self, request: ChatRequest, tag: str) -> bool:
        return self._draw(request, tag) < self.faults.get(tag, 0.0)

    def chat(self, request: ChatRequest, timeout: float | None = None) -> str:
        found = identify(request, self.templates)
        if found is None:
            raise PermanentLLMError(f"{self.name}: the offline stand-in only answers rrg_lite's prompt templates",
                                    kind="unknown_prompt")
        template, fields = found
        handler = getattr(self, "_" + template.name.replace(".", "_"), None)
        if handler is None:
            raise PermanentLLMError(f"{self.name}: no rule for template {template.id}", kind="unknown_prompt")
        return handler(request, **fields)

    # -- μ² stages ----------------------------------------------------------------------------------------------
    def _mu2_questions(self, request, report):
        qs = _questions_for(self._record(report))
        if self._fault(request, "improper_question"):
            qs.insert(len(qs) // 2, IMPROPER_QUESTION)
        return "\n".join(f"{i}. {q}" for i, q in enumerate(qs, 1))

    def _mu2_answer(self, request, report, question):
        record = self._record(report)
        found = correct_answer(record, question)
        answer, finding = found if found else ("This cannot be determined from the image.", None)
        thinking = _thinking(record, question, answer, finding, cite_report=self._draw(request, "cite") < 0.5)
        if self._fault(request, "wrong_answer"):
            answer = (f"About {float(finding['size_mm']) * 2:.0f} mm." if finding and finding.get("size_mm")
                      else "No abnormality is seen.")
        elif self._fault(request, "contradiction"):
            answer = "It has improved compared with the prior study."
        if self._fault(request, "non_english"):
            thinking = ("Observo la imagen con cuidado y veo una lesión en la zona indicada, que es compatible "
                        "con el hallazgo descrito.")
        elif self._fault(request, "vacuous"):
            thinking = "Let me think about this."
        if self._fault(request, "malformed"):
            return f"Thinking: {thinking}\n{answer}"
        return f"Thinking: {thinking}\n\nAnswer: {answer}"

    def _mu2_filter(self, request, report, question, answer):
        found = correct_answer(self._record(report), question)
        if found is None:
            return "No"
        norm = lambda s: re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()  # noqa: E731
        return "Yes" if norm(found[0]) == norm(answer) else "No"

    def _mu2_refine(self, request, narrative):
        text = narrative
        for pattern, repl in [(r"\bThe report describes\b", "I see"), (r"\bthe report describes\b", "I see"),
                              (r"\bas described in the report\b", "as seen on the image"),
                              (r"\baccording to the report\b", "on the image"), (r"\bthe report\b", "the image")]:
            text = re.sub(pattern, repl, text)
        return text

    def _mu2_report_thinking(self, request, thinking_before):
        blocks = re.findall(r"Question: (.*?)\nThinking: (.*?)\nAnswer: (.*?)(?:\n\n|\Z)", thinking_before, re.S)
        groups, impression, followup, seen = [], [], [], set()
        for q, t, a in blocks:
            q = q.strip()
            if q == _Q_FOLLOWUP:
                followup.append(a.strip())
                continue
            # keep each question's reasoning together; drop sentences already said for an earlier question
            fresh = [s for s in _sentences(t) if s not in seen and s != "This supports the answer."]
            seen.update(fresh)
            if fresh:
                groups.append((_anatomical_rank(q), " ".join(fresh)))
            if _Q_WHAT.match(q) and not a.startswith("No "):
                impression.append(f"{a.strip().rstrip('.')} in {_in(_Q_WHAT.match(q)['organ'])}.")
        groups.sort(key=lambda g: g[0])  # stable: keeps the question order within an organ
        findings = [g[1] for g in groups]
        impression.sort(key=_anatomical_rank)
        return ("Findings Rationale: " + " ".join(findings) + "\n\n"
                "Impression Rationale: " + (" ".join(impression) or "No abnormality is identified.") + "\n\n"
                "Follow-up Rationale: " + (" ".join(followup) or "No follow-up question was raised."))

    # -- rewriting and translation ------------------------------------------------------------------------------
    def _mu2_rewrite(self, request, examples, report):
        sentences = _sentences(report)
        if len(sentences) > 1 and self._fault(request, "drop_sentence"):
            sentences.pop(int(self._draw(request, "which") * len(sentences)))
        out = []
        for s in sentences:
            for pattern, repl in _PARAPHRASE:
                s = re.sub(pattern, repl, s)
            out.append(s)
        return " ".join(out)

    def _mu2_translate(self, request, source_lang, target_lang, text):
        if target_lang.lower() not in {"german", "deutsch", "de"}:
            raise PermanentLLMError(f"{self.name}: the toy glossary only 'translates' into German",
                                    kind="unsupported_language")
        # A word-for-word glossary: exercises the plumbing, is not a translation.
        return re.sub(r"[A-Za-z]+", lambda m: _GLOSSARY_DE.get(m.group(0).lower(), m.group(0)), text)

    def _rg4_judge(self, request, inputs, report):
        has = lambda word: re.search(rf"\b{word}\b", inputs, re.I) and not re.search(rf"\bno {word}\b", inputs, re.I)  # noqa: E731,E501
        allowed = {"comparison"} if has("prior") else set()
        if has("lateral"):
            allowed.add("view")
        bad = [s for s in _sentences(report) if set(sentence_tags(s)) - allowed]
        return "OK" if not bad else "\n".join(f"- {s}" for s in bad)

    def _rg4_rewrite(self, request, inputs, problems, report):
        flagged = {p[2:].strip() for p in problems.splitlines() if p.startswith("- ")}
        return " ".join(s for s in _sentences(report) if s not in flagged)

    # -- ViPET-VLM PET/CT split ---------------------------------------------------------------------------------
    def _vipet_split(self, request, report):
        import json
        record = self._record(report)
        pet, ct = [], []
        for f in record.get("findings", []):
            organ, label = _organ_text(f["organ"]), f["label"].lower()
            size = f" measuring {float(f['size_mm']):.0f} mm" if f.get("size_mm") is not None else ""
            ct.append(f"{label[0].upper() + label[1:]} in {_in(organ)}{size}.")
            if f.get("hypermetabolic"):
                suv = f" (SUVmax {float(f['suv']):.1f})" if f.get("suv") is not None else ""
                pet.append(f"Intense focal FDG uptake in the {organ.removeprefix('both ')} lesion{suv}.")
            elif f.get("hypermetabolic") is False:
                pet.append(f"No increased FDG uptake in the {organ.removeprefix('both ')} lesion.")
        if not pet:
            pet.append("No abnormal hypermetabolic focus.")
        if not ct:
            ct.append("No structural abnormality.")
        if self._fault(request, "leak") and pet:
            ct[-1] = ct[-1].rstrip(".") + ", with SUVmax 4.2."
        body = json.dumps({"PET": " ".join(pet), "CT": " ".join(ct)}, ensure_ascii=False)
        if self._fault(request, "invalid_json"):
            return "Here is the split report:\n" + body
        return body


#: organs whose mask exists in the world and whose normality a question can ask about
_ASKABLE_ORGANS = ("thyroid", "heart", "liver", "spleen", "gallbladder", "pancreas", "stomach", "kidney_left",
                   "kidney_right", "bladder")


def record_from_study(study, report: str | None = None) -> dict[str, Any]:
    """A stand-in record from a :mod:`rrg_lite.world` study: its report text and its structured findings.

    Each finding is named by its label (or its kind for findings outside the label space) and placed by its
    ``location`` words ("left upper lobe"); ``normal`` lists organs with a mask and no finding.
    ``report`` overrides the text (it must be exactly the text the prompts will carry); by default the report's
    ``text()`` (findings and impression).
    """
    if report is None:
        rep = study.report
        report = rep if isinstance(rep, str) else rep.text()
    findings, touched = [], set()
    has_pet = getattr(study, "pet", None) is not None or not hasattr(study, "pet")
    for f in study.findings:
        get = (lambda k, f=f: f.get(k)) if isinstance(f, Mapping) else (lambda k, f=f: getattr(f, k, None))
        name = get("label") or str(get("kind") or "").replace("_", " ")
        place = get("location") or get("organ") or get("region")
        if not name or not place:
            continue
        if get("change") == "resolved":
            continue  # no longer present: not a finding to ask about
        touched.update(str(x) for x in (get("organ"), get("region")) if x)
        findings.append({"label": name[0].upper() + name[1:], "organ": str(place), "size_mm": get("size_mm"),
                         # uptake is only known to a reader who has a PET
                         "hypermetabolic": get("hypermetabolic") if has_pet else None,
                         "suv": (get("suv_max") or get("suv")) if has_pet else None,
                         "change": get("change") if getattr(study, "prior", None) is not None else None})
    masks = getattr(study, "masks", None) or {}
    normal = [o for o in _ASKABLE_ORGANS if o in masks and o not in touched
              and not (o.startswith("kidney") and "kidney" in touched)]
    return {"study_id": str(study.study_id), "report": report, "findings": findings, "normal": normal}
