"""JSONL files for pipeline outputs: atomic writes, strict reads, and the provenance every record carries.

Outputs are written whole, through a temporary file and ``os.replace``, so a reader (or a resumed run) never sees a
half-written file: after a kill, a stage's output is either absent or complete. The work done before the kill is
not lost — it lives in the request cache, and the resumed run replays it without calling the LLM again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..data.atomic import atomic_open

__all__ = ["write_jsonl", "read_jsonl", "provenance"]


def provenance(stage: str, model: str, prompt_id: str | None, request_key: str | None = None) -> dict[str, Any]:
    """Which stage, which model, which prompt version (and which cached call) produced a record."""
    out: dict[str, Any] = {"stage": stage, "model": model, "prompt": prompt_id}
    if request_key is not None:
        out["request"] = request_key[:16]
    return out


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write ``records`` (one JSON object per line, UTF-8) atomically; returns how many were written."""
    path = Path(path)
    n = 0
    with atomic_open(path, "w") as f:
        for record in records:
            if not isinstance(record, dict):
                raise TypeError(f"{path}: record {n} is {type(record).__name__}, not a dict")
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file; a bad line raises ``ValueError`` naming the file and the line."""
    path = Path(path)
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records
