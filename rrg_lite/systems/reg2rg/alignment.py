"""Reg2RG §III-C–D and §IV-C.3: the region prompt, region–report alignment (RRA) and region recognition.

The prompt holds the global tokens at ``<image>`` and one ``<region>`` slot per region (each slot is expanded to
the region's K_r tokens by :mod:`rrg_lite.mllm.prompt`, and the rows of ``visual_embeds["region"]`` fill the
slots in order). RRA (Eq. 8) shuffles the regions at every step and asks for a prefix naming each slot's area::

    R = {(P_1, R_1), …, (P_n, R_n)} = LLM(G, Shuffle(L_A1, …, L_An))           (8)
    P_i = "The region i is {area}:"                                            prefix; the model must *recognise*
    target = "The region 0 is lung: … The region 1 is heart: …"                the area from L_i alone
    L_LM = −Σ_t log p(r_t | P, r_<t)                                           (9)   plain LM cross-entropy

The area names are never in the prompt ("the model might rely on the name rather than the actual local
features"); they appear only in the target. Before NLG/CE evaluation the prefixes are removed.

Pieces, top to bottom:

- :func:`shuffle_regions` — a seeded permutation of the study's regions (a new one every step).
- :func:`region_prompt` — the instruction with ``<image>`` and n ``<region>`` slots, no area names.
- :func:`region_target` — the prefixed target in slot order; :func:`rra_example` builds (prompt, target, rows)
  for one study, and with ``rra=False`` the control of Table VII (fixed order, no prefixes).
- :func:`split_prefixed`, :func:`strip_prefixes`, :func:`parse_regions`, :func:`parse_slots` — reading a
  generated report back (see "Parsing" below).
- :func:`region_recognition` — Table III's per-region P / R / F1.

Slot numbers start at 0, as in the paper's Fig. 5 ("The region 0 is abdomen: …"). Area names are RadGenome's
spelling (:data:`rrg_lite.world.vocab.REGIONS`, "trachea and bronchie"); the paper's prose spellings
("bones", "lungs", "trachea and bronchi", …) are read as the same areas (:data:`AREA_ALIASES`).

**Parsing** (what the paper does not spell out; our rules). A prefix is "The region <int> is <area>:" (any case,
any spacing; the area is the text up to the colon: at most 40 characters, no full stop or line break).
:func:`split_prefixed` returns one piece per prefix, in the order written; text before the first prefix is a
piece with no slot and no area. From there:
:func:`strip_prefixes` keeps every piece's text (prefixes gone, whitespace collapsed) — what NLG and CE read;
:func:`parse_regions` maps area -> report, pieces naming one area twice are joined with a space in the order
written, unprefixed text goes to the key ``""`` (:data:`UNASSIGNED`) when it is not empty; :func:`parse_slots`
maps slot -> area, the first prefix of a slot wins (a repeated slot number is the model contradicting itself;
later ones are ignored). Area names are lower-cased, whitespace-collapsed and mapped through the aliases; names
outside the known areas are kept as written (recognition counts them as wrong).

**Region recognition** (Table III). The paper reports per-region P/R/F1 of "identifying the anatomical area
corresponding to the referring region" without a formula; we read it as slot-level classification: every slot
i of every study is one sample whose true class is the area fed at slot i and whose predicted class is the area
the generated prefix names for slot i (none when the prefix is missing). For area a: TP = slots of area a named
a; FP = slots named a that are not a (including prefixes for slot numbers the study does not have); FN = slots
of area a not named a (wrong name, unknown name or no prefix). P, R, F1 per area are then the package's
per-label ones (:func:`rrg_lite.metrics.clinical.per_label_prf` on one-hot arrays). The lung/pleura pair of
Table III (≈ .44 each, symmetric) is what swapping the two on about half of the slots gives under this reading.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from rrg_lite.metrics.clinical import per_label_prf
from rrg_lite.mllm.text import IMAGE_TOKEN, REGION_TOKEN
from rrg_lite.world.vocab import REGIONS

__all__ = [
    "AREA_ALIASES", "UNASSIGNED", "DEFAULT_INSTRUCTION", "prefix", "normalise_area", "shuffle_regions",
    "region_prompt", "region_target", "RRAExample", "rra_example", "Piece", "split_prefixed", "strip_prefixes",
    "parse_regions", "parse_slots", "RecognitionResult", "region_recognition",
]

#: The paper's prose spellings of RadGenome's areas -> the dataset's (and the world's) names.
AREA_ALIASES: dict[str, str] = {
    "bones": "bone", "breasts": "breast", "lungs": "lung", "trachea and bronchi": "trachea and bronchie",
    "trachea & bronchi": "trachea and bronchie",
}

#: Key of :func:`parse_regions` for text that no prefix claims.
UNASSIGNED = ""

DEFAULT_INSTRUCTION = "Write the report of every region, naming the area of each region first."

# The area is at most 40 characters without ".", ":" or a line break, so that a sentence cannot be swallowed.
_PREFIX = re.compile(r"\bthe\s+region\s+(\d+)\s+is\s+([^:.\n]{0,40}?)\s*:", re.IGNORECASE)


def prefix(i: int, area: str) -> str:
    """P_i = "The region i is {area}:" (Eq. 8)."""
    return f"The region {int(i)} is {area}:"


def normalise_area(name: str, aliases: Mapping[str, str] = AREA_ALIASES) -> str:
    """Lower-case, collapse whitespace, map aliases: ``"  Trachea and  Bronchi"`` -> ``"trachea and bronchie"``."""
    key = " ".join(str(name).lower().split())
    return aliases.get(key, key)


def _check_regions(regions: Sequence[str], who: str) -> list[str]:
    regions = [str(r) for r in regions]
    if not regions:
        raise ValueError(f"{who}: no regions given")
    dup = sorted({r for r in regions if regions.count(r) > 1})
    if dup:
        raise ValueError(f"{who}: regions {dup} appear more than once")
    return regions


def shuffle_regions(regions: Sequence[str], rng: np.random.Generator | random.Random | int) -> list[str]:
    """A random order of the study's regions (a new list; ``regions`` is not changed). ``rng``: a NumPy
    Generator, a ``random.Random`` or an int seed — draw a fresh order at every training step."""
    regions = _check_regions(regions, "shuffle_regions")
    if isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(int(rng))
    if isinstance(rng, np.random.Generator):
        return [regions[i] for i in rng.permutation(len(regions))]
    if isinstance(rng, random.Random):
        out = list(regions)
        rng.shuffle(out)
        return out
    raise TypeError(f"shuffle_regions: rng must be a numpy Generator, random.Random or int, got {type(rng).__name__}")


def _rows(regions: Sequence[str], order: Sequence[str], who: str) -> list[int]:
    """Index of each slot's region in ``regions`` (the token rows), checking that ``order`` permutes it."""
    regions = _check_regions(regions, who)
    order = [str(o) for o in order]
    if sorted(order) != sorted(regions):
        raise ValueError(f"{who}: order {order} is not a permutation of the study's regions {regions}")
    return [regions.index(o) for o in order]


def region_prompt(regions: Sequence[str], order: Sequence[str] | None = None, *, with_image: bool = True,
                  instruction: str = DEFAULT_INSTRUCTION) -> str:
    """The prompt 𝒫 = {ℐ, 𝒯}: ``<image>`` (if ``with_image``), one ``<region>`` slot per region, the instruction.

    ``regions`` are the study's regions in the row order of its region tokens, ``order`` the slot order (default:
    unshuffled); only their number shapes the text — the names are checked, never written (no name bias).
    Example for three regions: ``"Global view: <image> Region 0: <region> Region 1: <region> Region 2: <region>
    Write the report of every region, naming the area of each region first."``
    """
    n = len(_rows(regions, regions if order is None else order, "region_prompt"))
    parts = [f"Global view: {IMAGE_TOKEN}"] if with_image else []
    parts += [f"Region {i}: {REGION_TOKEN}" for i in range(n)]
    return " ".join(parts + [instruction])


def region_target(order: Sequence[str], reports: Mapping[str, str], missing: str | None = None,
                  prefixes: bool = True) -> str:
    """The RRA target in slot order: ``"The region 0 is {order[0]}: {report} The region 1 is …"``.

    ``reports``: area -> region report. A region of ``order`` with no (or an empty) report raises, unless
    ``missing`` gives the text to use. ``prefixes=False`` joins the bare reports (the no-RRA control).
    """
    order = _check_regions(order, "region_target")
    pieces = []
    for i, area in enumerate(order):
        text = " ".join(str(reports.get(area) or "").split())
        if not text:
            if missing is None:
                raise ValueError(f"region_target: no report for region {area!r} (slot {i}); pass missing='…' "
                                 "to use a default text, or leave the region out of the study")
            text = missing
        pieces.append(f"{prefix(i, area)} {text}" if prefixes else text)
    return " ".join(pieces)


@dataclass
class RRAExample:
    """One training example: ``prompt``, ``target``, ``order`` (slot -> area) and ``rows`` (slot -> row of the
    region tokens; pass it to :meth:`rrg_lite.systems.reg2rg.features.RegionTokens.visual_embeds`)."""

    prompt: str
    target: str
    order: list[str]
    rows: list[int]


def rra_example(regions: Sequence[str], reports: Mapping[str, str], rng=None, *, rra: bool = True,
                shuffle: bool | None = None, with_image: bool = True, missing: str | None = None,
                instruction: str = DEFAULT_INSTRUCTION) -> RRAExample:
    """Prompt and target of one study for one training step.

    ``rra=True`` (the paper): regions shuffled with ``rng`` and prefixed targets. ``rra=False`` (Table VII's
    "without RRA"): the regions in their given order, the bare region reports joined. ``shuffle`` overrides the
    order choice alone (e.g. train unshuffled, test shuffled — a control of SYSTEMS.md §2).
    """
    regions = _check_regions(regions, "rra_example")
    shuffle = rra if shuffle is None else shuffle
    if shuffle and rng is None:
        raise ValueError("rra_example: shuffling needs an rng (a numpy Generator, random.Random or int seed)")
    order = shuffle_regions(regions, rng) if shuffle else list(regions)
    return RRAExample(prompt=region_prompt(regions, order, with_image=with_image, instruction=instruction),
                      target=region_target(order, reports, missing=missing, prefixes=rra),
                      order=order, rows=_rows(regions, order, "rra_example"))


# ---- reading a generated report back --------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """One prefixed part of a generated report: ``slot`` and ``area`` (``None`` for text before any prefix)."""

    slot: int | None
    area: str | None
    text: str


def split_prefixed(text: str, aliases: Mapping[str, str] = AREA_ALIASES) -> list[Piece]:
    """The pieces of a report in the order written (see "Parsing" in the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"split_prefixed: text must be a str, got {type(text).__name__}")
    pieces, matches = [], list(_PREFIX.finditer(text))
    head = " ".join(text[: matches[0].start() if matches else len(text)].split())
    if head:
        pieces.append(Piece(None, None, head))
    for k, m in enumerate(matches):
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        pieces.append(Piece(int(m.group(1)), normalise_area(m.group(2), aliases), " ".join(text[m.end():end].split())))
    return pieces


def strip_prefixes(text: str) -> str:
    """The report without its "The region i is {area}:" prefixes — what NLG and CE metrics read."""
    return " ".join(p.text for p in split_prefixed(text) if p.text)


def parse_regions(text: str, aliases: Mapping[str, str] = AREA_ALIASES) -> dict[str, str]:
    """Area -> report text; repeated areas joined in order, unprefixed text under :data:`UNASSIGNED`."""
    out: dict[str, str] = {}
    for p in split_prefixed(text, aliases):
        key = UNASSIGNED if p.area is None else p.area
        out[key] = f"{out[key]} {p.text}".strip() if key in out else p.text
    return out


def parse_slots(text: str, aliases: Mapping[str, str] = AREA_ALIASES) -> dict[int, str]:
    """Slot -> the area its (first) prefix names."""
    out: dict[int, str] = {}
    for p in split_prefixed(text, aliases):
        if p.slot is not None and p.slot not in out:
            out[p.slot] = p.area
    return out


# ---- region recognition (Table III) ---------------------------------------------------------------------------
@dataclass
class RecognitionResult:
    """Per-area ``precision``, ``recall``, ``f1``, ``support`` (slots of that area) and the counts behind them.

    ``accuracy``: share of slots whose area was named right; ``missing``: slots with no prefix; ``unknown``:
    slots named with an area outside ``areas``; ``extra``: prefixes for slot numbers the study does not have.
    """

    precision: dict[str, float]
    recall: dict[str, float]
    f1: dict[str, float]
    support: dict[str, int]
    accuracy: float
    n_slots: int
    missing: int = 0
    unknown: int = 0
    extra: int = 0
    convention: str = field(default="slot-level: true area fed at slot i vs the area the prefix names for slot i")

    def table(self) -> list[dict]:
        """Rows ``{"region", "P", "R", "F1", "support"}`` in the order of ``areas`` (Table III's layout)."""
        return [{"region": a, "P": self.precision[a], "R": self.recall[a], "F1": self.f1[a],
                 "support": self.support[a]} for a in self.precision]


def region_recognition(orders: Sequence[Sequence[str]], predictions: Sequence[str | Mapping[int, str]],
                       areas: Sequence[str] = REGIONS, aliases: Mapping[str, str] = AREA_ALIASES,
                       zero_division: float = 0.0) -> RecognitionResult:
    """Table III: per-area P / R / F1 of the areas the model names in its prefixes.

    Args:
        orders: per study, the area fed at each slot (``RRAExample.order``).
        predictions: per study, the generated report (parsed with :func:`parse_slots`) or a ready
            slot -> area mapping.
        areas: the classes (default RadGenome's ten). zero_division: value of 0/0 (e.g. an area never named).
    """
    if len(orders) != len(predictions):
        raise ValueError(f"region_recognition: {len(orders)} studies' orders but {len(predictions)} predictions")
    areas = [normalise_area(a, aliases) for a in areas]
    col = {a: j for j, a in enumerate(areas)}
    ref_rows, pred_rows = [], []
    missing = unknown = extra = correct = 0
    for s, (order, pred) in enumerate(zip(orders, predictions)):
        truth = [normalise_area(a, aliases) for a in order]
        bad = [a for a in truth if a not in col]
        if bad:
            raise ValueError(f"region_recognition: study {s} feeds areas {bad} that are not among {areas}")
        named = parse_slots(pred, aliases) if isinstance(pred, str) else \
            {int(k): normalise_area(v, aliases) for k, v in pred.items()}
        for i, a in enumerate(truth):
            r, p = np.zeros(len(areas), bool), np.zeros(len(areas), bool)
            r[col[a]] = True
            guess = named.get(i)
            if guess is None:
                missing += 1
            elif guess not in col:
                unknown += 1
            else:
                p[col[guess]] = True
                correct += guess == a
            ref_rows.append(r)
            pred_rows.append(p)
        for i, guess in named.items():              # prefixes for slots that were never fed: false positives only
            if not 0 <= i < len(truth):
                extra += 1
                if guess in col:
                    r, p = np.zeros(len(areas), bool), np.zeros(len(areas), bool)
                    p[col[guess]] = True
                    ref_rows.append(r)
                    pred_rows.append(p)
    n_slots = sum(len(o) for o in orders)
    if not ref_rows:
        raise ValueError("region_recognition: no slots to score (every study has zero regions)")
    P, R, F, N = per_label_prf(np.stack(pred_rows), np.stack(ref_rows), zero_division)
    return RecognitionResult(precision=dict(zip(areas, P.tolist())), recall=dict(zip(areas, R.tolist())),
                             f1=dict(zip(areas, F.tolist())), support=dict(zip(areas, N.tolist())),
                             accuracy=correct / n_slots if n_slots else float("nan"), n_slots=n_slots,
                             missing=missing, unknown=unknown, extra=extra)
