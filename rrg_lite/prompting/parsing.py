"""Extraction rules: turning an LLM's reply into fields, or saying precisely why it cannot be done.

μ²-LLM (Appendix A.2) extracts with three regular expressions, applied as written:

- questions (stage 1): ``r".*?\\d\\.\\ ?([^\\n]*)"`` with ``findall`` — for every line holding "<digit>." the
  text after the dot (and one optional space) up to the end of the line;
- thinking (stage 2): ``r"Thinking: ?([^\\n]*)"`` — the first "Thinking:" line;
- answer (stage 2): ``r"Answer: ?([^\\n]*)"`` — the first "Answer:" line.

They are literal rules with literal quirks, kept here on purpose: the question rule also fires on a decimal number
("measures 2.5 cm" yields "5 cm"), and the thinking rule keeps only the first line of a multi-line thought. The
pipeline counts what they produce rather than silently "fixing" them (:func:`extract_questions` can optionally
drop items that do not end with "?", and counts those too).

Every parser raises :class:`MalformedReply` with a short ``reason`` that the runner counts, and the runner re-asks.
"""
from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "MalformedReply",
    "QUESTION_RE",
    "THINKING_RE",
    "ANSWER_RE",
    "extract_questions",
    "extract_thinking_answer",
    "parse_yes_no",
    "parse_pet_ct_json",
    "PETCT_KEYS",
    "PET_FORBIDDEN",
    "CT_FORBIDDEN",
]

QUESTION_RE = re.compile(r".*?\d\.\ ?([^\n]*)")
THINKING_RE = re.compile(r"Thinking: ?([^\n]*)")
ANSWER_RE = re.compile(r"Answer: ?([^\n]*)")


class MalformedReply(ValueError):
    """A reply that does not follow the format its prompt asked for; ``reason`` is a short counted label."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _clip(text: str, n: int = 120) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= n else text[:n] + "…"


def extract_questions(reply: str, require_question_mark: bool = False) -> list[str]:
    """Stage-1 rule: all captures of :data:`QUESTION_RE`, stripped, empty ones dropped.

    Raises :class:`MalformedReply` (``"empty"`` / ``"no_questions"``) if nothing is left.
    """
    if not reply or not reply.strip():
        raise MalformedReply("empty", "the reply is empty")
    questions = [q.strip() for q in QUESTION_RE.findall(reply)]
    questions = [q for q in questions if q]
    if require_question_mark:
        questions = [q for q in questions if q.endswith("?")]
    if not questions:
        raise MalformedReply("no_questions", f"no numbered questions in {_clip(reply)!r}")
    return questions


def extract_thinking_answer(reply: str) -> tuple[str, str]:
    """Stage-2 rule: ``(thinking, answer)`` from the first "Thinking:" and "Answer:" lines.

    Raises :class:`MalformedReply` with reason ``"empty"``, ``"no_answer"``, ``"empty_answer"`` or ``"no_thinking"``.
    """
    if not reply or not reply.strip():
        raise MalformedReply("empty", "the reply is empty")
    answer = ANSWER_RE.search(reply)
    if answer is None:
        raise MalformedReply("no_answer", f"no 'Answer:' line in {_clip(reply)!r}")
    if not answer.group(1).strip():
        raise MalformedReply("empty_answer", f"'Answer:' is followed by nothing in {_clip(reply)!r}")
    thinking = THINKING_RE.search(reply)
    if thinking is None or not thinking.group(1).strip():
        raise MalformedReply("no_thinking", f"no 'Thinking:' line in {_clip(reply)!r}")
    return thinking.group(1).strip(), answer.group(1).strip()


def parse_yes_no(reply: str) -> bool:
    """Stage-3 rule: the reply must be "Yes" or "No" (case, surrounding quotes and a final period tolerated)."""
    word = (reply or "").strip().strip("\"'`.").strip().lower()
    if word == "yes":
        return True
    if word == "no":
        return False
    raise MalformedReply("not_yes_no" if word else "empty", f"expected 'Yes' or 'No', got {_clip(reply or '')!r}")


# ViPET-VLM: PET = metabolic information only, CT = anatomical information only.
PETCT_KEYS = ("PET", "CT")
# A size measurement belongs to CT; uptake words and SUV values belong to PET.
PET_FORBIDDEN = re.compile(r"\b\d+(?:\.\d+)?\s*(?:mm|cm)\b|\bmeasur\w*|\bsize[sd]?\b", re.IGNORECASE)
CT_FORBIDDEN = re.compile(r"\bSUV\w*|\buptake\b|\bFDG\b|\bavid\w*|\b(?:hyper|hypo)?metabolic\b|\btracer\b",
                          re.IGNORECASE)


def parse_pet_ct_json(reply: str) -> dict[str, str]:
    """The strict ViPET-VLM schema: the whole reply is a JSON object with exactly the string fields PET and CT.

    PET may not contain sizes/measurements, CT may not contain uptake terms or SUV values, and at least one part
    must be non-empty. Reasons: ``empty``, ``invalid_json``, ``not_object``, ``keys``, ``not_string``,
    ``both_empty``, ``pet_has_anatomy``, ``ct_has_uptake``.
    """
    if not reply or not reply.strip():
        raise MalformedReply("empty", "the reply is empty")
    try:
        data: Any = json.loads(reply)
    except json.JSONDecodeError as err:
        raise MalformedReply("invalid_json", f"{err.msg} at char {err.pos} in {_clip(reply)!r}") from None
    if not isinstance(data, dict):
        raise MalformedReply("not_object", f"expected a JSON object, got {type(data).__name__}")
    if set(data) != set(PETCT_KEYS):
        raise MalformedReply("keys", f"expected exactly keys {list(PETCT_KEYS)}, got {sorted(data)}")
    for key in PETCT_KEYS:
        if not isinstance(data[key], str):
            raise MalformedReply("not_string", f"{key} must be a string, got {type(data[key]).__name__}")
    pet, ct = data["PET"].strip(), data["CT"].strip()
    if not pet and not ct:
        raise MalformedReply("both_empty", "PET and CT are both empty")
    bad = PET_FORBIDDEN.search(pet)
    if bad:
        raise MalformedReply("pet_has_anatomy", f"PET part contains size/anatomy term {bad.group(0)!r}")
    bad = CT_FORBIDDEN.search(ct)
    if bad:
        raise MalformedReply("ct_has_uptake", f"CT part contains uptake term {bad.group(0)!r}")
    return {"PET": pet, "CT": ct}
