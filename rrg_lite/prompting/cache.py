"""An on-disk cache of finished LLM calls, so that a crashed or killed run resumes without paying twice.

One SQLite table, one row per finished call::

    key TEXT PRIMARY KEY   -- clients.cache_key(request, client): SHA-256 of the request (model name, messages,
                           -- sampling parameters, seed, variant, prompt id) AND the answering client's identity
                           -- (its endpoint and served model), so a second model is never served the first's replies
    client TEXT            -- which client answered (provenance)
    request TEXT           -- the request and the client identity as JSON (for inspection; never an API key)
    response TEXT          -- the reply text, exactly as received

Each ``put`` commits immediately (SQLite's journal makes the commit atomic), so a process killed at any moment
leaves only whole rows: every call that finished before the kill is found on the next run, and a call that was in
flight is simply asked again. Only non-empty replies are stored; failures are retried on the next run.
The cache may be shared by threads of one process (a lock serialises access) and by several processes.

When another process keeps the database locked for longer than ``timeout_s``, :meth:`RequestCache.put` raises
:class:`CacheLockedError`; the runner then keeps the replies in memory and, if the lock persists, writes them to a
side file ``<cache>.unsaved.jsonl`` (atomically) that the next :class:`RequestCache` opened on the same path loads.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

from .clients import ChatRequest

__all__ = ["RequestCache", "CacheLockedError"]


class CacheLockedError(RuntimeError):
    """The cache database stayed locked (another process holds it) for longer than the timeout.

    ``results`` holds what the interrupted call had finished (for :meth:`LLMRunner.map`: the list it would have
    returned); ``unsaved_path`` the side file its replies were written to, if any.
    """

    def __init__(self, message: str, results: Any = None, unsaved_path: Path | None = None):
        super().__init__(message)
        self.results = results
        self.unsaved_path = unsaved_path


def _is_lock(err: sqlite3.OperationalError) -> bool:
    text = str(err).lower()
    return "locked" in text or "busy" in text


class RequestCache:
    """``RequestCache(path, timeout_s=30)``; ``":memory:"`` gives a throw-away cache."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = str(path)
        self.timeout_s = float(timeout_s)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=self.timeout_s)
            self._db.execute("PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA journal_mode=MEMORY")
            self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, client TEXT, "
                             "request TEXT, response TEXT NOT NULL)")
            self._db.commit()
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{self.path}: not a usable request cache ({err})") from err
        self._lock = threading.Lock()
        self._load_unsaved()

    # -- the side file of replies that could not be stored while the database was locked --------------------------
    @property
    def unsaved_path(self) -> Path | None:
        return None if self.path == ":memory:" else Path(self.path + ".unsaved.jsonl")

    def _load_unsaved(self) -> None:
        side = self.unsaved_path
        if side is None or not side.exists():
            return
        rows = [json.loads(line) for line in side.read_text(encoding="utf-8").splitlines() if line.strip()]
        try:
            self._insert([(r["key"], r["client"], r["request"], r["response"]) for r in rows])
        except CacheLockedError:
            return   # still locked: keep the side file for the next open
        side.unlink()

    def spill(self, rows: Iterable[tuple[str, str, str, str]]) -> Path:
        """Write (key, client, request JSON, response) rows to the side file, merged with what it holds; atomic."""
        from rrg_lite.data.atomic import atomic_open

        side = self.unsaved_path
        if side is None:
            raise ValueError("an in-memory cache has no side file")
        old = []
        if side.exists():
            old = [json.loads(line) for line in side.read_text(encoding="utf-8").splitlines() if line.strip()]
        seen = {r["key"] for r in old}
        new = [{"key": k, "client": c, "request": q, "response": a} for k, c, q, a in rows if k not in seen]
        with atomic_open(side, "w") as fh:
            for r in old + new:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        return side

    # -- rows -------------------------------------------------------------------------------------------------------
    def _insert(self, rows: list[tuple[str, str, str, str]]) -> None:
        with self._lock:
            try:
                # INSERT OR IGNORE: if two workers raced on the same request, the first stored answer wins.
                self._db.executemany("INSERT OR IGNORE INTO calls (key, client, request, response) VALUES (?, ?, ?, ?)",
                                     rows)
                self._db.commit()
            except sqlite3.OperationalError as err:
                self._db.rollback()
                if not _is_lock(err):
                    raise
                raise CacheLockedError(f"{self.path}: the cache database stayed locked for more than "
                                       f"{self.timeout_s:g} s ({err}); another process holds it") from None

    @staticmethod
    def row(request: ChatRequest, response: str, client: str = "", key: str | None = None,
            identity: dict | None = None) -> tuple[str, str, str, str]:
        if not isinstance(response, str):
            raise TypeError(f"cache stores reply text, got {type(response).__name__}")
        record = {**request.as_dict(), **({"client_identity": identity} if identity is not None else {})}
        return (key or request.key(), client, json.dumps(record, ensure_ascii=False), response)

    def get(self, key: str) -> str | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT response FROM calls WHERE key = ?", (key,)).fetchone()
            except sqlite3.OperationalError as err:
                if not _is_lock(err):
                    raise
                raise CacheLockedError(f"{self.path}: cannot read the cache, locked for more than "
                                       f"{self.timeout_s:g} s ({err})") from None
        return None if row is None else row[0]

    def put(self, request: ChatRequest, response: str, client: str = "", key: str | None = None,
            identity: dict | None = None) -> None:
        """Store one reply under ``key`` (default ``request.key()``); :class:`CacheLockedError` if locked too long."""
        self._insert([self.row(request, response, client, key, identity)])

    def put_rows(self, rows: list[tuple[str, str, str, str]]) -> None:
        """Store many rows made by :meth:`row` in one transaction."""
        self._insert(list(rows))

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
