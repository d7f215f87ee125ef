"""ViPET-VLM's report separation: one PET/CT report → ``{"PET": <metabolic part>, "CT": <anatomical part>}``.

ViPET-VLM trains a PET encoder and a CT encoder separately (CLIP-style), so each needs text about *its* modality
only. An LLM splits each report under a strict JSON-only schema, and
:func:`~rrg_lite.prompting.parsing.parse_pet_ct_json` enforces it: exactly the keys ``PET`` and ``CT``, both
strings, PET without sizes or measurements, CT without uptake words or SUV values. A reply that breaks the schema
is re-asked (a new variant) and, if it still fails, the study is skipped and counted with the reason — never
patched up silently.

Output ``petct_split.jsonl``: ``{"study_id", "PET", "CT", "provenance"}`` per study; ``petct_rejected.jsonl`` and
the counts in the returned dict.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from .jsonl import provenance, write_jsonl
from .parsing import parse_pet_ct_json
from .runner import CallFailure, LLMRunner
from .templates import TEMPLATES, PromptTemplate

__all__ = ["split_pet_ct_reports"]


def split_pet_ct_reports(runner: LLMRunner, records: Sequence[Mapping[str, Any]], out_dir: str | Path, *,
                         template: PromptTemplate | None = None,
                         request_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Split every record's ``report``; writes the JSONL files into ``out_dir`` and returns counts."""
    template = template or TEMPLATES["vipet.split"]
    kwargs = dict(request_kwargs or {})
    before = dict(runner.stats)
    results = runner.map([template.request(report=r["report"], **kwargs) for r in records], parse_pet_ct_json,
                         desc="PET/CT split")
    kept, rejected = [], []
    for record, res in zip(records, results):
        sid = str(record["study_id"])
        if isinstance(res, CallFailure):
            rejected.append({"study_id": sid, "reason": res.reason, "message": res.message[:300]})
            continue
        kept.append({"study_id": sid, **res.parsed,
                     "provenance": provenance("petct_split", runner.model_name, template.id, res.key)})
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "petct_split.jsonl", kept)
    write_jsonl(out_dir / "petct_rejected.jsonl", rejected)
    malformed = {k.split(":", 1)[1]: v - before.get(k, 0) for k, v in runner.stats.items()
                 if k.startswith("malformed:") and v > before.get(k, 0)}
    return {"studies": len(records), "split": len(kept), "rejected": dict(Counter(r["reason"] for r in rejected)),
            "malformed_replies": malformed}
