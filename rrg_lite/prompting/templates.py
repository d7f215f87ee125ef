"""Versioned prompt templates.

A :class:`PromptTemplate` has a name and a version (``id`` = ``"mu2.answer@v1"``) that every output record carries
in its provenance, so a dataset always says which wording produced it. Changing a template's text means bumping
its version. Templates are ``str.format`` strings; :meth:`PromptTemplate.render` refuses missing or unknown fields,
and :meth:`PromptTemplate.match` does the inverse (recovers the fields from a rendered prompt), which is how the
offline stand-in knows what it is being asked.

The μ²-LLM prompts (its Appendix A) are restated here in our own words, keeping what the pipeline depends on:
the numbered question list (stage 1), the ``Thinking:`` / ``Answer:`` lines (stage 2), a one-word ``Yes``/``No``
(stage 3), "change only what refers to the report" (stage 4) and "add/remove/alter nothing" (stages 4–5). To run
with the paper's exact wording, register your own template under a new version and pass it to the pipeline.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass

from .clients import ChatRequest

__all__ = ["PromptTemplate", "PromptError", "TEMPLATES", "get_template", "identify"]


class PromptError(ValueError):
    """A template rendered with missing or unknown fields."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    user: str
    system: str | None = None

    @property
    def id(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def fields(self) -> tuple[str, ...]:
        seen: list[str] = []
        for _, field_name, _, _ in string.Formatter().parse(self.user):
            if field_name is not None and field_name not in seen:
                seen.append(field_name)
        return tuple(seen)

    def render(self, **values) -> tuple[tuple[str, str], ...]:
        missing = [f for f in self.fields if f not in values]
        unknown = [k for k in values if k not in self.fields]
        if missing or unknown:
            raise PromptError(f"template {self.id}: missing fields {missing}, unknown fields {unknown}; "
                              f"it takes {list(self.fields)}")
        for key, value in values.items():
            if not isinstance(value, str):
                raise PromptError(f"template {self.id}: field {key!r} must be text, got {type(value).__name__}")
        messages = [] if self.system is None else [("system", self.system)]
        messages.append(("user", self.user.format(**values)))
        return tuple(messages)

    def request(self, *, model: str = "default", temperature: float = 0.0, top_p: float = 1.0,
                max_tokens: int = 512, seed: int = 0, **values) -> ChatRequest:
        return ChatRequest(self.render(**values), model=model, temperature=temperature, top_p=top_p,
                           max_tokens=max_tokens, seed=seed, prompt_id=self.id)

    def _regex(self) -> re.Pattern:
        parts, seen = ["^"], set()
        for literal, field_name, _, _ in string.Formatter().parse(self.user):
            parts.append(re.escape(literal))
            if field_name is not None:
                parts.append(f"(?P={field_name})" if field_name in seen else f"(?P<{field_name}>.*?)")
                seen.add(field_name)
        parts.append("$")
        return re.compile("".join(parts), re.DOTALL)

    def match(self, user_text: str) -> dict[str, str] | None:
        """The field values if ``user_text`` is this template rendered, else ``None``."""
        m = self._regex().match(user_text)
        return None if m is None else m.groupdict()


_T = PromptTemplate

TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in [
    # ---- μ²-LLM CT Report Reasoning Synthesis (five stages) -------------------------------------------------
    _T("mu2.questions", 1,
       "Below is the radiology report of a CT examination.\n'''\n{report}\n'''\n\n"
       "You are examining a student who is reading this CT image. Write the questions you would ask them, as a "
       "numbered list (1., 2., 3., ...), one question per line. Cover the lesions' attributes, their anatomical "
       "location, how certain the diagnosis is and what follow-up is advisable. Do not refer to the report. "
       "Output the questions and nothing else."),
    _T("mu2.answer", 1,
       "Answer the radiology question below using the patient's report.\n"
       "Describe your reasoning step by step as if you were reading the patient's images yourself (never mention "
       "the report), then give the correct final answer. Your reply will be used to train a multimodal model "
       "for radiology images.\n\nThe report:\n'''\n{report}\n'''\n\nThe question:\n'''\n{question}\n'''\n\n"
       "Reply in exactly this format, each on a single line:\nThinking: <your reasoning>\nAnswer: <your answer>",
       system="You are an expert in radiology."),
    _T("mu2.filter", 1,
       "You are checking questions and answers written by another radiologist.\n"
       "Decide whether the question is suitable for a radiology exam and whether the answer is correct according "
       "to the report. Reply \"Yes\" if both are true and \"No\" otherwise. Reply with that one word only.\n\n"
       "The report:\n'''\n{report}\n'''\n\nQuestion: {question}\nAnswer: {answer}",
       system="You are an expert in radiology."),
    _T("mu2.refine", 1,
       "Edit the narrative below. Wherever it refers to a report, rewrite that part as if the observation came "
       "from looking at the radiology image. Change nothing else: do not add, remove or alter any information. "
       "Output only the edited text.\n\nThe narrative:\n'''\n{narrative}\n'''"),
    _T("mu2.report_thinking", 1,
       "These are your notes to yourself while reading a radiology image:\n'''\n{thinking_before}\n'''\n\n"
       "Rewrite the notes as one coherent thinking process, ordered anatomically, in three sections titled "
       "'Findings Rationale:', 'Impression Rationale:' and 'Follow-up Rationale:'. Do not add, remove or alter "
       "any information; prefer deductions; keep it fluent. Output only the text.",
       system="You are an expert in radiology, looking at a radiology image."),
    # ---- μ²-LLM report rewriting and translation ------------------------------------------------------------
    _T("mu2.rewrite", 1,
       "Paraphrase the radiology report below.\nRules: follow the writing style of the example reports; keep the "
       "meaning exactly, adding, removing or correcting nothing; output only the paraphrased report; English only."
       "\n\nExample reports:\n{examples}\n\nThe report to paraphrase:\n'''\n{report}\n'''",
       system="You are an expert radiologist."),
    _T("mu2.translate", 1,
       "Translate the following text from {source_lang} into {target_lang}. Output only the {target_lang} "
       "translation, with no explanation.\n{source_lang}: {text}"),
    # ---- LLM-RG4: judge and rewrite a report for an input scenario ------------------------------------------
    _T("rg4.judge", 1,
       "A report will be generated from these inputs only: {inputs}.\nList, one per line starting with '- ', every "
       "sentence of the report below that the inputs cannot support: comparisons with a prior study when no prior "
       "is given, mentions of views that were not provided, communications with clinicians, and prior procedures. "
       "If there is none, reply exactly 'OK'.\n\nThe report:\n'''\n{report}\n'''",
       system="You are an expert radiologist."),
    _T("rg4.rewrite", 1,
       "Rewrite the report below so that it only states what these inputs support: {inputs}.\nRemove "
       "communications and prior procedures; keep every positive finding, negative finding and recommendation; "
       "keep or reword views and comparisons only if the inputs include them.\nProblems found so far:\n{problems}"
       "\n\nThe report:\n'''\n{report}\n'''\n\nOutput only the rewritten report.",
       system="You are an expert radiologist."),
    # ---- ViPET-VLM: PET/CT report separation ----------------------------------------------------------------
    _T("vipet.split", 1,
       "Split the PET/CT report below into its PET part and its CT part.\n"
       "Return JSON only, exactly of the form {{\"PET\": \"...\", \"CT\": \"...\"}}, with no other keys and no text "
       "before or after it.\nPET: metabolic information only (tracer uptake, hyper- or hypometabolic foci, their "
       "intensity and distribution, SUV/SUVmax, focal or diffuse uptake).\nCT: anatomical information only (organ or "
       "region, size measurements, shape, margins); no uptake terms and no SUV values.\n\n"
       "The report:\n'''\n{report}\n'''"),
]}


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise PromptError(f"unknown template {name!r}; known: {', '.join(sorted(TEMPLATES))}") from None


def identify(request: ChatRequest, templates: dict[str, PromptTemplate] | None = None
             ) -> tuple[PromptTemplate, dict[str, str]] | None:
    """Which template rendered ``request`` (and with which fields), or ``None``."""
    for template in (templates or TEMPLATES).values():
        fields = template.match(request.user_text)
        if fields is not None:
            return template, fields
    return None
