"""M4CXR's instruction dataset: one conversation template per task (Table IX), CoT report generation (Sec. III-B).

Every training example of M4CXR is a conversation: a system prompt, then user/assistant turns built from one
task's template with the study's facts filled in (``{findings}``, ``{bbox}``, ``{question}`` ...). The tasks and
their types (Table I, Table X):

=================================  ===================  ========================================================
task                               type                 the assistant answers
=================================  ===================  ========================================================
``single_image_mrg``               mrg                  turn 1: the positive findings; turn 2: FINDINGS section
``multi_image_mrg``                mrg                  same, from every image of the study (at most 5)
``multi_study_mrg``                mrg                  same, with the prior study's images and report (<= 10)
``disease_classification``         image_understanding  the positive findings among the dataset's labels
``finding_grounding``              image_understanding  "Yes. [box]." or "Not present."
``grounded_finding``               image_understanding  the finding name of a box
``abnormality_detection``          image_understanding  every abnormal box
``multi_finding_grounding``        image_understanding  "name [box], name [box]." or "Not found."
``organ_grounding`` / ``grounded_organ``                organ <-> box
``phrase_grounding`` / ``grounded_phrase``              report phrase <-> box (MS-CXR, ImaGenome)
``anatomical_region_grounding`` / ``grounded_anatomical_region``   region name <-> box (ImaGenome)
``vqa``                            vqa                  the answer (MIMIC-CXR-VQA)
``difference_vqa``                 vqa                  the answer about reference (prior) vs main image
``instruction_following``          vqa                  the answer (RaDialog)
=================================  ===================  ========================================================

**Chain-of-thought MRG** (Sec. III-B, Fig. 3): :func:`cot_dialogue` writes the two turns. Turn 1 lists the
candidate findings (CheXbert's 13 conditions, lower-cased, "No Finding" left out; positive only — uncertain and
blank count as negative) and the assistant names the positive ones ("atelectasis, pleural effusion." or
"Not found."); turn 2 asks for the report "based on the previous conversation". At inference the model's *own*
turn-1 answer is fed back (:func:`cot_followup`); :func:`parse_findings_list` reads a turn-1 answer back into
candidates. ``cot=False`` gives the single-turn MRG of the ablation (Table VIII, Exp1).

Boxes are text (Sec. III-A-2): ``[x1,y1,x2,y2]`` integers 0–100 of the centre-cropped square, written and parsed
by :mod:`rrg_lite.data.boxes`.

What is ours, not the paper's:

- Template 0 of every task is Table IX's wording. Where Table IX, Fig. 6 and the official code differ in small
  ways we follow the figure and the code: "...present in the radiology image?" (Table IX's single-image row says
  "images"), commas as in Fig. 6 ("Based on the previous conversation, provide ..."; "reference: <image>, main:
  <image>"), and the multi-image turn 2 ends "...in the radiology images." (Table IX says "current follow-up").
- The paper has one template per task. Templates 1 and 2 are our paraphrases, drawn by the seeded ``rng`` when
  ``paraphrase=True`` (default False: Table IX only), to keep a small LM from memorising one phrasing.
- The system prompt: the paper only says it asks the assistant for "helpful and detailed answers"; ours says so.
- Answer forms that Table IX writes only as ``{bbox}`` or ``{findings}`` follow the official code: "Yes. [box]."
  / "Not present." for finding grounding, "Not found." for an empty findings list, names joined by ", ".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np

from rrg_lite.data.boxes import box_text, boxes_text, is_valid_box_100, to_relative_100
from rrg_lite.mllm.text import IMAGE_TOKEN
from rrg_lite.world.vocab import CHEXPERT_LABELS

__all__ = ["SYSTEM_PROMPT", "CXR_CONDITIONS", "TASKS", "TASK_TYPES", "TEMPLATES", "NOT_FOUND", "NOT_PRESENT",
           "MAX_IMAGES_MULTI_IMAGE", "MAX_IMAGES_MULTI_STUDY", "StudyFacts", "build_instruction", "available_tasks",
           "cot_dialogue", "cot_followup", "findings_answer", "parse_findings_list", "facts_from_xray_study"]

SYSTEM_PROMPT = ("You are an AI medical assistant that reads chest X-rays. Give helpful and detailed answers to the "
                 "user's questions.")

#: CheXbert's conditions as M4CXR lists them in the CoT question: lower-cased, "No Finding" left out (13).
CXR_CONDITIONS: tuple[str, ...] = tuple(l.lower() for l in CHEXPERT_LABELS if l != "No Finding")

NOT_FOUND = "Not found."       # empty findings list (classification, CoT turn 1, multi-finding grounding)
NOT_PRESENT = "Not present."   # finding grounding of an absent finding

#: Appendix A: multi-image keeps studies with at most 5 images, multi-study at most 10 images in all.
MAX_IMAGES_MULTI_IMAGE = 5
MAX_IMAGES_MULTI_STUDY = 10

MRG, IU, VQA = "mrg", "image_understanding", "vqa"
TASK_TYPES: dict[str, str] = {
    "single_image_mrg": MRG, "multi_image_mrg": MRG, "multi_study_mrg": MRG,
    "disease_classification": IU, "finding_grounding": IU, "grounded_finding": IU, "abnormality_detection": IU,
    "multi_finding_grounding": IU, "organ_grounding": IU, "grounded_organ": IU, "grounded_phrase": IU,
    "phrase_grounding": IU, "anatomical_region_grounding": IU, "grounded_anatomical_region": IU,
    "vqa": VQA, "difference_vqa": VQA, "instruction_following": VQA,
}
TASKS: tuple[str, ...] = tuple(TASK_TYPES)

# ---- templates -------------------------------------------------------------------------------------------------
# Each entry: user-turn templates; index 0 is Table IX, 1-2 our paraphrases. MRG tasks have a second list for
# turn 2 (key "<task>:turn2") and one for the single-turn (no CoT) variant ("<task>:single_turn"), drawn with the
# same index; "{prefix}" is the image part ("radiology image: <image>", or the multi-study prefix).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "single_image_mrg": (
        "{prefix} Which of the following findings are present in the radiology image? "
        "Findings: {findings}",
        "{prefix} Look at the chest X-ray. Which of these findings can you see? Findings: {findings}",
        "{prefix} From this list, name the findings that are present in the image. "
        "Findings: {findings}",
    ),
    "single_image_mrg:turn2": (
        "Based on the previous conversation, provide a description of the findings in the radiology image.",
        "Using the findings you identified, write the FINDINGS section of the report for this image.",
        "Now describe the findings in the radiology image, in light of your previous answer.",
    ),
    "single_image_mrg:single_turn": (
        "{prefix} Provide a description of the findings in the radiology image.",
        "{prefix} Write the FINDINGS section of the report for this chest X-ray.",
        "{prefix} Describe the findings in this radiology image.",
    ),
    "multi_image_mrg": (
        "{prefix} Which of the following findings are present in the radiology images? "
        "Findings: {findings}",
        "{prefix} These are views of one study. Which of these findings can you see? "
        "Findings: {findings}",
        "{prefix} From this list, name the findings present in these images. Findings: {findings}",
    ),
    "multi_image_mrg:turn2": (
        "Based on the previous conversation, provide a description of the findings in the radiology images.",
        "Using the findings you identified, write the FINDINGS section of the report for these images.",
        "Now describe the findings in the radiology images, in light of your previous answer.",
    ),
    "multi_image_mrg:single_turn": (
        "{prefix} Provide a description of the findings in the radiology images.",
        "{prefix} Write the FINDINGS section of the report for this study.",
        "{prefix} Describe the findings in these radiology images.",
    ),
    "multi_study": (  # shared prefix of the multi-study question
        "prior radiology images: {prior_images}, prior radiology report: {prior_report} follow-up images: "
        "{images}, The radiology studies are given in chronological order.",
        "earlier study images: {prior_images}, earlier report: {prior_report} current images: {images}, "
        "The studies are in chronological order.",
        "prior images: {prior_images}, prior report: {prior_report} follow-up images: {images}, The earlier study "
        "comes first.",
    ),
    "multi_study_mrg": (
        "{prefix} Which of the following findings are present in the current follow-up radiology images? "
        "Findings: {findings}",
        "{prefix} Which of these findings can you see on the current images? Findings: {findings}",
        "{prefix} From this list, name the findings present in the follow-up images. Findings: {findings}",
    ),
    "multi_study_mrg:turn2": (
        "Based on the previous conversation, provide a description of the findings in the current follow-up "
        "radiology images.",
        "Using the findings you identified, write the FINDINGS section of the report for the current study.",
        "Now describe the findings in the follow-up images, in light of your previous answer.",
    ),
    "multi_study_mrg:single_turn": (
        "{prefix} Provide a description of the findings in the current follow-up radiology images.",
        "{prefix} Write the FINDINGS section of the report for the current study.",
        "{prefix} Describe the findings in the follow-up images.",
    ),
    "disease_classification": (
        "radiology image: {images} Which of the following findings are present in the radiology image? "
        "Findings: {findings}",
        "radiology image: {images} Which of these findings can you see? Findings: {findings}",
        "radiology image: {images} Name the findings from this list that are present. Findings: {findings}",
    ),
    "finding_grounding": (
        "radiology image: {images} Is {finding} present in the radiology image? If so, provide the bounding box "
        "coordinates of the region.",
        "radiology image: {images} Is there {finding}? If yes, give its bounding box.",
        "radiology image: {images} Does the image show {finding}? If it does, provide the box coordinates.",
    ),
    "grounded_finding": (
        "radiology image: {images} Provide a finding name for this region. {bbox}",
        "radiology image: {images} What finding is in this region? {bbox}",
        "radiology image: {images} Name the finding inside this box. {bbox}",
    ),
    "abnormality_detection": (
        "radiology image: {images} Provide the bounding box coordinates of abnormal regions in the radiology image.",
        "radiology image: {images} Give the bounding boxes of all abnormal regions.",
        "radiology image: {images} Where are the abnormalities? Provide their bounding box coordinates.",
    ),
    "multi_finding_grounding": (
        "radiology image: {images} Which of the following findings are present in the radiology image? Provide the "
        "bounding box coordinates if present. Findings: {findings}",
        "radiology image: {images} Which of these findings can you see? Give a bounding box for each one present. "
        "Findings: {findings}",
        "radiology image: {images} Name the findings present and locate each with a bounding box. "
        "Findings: {findings}",
    ),
    "organ_grounding": (
        "radiology image: {images} Provide the bounding box coordinates of {organ} in the radiology image.",
        "radiology image: {images} Where is the {organ}? Give its bounding box.",
        "radiology image: {images} Locate the {organ} with a bounding box.",
    ),
    "grounded_organ": (
        "radiology image: {images} Provide an organ name for this region. {bbox}",
        "radiology image: {images} Which organ is in this region? {bbox}",
        "radiology image: {images} Name the organ inside this box. {bbox}",
    ),
    "grounded_phrase": (
        "radiology image: {images} Provide a radiology report phrase for the region. {bbox}",
        "radiology image: {images} Describe this region as a report sentence would. {bbox}",
        "radiology image: {images} Write a report phrase about this box. {bbox}",
    ),
    "phrase_grounding": (
        "radiology image: {images} Provide the bounding box coordinate of the region this phrase describes: {phrase}",
        "radiology image: {images} Give the bounding box of the region described here: {phrase}",
        "radiology image: {images} Locate this description with a bounding box: {phrase}",
    ),
    "anatomical_region_grounding": (
        "radiology image: {images} Provide the bounding box coordinate of the anatomical region. {name}",
        "radiology image: {images} Give the bounding box of this anatomical region. {name}",
        "radiology image: {images} Locate the anatomical region with a bounding box. {name}",
    ),
    "grounded_anatomical_region": (
        "radiology image: {images} Provide an anatomical region name for this region. {bbox}",
        "radiology image: {images} Which anatomical region is this? {bbox}",
        "radiology image: {images} Name the anatomical region inside this box. {bbox}",
    ),
    "vqa": (
        "radiology image: {images} Answer the question. {question}",
        "radiology image: {images} Please answer: {question}",
        "radiology image: {images} Question: {question}",
    ),
    "difference_vqa": (
        "reference: {prior_images}, main: {images} Using the provided reference and main radiology images, answer "
        "the following question. {question}",
        "reference: {prior_images}, main: {images} Compare the main image with the reference and answer. {question}",
        "reference: {prior_images}, main: {images} Looking at both images, answer this question. {question}",
    ),
    "instruction_following": (  # the instruction is the data's own text: nothing to paraphrase
        "radiology image: {images} {question}",
    ),
}

_ORGAN_NAMES = {"lung_right": "right lung", "lung_left": "left lung"}


# ---- the facts a template needs ---------------------------------------------------------------------------------
@dataclass
class StudyFacts:
    """What the instruction builder needs to know about one study (all boxes on the 0–100 scale of ``box_view``).

    study_id: an id (never a patient identifier). views: image keys of this study, e.g. ("frontal", "lateral").
    labels: lower-cased label -> code (1 positive, 0 negative, -1 uncertain; a missing label = not mentioned).
    findings: the FINDINGS section (the MRG target). label_space: the candidate list of this source (CheXbert's 13
      by default; a classification dataset has its own subset). finding_boxes / organ_boxes / region_boxes /
      phrases: (name, [x1, y1, x2, y2]) pairs. qa / diff_qa / instructions: (question, answer) pairs.
    prior: the same patient's previous study (multi-study MRG, difference VQA). box_view: the view the boxes are on.
    source: the dataset this record comes from (it goes into the example, for sampling and bookkeeping).
    dropped_boxes: boxes the converter left out because they vanished on the 0–100 grid (counted, never silent).
    """

    study_id: str
    views: tuple[str, ...] = ("frontal",)
    labels: dict[str, int] = field(default_factory=dict)
    findings: str = ""
    label_space: tuple[str, ...] = CXR_CONDITIONS
    finding_boxes: list = field(default_factory=list)
    organ_boxes: list = field(default_factory=list)
    region_boxes: list = field(default_factory=list)
    phrases: list = field(default_factory=list)
    qa: list = field(default_factory=list)
    diff_qa: list = field(default_factory=list)
    instructions: list = field(default_factory=list)
    prior: "StudyFacts | None" = None
    box_view: str = "frontal"
    source: str = "world"
    dropped_boxes: int = 0

    def __post_init__(self):
        if isinstance(self.prior, Mapping):
            self.prior = StudyFacts.from_dict(self.prior)
        self.views = tuple(self.views)
        if not self.views:
            raise ValueError(f"study {self.study_id}: no image views")
        self.labels = {str(k).lower(): int(v) for k, v in self.labels.items()}
        self.label_space = tuple(str(l).lower() for l in self.label_space)
        for name in ("finding_boxes", "organ_boxes", "region_boxes", "phrases"):
            pairs = [(str(n), [int(v) for v in b]) for n, b in getattr(self, name)]
            for n, b in pairs:
                if not is_valid_box_100(b):
                    raise ValueError(f"study {self.study_id}: {name} entry {n!r} has box {b}, not four integers "
                                     f"0–100 with x1 < x2 and y1 < y2 (convert pixels with data.boxes.to_relative_100)")
            setattr(self, name, pairs)
        if (self.finding_boxes or self.organ_boxes or self.region_boxes or self.phrases) and \
                self.box_view not in self.views:
            raise ValueError(f"study {self.study_id}: boxes are on view {self.box_view!r}, not one of {self.views}")

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "StudyFacts":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ValueError(f"StudyFacts: unknown fields {unknown}; known: {sorted(known)}")
        return cls(**dict(record))

    @property
    def positives(self) -> list[str]:
        """Positive labels of ``label_space``, in its order (non-positive = negative, the paper's binarisation)."""
        return [l for l in self.label_space if self.labels.get(l) == 1]


# ---- CoT turns -------------------------------------------------------------------------------------------------
def findings_answer(positives: Sequence[str]) -> str:
    """Turn-1 / classification answer: ``"atelectasis, pleural effusion."`` or ``"Not found."``."""
    names = [p.strip().lower() for p in positives]
    return ", ".join(names) + "." if names else NOT_FOUND


def parse_findings_list(text: str, candidates: Sequence[str], strict: bool = False) -> list[str]:
    """The candidates named in a turn-1 answer, in candidate order.

    The answer is split at commas, semicolons and " and "; each item (trailing period and spaces stripped,
    lower-cased) must equal a candidate. "Not found." (or an empty answer) gives ``[]``. Items that are no
    candidate are ignored, or with ``strict=True`` raise a ValueError that lists them.
    """
    if not isinstance(text, str):
        raise ValueError(f"parse_findings_list needs the answer as a string, got {type(text).__name__}")
    cands = {c.lower(): c for c in candidates}
    body = text.strip()
    if body.rstrip(".").strip().lower() in ("", NOT_FOUND.rstrip(".").lower()):
        return []
    items = [i.strip(" \t\n.").lower() for i in re.split(r"[,;\n]|\band\b", body)]
    items = [" ".join(i.split()) for i in items if i.strip(" \t\n.")]
    unknown = [i for i in items if i not in cands]
    if unknown and strict:
        raise ValueError(f"parse_findings_list: {unknown} are not candidate findings (candidates: {list(candidates)})")
    found = {cands[i] for i in items if i in cands}
    return [c for c in candidates if c in found]


_SCOPES = {"single": "single_image_mrg", "multi_image": "multi_image_mrg", "multi_study": "multi_study_mrg"}


def cot_dialogue(candidates: Sequence[str], positives: Sequence[str], report: str, *,
                 images_text: str = "radiology image: " + IMAGE_TOKEN, scope: str = "single",
                 template: int = 0) -> list[dict]:
    """The two CoT turns (Fig. 3): [user: which findings?, assistant: positives, user: describe, assistant: report].

    ``images_text`` is what stands before the question ("radiology image: <image>"; for multi-study the whole
    prior/follow-up prefix); ``scope`` ("single", "multi_image", "multi_study") picks the wording of the
    question; ``template`` its phrasing (0 = Table IX). No system message here (:func:`build_instruction` adds it).
    """
    if scope not in _SCOPES:
        raise ValueError(f"cot_dialogue: scope must be one of {tuple(_SCOPES)}, got {scope!r}")
    if not candidates:
        raise ValueError("cot_dialogue: the candidate findings list is empty")
    cand_lower = [c.lower() for c in candidates]
    missing = [p for p in positives if p.lower() not in cand_lower]
    if missing:
        raise ValueError(f"cot_dialogue: positives {missing} are not among the candidates {list(candidates)}")
    if not isinstance(report, str) or not report.strip():
        raise ValueError("cot_dialogue: the report (FINDINGS section) is empty")
    task = _SCOPES[scope]
    turn1 = _pick(task, template).format(prefix=images_text, findings=", ".join(cand_lower))
    positives_in_order = [c for c in cand_lower if c in {p.lower() for p in positives}]
    return [
        {"role": "user", "content": turn1},
        {"role": "assistant", "content": findings_answer(positives_in_order)},
        {"role": "user", "content": _pick(task + ":turn2", template)},
        {"role": "assistant", "content": report.strip()},
    ]


def cot_followup(messages: Sequence[dict], turn1_answer: str) -> list[dict]:
    """Inference: the conversation up to turn 1's question + the model's *own* turn-1 answer + turn 2's question.

    ``messages`` is a built CoT example (system?, user, assistant, user, assistant); the ground-truth turn-1 answer
    and the report are dropped, so the report is generated from what the model itself said (exposure to its own
    errors, as at test time in the paper).
    """
    msgs = list(messages)
    users = [i for i, m in enumerate(msgs) if m["role"] == "user"]
    if len(users) != 2:
        raise ValueError(f"cot_followup needs a two-turn CoT conversation, got {len(users)} user turns")
    return msgs[:users[0] + 1] + [{"role": "assistant", "content": turn1_answer.strip()}, msgs[users[1]]]


# ---- the builder -----------------------------------------------------------------------------------------------
def _pick(key: str, template: int) -> str:
    options = TEMPLATES[key]
    if not 0 <= template < len(options):
        raise ValueError(f"template {template} does not exist for {key!r} (0..{len(options) - 1})")
    return options[template]


def _images(keys: Sequence[str]) -> str:
    return " ".join(IMAGE_TOKEN for _ in keys)


def _names_with_boxes(pairs) -> dict[str, list[list[int]]]:
    out: dict[str, list[list[int]]] = {}
    for name, box in pairs:
        out.setdefault(name.lower(), []).append(box)
    return out


def available_tasks(study: StudyFacts | Mapping) -> tuple[str, ...]:
    """The tasks that ``study`` has the facts for (``build_instruction`` raises for the others)."""
    s = study if isinstance(study, StudyFacts) else StudyFacts.from_dict(study)
    prior_ok = s.prior is not None
    n_images = len(s.views) + (len(s.prior.views) if prior_ok else 0)
    negatives = [l for l in s.label_space if s.labels.get(l, 0) == 0 and l not in _names_with_boxes(s.finding_boxes)]
    has = {
        "single_image_mrg": bool(s.findings.strip()),
        "multi_image_mrg": bool(s.findings.strip()) and len(s.views) <= MAX_IMAGES_MULTI_IMAGE,
        "multi_study_mrg": bool(s.findings.strip()) and prior_ok and bool(s.prior.findings.strip())
        and n_images <= MAX_IMAGES_MULTI_STUDY,
        "disease_classification": bool(s.label_space),
        "finding_grounding": bool(s.finding_boxes) or bool(negatives),
        "grounded_finding": bool(s.finding_boxes),
        "abnormality_detection": bool(s.finding_boxes),
        "multi_finding_grounding": bool(s.label_space),
        "organ_grounding": bool(s.organ_boxes), "grounded_organ": bool(s.organ_boxes),
        "grounded_phrase": bool(s.phrases), "phrase_grounding": bool(s.phrases),
        "anatomical_region_grounding": bool(s.region_boxes), "grounded_anatomical_region": bool(s.region_boxes),
        "vqa": bool(s.qa),
        "difference_vqa": bool(s.diff_qa) and prior_ok and s.box_view in s.prior.views,
        "instruction_following": bool(s.instructions),
    }
    return tuple(t for t in TASKS if has[t])


def build_instruction(task: str, study: StudyFacts | Mapping, rng: np.random.Generator | int | None = None, *,
                      paraphrase: bool = False, cot: bool = True) -> dict:
    """One training conversation of ``task`` from ``study``.

    Args:
        task: one of :data:`TASKS`.
        study: a :class:`StudyFacts` or a plain dict of its fields.
        rng: numpy Generator (or a seed) for every choice: which image (single-image tasks), which finding / organ /
            phrase / question, and the phrasing when ``paraphrase``.
        paraphrase: draw among the templates (0 = Table IX, 1–2 ours); False: always Table IX's.
        cot: MRG tasks only — two-turn CoT (the paper) or single-turn (Table VIII, Exp1).

    Returns ``{"messages": [{"role", "content"}, ...] (system first), "images": [view keys in <image> order;
    prior images as "prior/<view>"], "task", "task_type", "source", "study_id", "template"}``.
    Raises ValueError naming the task and what the study lacks when it cannot be built (see :func:`available_tasks`).
    """
    if task not in TASK_TYPES:
        raise ValueError(f"unknown M4CXR task {task!r}; choose one of {TASKS}")
    s = study if isinstance(study, StudyFacts) else StudyFacts.from_dict(study)
    if task not in available_tasks(s):
        raise ValueError(f"study {s.study_id} cannot make a {task!r} example: {_missing(task, s)}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    template = int(rng.integers(len(TEMPLATES[task]))) if paraphrase else 0
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731  one seeded choice
    bv = s.box_view
    images: list[str] = [bv]
    body: list[dict]

    if TASK_TYPES[task] == MRG:
        if task == "single_image_mrg":
            images = [pick(list(s.views))]
            prefix, scope = "radiology image: " + _images(images), "single"
        elif task == "multi_image_mrg":
            images = list(s.views)
            prefix, scope = "radiology images: " + _images(images), "multi_image"
        else:
            prior_keys = [f"prior/{v}" for v in s.prior.views]
            images = prior_keys + list(s.views)
            prefix = _pick("multi_study", template).format(prior_images=_images(prior_keys),
                                                           prior_report=s.prior.findings.strip(),
                                                           images=_images(s.views))
            scope = "multi_study"
        if cot:
            body = cot_dialogue(s.label_space, s.positives, s.findings, images_text=prefix, scope=scope,
                                template=template)
        else:
            q = _pick(task + ":single_turn", template).format(prefix=prefix)
            body = [{"role": "user", "content": q}, {"role": "assistant", "content": s.findings.strip()}]
    else:
        t = _pick(task, template)
        img = _images([bv])
        # VQA and instructions need no boxes: their image is the box view when the study has it, else its first
        main = bv if bv in s.views else s.views[0]
        boxes_by_name = _names_with_boxes(s.finding_boxes)
        if task == "disease_classification":
            images = [pick(list(s.views))]
            q = t.format(images=_images(images), findings=", ".join(s.label_space))
            a = findings_answer(s.positives)
        elif task == "finding_grounding":
            negatives = [l for l in s.label_space if s.labels.get(l, 0) == 0 and l not in boxes_by_name]
            # a positive (with its boxes) or a negative, half and half when both exist
            if boxes_by_name and (not negatives or rng.random() < 0.5):
                name = pick(sorted(boxes_by_name))
                a = "Yes. " + boxes_text(boxes_by_name[name]) + "."
            else:
                name = pick(negatives)
                a = NOT_PRESENT
            q = t.format(images=img, finding=name)
        elif task == "grounded_finding":
            name, box = pick(s.finding_boxes)
            q, a = t.format(images=img, bbox=box_text(box)), name.lower()
        elif task == "abnormality_detection":
            q, a = t.format(images=img), boxes_text([b for _, b in s.finding_boxes]) + "."
        elif task == "multi_finding_grounding":
            present = [(c, boxes_by_name[c]) for c in s.label_space if c in boxes_by_name]
            q = t.format(images=img, findings=", ".join(s.label_space))
            a = ", ".join(f"{c} {boxes_text(bs)}" for c, bs in present) + "." if present else NOT_FOUND
        elif task in ("organ_grounding", "grounded_organ"):
            name, box = pick(s.organ_boxes)
            if task == "organ_grounding":
                q, a = t.format(images=img, organ=name), box_text(box) + "."
            else:
                q, a = t.format(images=img, bbox=box_text(box)), name
        elif task in ("phrase_grounding", "grounded_phrase"):
            phrase, box = pick(s.phrases)
            if task == "phrase_grounding":
                q, a = t.format(images=img, phrase=phrase), box_text(box) + "."
            else:
                q, a = t.format(images=img, bbox=box_text(box)), phrase.rstrip(". ") + "."
        elif task in ("anatomical_region_grounding", "grounded_anatomical_region"):
            name, box = pick(s.region_boxes)
            if task == "anatomical_region_grounding":
                q, a = t.format(images=img, name=name), box_text(box) + "."
            else:
                q, a = t.format(images=img, bbox=box_text(box)), name + "."
        elif task == "vqa":
            question, a = pick(s.qa)
            images = [main]
            q = t.format(images=img, question=question)
        elif task == "difference_vqa":
            question, a = pick(s.diff_qa)
            images = [f"prior/{bv}", bv]
            q = t.format(prior_images=IMAGE_TOKEN, images=IMAGE_TOKEN, question=question)
        else:  # instruction_following
            question, a = pick(s.instructions)
            images = [main]
            q = t.format(images=img, question=question)
        body = [{"role": "user", "content": q}, {"role": "assistant", "content": str(a)}]

    n_placeholders = sum(m["content"].count(IMAGE_TOKEN) for m in body if m["role"] == "user")
    if n_placeholders != len(images):  # a template bug, never the data's fault
        raise AssertionError(f"{task}: {n_placeholders} {IMAGE_TOKEN} placeholders for {len(images)} images")
    return {"messages": [{"role": "system", "content": SYSTEM_PROMPT}] + body, "images": images, "task": task,
            "task_type": TASK_TYPES[task], "source": s.source, "study_id": s.study_id, "template": template}


def _missing(task: str, s: StudyFacts) -> str:
    if task in ("single_image_mrg", "multi_image_mrg", "multi_study_mrg") and not s.findings.strip():
        return "no FINDINGS text"
    if task == "multi_image_mrg":
        return f"{len(s.views)} images, more than {MAX_IMAGES_MULTI_IMAGE}"
    if task == "multi_study_mrg":
        if s.prior is None or not s.prior.findings.strip():
            return "no prior study with a FINDINGS section"
        return f"more than {MAX_IMAGES_MULTI_STUDY} images with the prior"
    if task == "difference_vqa" and s.prior is not None and s.diff_qa:
        return f"the prior study has no {s.box_view!r} image"
    need = {"disease_classification": "label_space", "finding_grounding": "finding_boxes or negative labels",
            "grounded_finding": "finding_boxes", "abnormality_detection": "finding_boxes",
            "multi_finding_grounding": "label_space", "organ_grounding": "organ_boxes", "grounded_organ": "organ_boxes",
            "grounded_phrase": "phrases", "phrase_grounding": "phrases", "anatomical_region_grounding": "region_boxes",
            "grounded_anatomical_region": "region_boxes", "vqa": "qa", "difference_vqa": "diff_qa and a prior",
            "instruction_following": "instructions"}
    return f"it has no {need[task]}"


# ---- the synthetic world -> facts --------------------------------------------------------------------------------
def facts_from_xray_study(study, source: str = "world", box_view: str = "frontal") -> StudyFacts:
    """:class:`StudyFacts` of a :class:`rrg_lite.world.xray.XRayStudy` (its prior too).

    Boxes of ``box_view`` become 0–100 integers (boxes that vanish on rounding are left out and counted in
    ``dropped_boxes``). Phrases are the FINDINGS
    sentences about exactly one finding that has a box on ``box_view`` (the MS-CXR setting: one phrase, one box).
    Difference VQA asks how each finding changed since the prior (answers from the record); the instruction pair
    asks for the IMPRESSION.
    """
    image = study.images[box_view] if box_view in study.images else study.frontal
    h, w = image.shape[:2]
    pairs = {"finding": [], "organ": [], "region": []}
    by_finding: dict[int, list[int]] = {}
    dropped = 0
    for b in study.boxes:
        if b["view"] != box_view:
            continue
        rel = to_relative_100(b["box"], w, h)
        if not is_valid_box_100(rel):
            dropped += 1
            continue
        name = b["label"]
        if b["kind"] == "finding":
            name = name.lower()
            by_finding[b["finding_id"]] = rel
        elif b["kind"] == "organ":
            name = _ORGAN_NAMES.get(name, name.replace("_", " "))
        pairs[b["kind"]].append((name, rel))
    labels = {lab.lower(): int(v) for lab, v in zip(CHEXPERT_LABELS, study.labels) if not np.isnan(v)}
    phrases = [(s.text, by_finding[s.finding_ids[0]]) for s in study.report.sentences
               if s.section == "findings" and s.tag == "finding" and len(s.finding_ids) == 1
               and s.finding_ids[0] in by_finding]
    qa = [(q["question"], q["answer"]) for q in study.qa if q["category"] != "change"]
    diff_qa = []
    if study.prior is not None:
        for f in study.findings:
            if f.change:
                diff_qa.append((f"How has the {f.label.lower()} changed compared with the reference image?", f.change))
    impression = study.report.impression.strip()
    ask = "Write the IMPRESSION section of the report for this chest X-ray."
    instructions = [(ask, impression)] if impression else []
    prior = facts_from_xray_study(study.prior, source, box_view) if study.prior is not None else None
    facts = StudyFacts(study_id=study.study_id, views=tuple(study.images), labels=labels,
                       findings=study.report.findings, finding_boxes=pairs["finding"], organ_boxes=pairs["organ"],
                       region_boxes=pairs["region"], phrases=phrases, qa=qa, diff_qa=diff_qa,
                       instructions=instructions, prior=prior, box_view=box_view, source=source,
                       dropped_boxes=dropped)
    return facts
