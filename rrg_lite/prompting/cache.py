"""An on-disk cache of finished LLM calls, so that a crashed or killed run resumes without paying twice.

One SQLite table, one row per finished call::

    key TEXT PRIMARY KEY   -- ChatRequest.key(): SHA-256 of model, messages, sampling parameters, seed, variant
    client TEXT            -- which client answered (provenance)
    request TEXT           -- the request as JSON (for inspection; no API keys are ever in it)
    response TEXT          -- the reply text, exactly as received

Each ``put`` commits immediately (SQLite's journal makes the commit atomic), so a process killed at any moment
leaves only whole rows: every call that finished before the kill is found on the next run, and a call that was in
flight is simply asked again. Only successful replies are stored; failures are retried on the next run.
The cache may be shared by threads of one process (a lock serialises access) and by several processes.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from .clients import ChatRequest

__all__ = ["RequestCache"]


class RequestCache:
    """``RequestCache(path)``; ``":memory:"`` gives a throw-away cache."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA journal_mode=MEMORY")
            self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, client TEXT, "
                             "request TEXT, response TEXT NOT NULL)")
            self._db.commit()
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{self.path}: not a usable request cache ({err})") from err
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM calls WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, request: ChatRequest, response: str, client: str = "") -> None:
        if not isinstance(response, str):
            raise TypeError(f"cache stores reply text, got {type(response).__name__}")
        with self._lock:
            # INSERT OR IGNORE: if two workers raced on the same request, the first stored answer wins.
            self._db.execute("INSERT OR IGNORE INTO calls (key, client, request, response) VALUES (?, ?, ?, ?)",
                             (request.key(), client, json.dumps(request.as_dict(), ensure_ascii=False), response))
            self._db.commit()

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def keys(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT key FROM calls")}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "RequestCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
