"""``LLMRunner``: the one place where LLM calls happen — cache, retries, timeouts, concurrency, re-asks.

A call goes through three layers:

1. **cache** — if the call's key (:func:`~rrg_lite.prompting.clients.cache_key`: the request *and* the client's
   endpoint and model) is in the :class:`~rrg_lite.prompting.cache.RequestCache`, its stored reply is used and no
   client is called (this is what makes a killed run resumable);
2. **transport retries** — :class:`~rrg_lite.prompting.clients.TransientLLMError` (HTTP 5xx/429, timeouts,
   connection errors, a body that is not a chat completion) is retried up to ``max_retries`` times with exponential
   back-off; :class:`~rrg_lite.prompting.clients.PermanentLLMError` is not;
3. **re-asks** — if the caller gives a ``parse`` function and it raises
   :class:`~rrg_lite.prompting.parsing.MalformedReply` (no ``Answer:``, an empty reply, invalid JSON, …), the same
   prompt is asked again as *variant* 1, 2, … (a new cache key and a shifted seed) up to ``reask`` times.

A call that still fails returns a :class:`CallFailure` (in :meth:`LLMRunner.map`) instead of raising, so one bad
record never stops a run; every failure and retry is counted in ``runner.stats`` by its kind. An empty reply is
never a success: it is not cached and counts as malformed (``"malformed:empty"``), with or without ``parse``.
At most ``max_concurrency`` client calls are in flight at any moment, across all threads using the runner.

A cache that another process keeps locked does not lose answered replies: after the first lock time-out the runner
stops waiting on the database, keeps the replies, tries once more to store them when the batch is done, and if the
lock persists writes them to ``<cache>.unsaved.jsonl`` (loaded by the next open) and raises
:class:`~rrg_lite.prompting.cache.CacheLockedError` whose ``results`` are the batch's results.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from .cache import CacheLockedError, RequestCache
from .clients import ChatRequest, LLMClient, PermanentLLMError, TransientLLMError, cache_key, client_identity
from .parsing import MalformedReply

__all__ = ["LLMRunner", "Completion", "CallFailure"]


@dataclass(frozen=True)
class Completion:
    """A finished call: the reply, what ``parse`` made of it, and where it came from."""

    request: ChatRequest  # the variant that succeeded
    text: str
    parsed: Any
    from_cache: bool
    key: str = ""         # the cache key (request + client identity)

    def __post_init__(self):
        if not self.key:
            object.__setattr__(self, "key", self.request.key())


@dataclass(frozen=True)
class CallFailure:
    """A call given up on; ``reason`` is the counted kind (``"http_500"``, ``"malformed:no_answer"``, …)."""

    request: ChatRequest
    reason: str
    message: str


class _GiveUp(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class LLMRunner:
    """Runs requests through ``client`` with a cache, retries and a concurrency limit.

    ``sleep`` is injectable so tests do not wait for back-off.
    """

    def __init__(self, client: LLMClient, cache: RequestCache | None = None, *, max_retries: int = 3,
                 timeout_s: float = 60.0, max_concurrency: int = 4, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0, reask: int = 2, sleep: Callable[[float], None] = time.sleep,
                 progress: bool = True):
        if max_concurrency < 1 or max_retries < 0 or reask < 0:
            raise ValueError("max_concurrency >= 1, max_retries >= 0 and reask >= 0 are required")
        self.client = client
        self.cache = cache if cache is not None else RequestCache(":memory:")
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.reask = reask
        self.sleep = sleep
        self.progress = progress
        self.stats: Counter = Counter()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._stats_lock = threading.Lock()
        self._identity = client_identity(client)
        # replies answered while the cache was locked: key -> cache row; stored (or spilled) at the end of a batch
        self._unsaved: dict[str, tuple[str, str, str, str]] = {}
        self._cache_down = False   # writes timed out once in this batch: keep replies in memory until its end
        self._read_down = False    # reads timed out once in this batch: treat the cache as empty until its end

    @property
    def model_name(self) -> str:
        return getattr(self.client, "name", type(self.client).__name__)

    def _count(self, what: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[what] += n

    def key(self, request: ChatRequest) -> str:
        """The cache key of ``request`` for this runner's client."""
        return cache_key(request, self.client)

    # -- the cache, robust to a locked database ------------------------------------------------------------------
    def _cached(self, key: str) -> str | None:
        with self._stats_lock:
            row = self._unsaved.get(key)
        if row is not None:
            return row[3]
        if self._read_down:
            return None
        try:
            return self.cache.get(key)   # SQLite's WAL lets readers in while another process writes
        except CacheLockedError:
            self._count("cache_locked")
            self._read_down = True
            return None   # a miss costs a call, never a wrong answer

    def _store(self, key: str, request: ChatRequest, text: str) -> None:
        row = self.cache.row(request, text, client=self.model_name, key=key, identity=self._identity)
        if not self._cache_down:
            try:
                self.cache.put_rows([row])
                return
            except CacheLockedError:
                self._count("cache_locked")
                self._cache_down = True   # do not wait timeout_s again for every reply of this batch
        with self._stats_lock:
            self._unsaved[key] = row

    def _flush(self, results: Any) -> None:
        """Store replies kept while the cache was locked; if it still is, write them to the side file and raise."""
        self._cache_down = self._read_down = False
        with self._stats_lock:
            rows = list(self._unsaved.values())
        if not rows:
            return
        try:
            self.cache.put_rows(rows)
        except CacheLockedError as err:
            if self.cache.unsaved_path is None:
                raise
            side = self.cache.spill(rows)
            with self._stats_lock:
                self._unsaved.clear()
            raise CacheLockedError(
                f"{err}. {len(rows)} replies answered in this run could not be stored there; they were saved to "
                f"{side} and are loaded into the cache the next time it is opened, so rerunning costs no call for "
                f"them. Find and stop the process holding {self.cache.path} (e.g. another run or an open sqlite3 "
                f"shell), then rerun; the finished results are in this error's .results",
                results=results, unsaved_path=side) from None
        with self._stats_lock:
            self._unsaved.clear()

    # -- one request, no parsing ------------------------------------------------------------------------------
    def _call(self, request: ChatRequest) -> tuple[str, bool, str]:
        key = self.key(request)
        cached = self._cached(key)
        if cached is not None:
            self._count("cache_hits")
            return cached, True, key
        last_kind, last_message = "error", ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
                self.sleep(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))
            try:
                with self._slots:
                    self._count("client_calls")
                    text = self.client.chat(request, timeout=self.timeout_s)
            except TransientLLMError as err:
                last_kind, last_message = err.kind, str(err)
                self._count(f"transient:{err.kind}")
                continue
            except PermanentLLMError as err:
                self._count(f"permanent:{err.kind}")
                raise _GiveUp(err.kind, str(err)) from None
            if not isinstance(text, str):
                raise TypeError(f"{self.model_name}.chat returned {type(text).__name__}, expected str")
            if text.strip():   # an empty reply is not an answer: never cached, so a rerun asks again
                self._store(key, request, text)
            return text, False, key
        raise _GiveUp(last_kind, f"gave up after {self.max_retries + 1} attempts: {last_message}")

    # -- one request, with re-asks after malformed replies ------------------------------------------------------
    def run(self, request: ChatRequest, parse: Callable[[str], Any] | None = None) -> Completion | CallFailure:
        """Answer one request; never raises for LLM trouble (returns :class:`CallFailure`).

        Raises :class:`~rrg_lite.prompting.cache.CacheLockedError` (with the result in ``.results``) only when the
        reply could not be stored because the cache stayed locked; the reply is then in the side file.
        """
        result = self._run(request, parse)
        self._flush(result)
        return result

    def _run(self, request: ChatRequest, parse: Callable[[str], Any] | None = None) -> Completion | CallFailure:
        reason, message = "error", ""
        for variant in range(self.reask + 1):
            attempt = request.with_variant(request.variant + variant)
            try:
                text, from_cache, key = self._call(attempt)
            except _GiveUp as err:
                self._count(f"failed:{err.reason}")
                return CallFailure(attempt, err.reason, str(err))
            if not text.strip():
                reason, message = "malformed:empty", "the reply is empty"
                self._count(reason)
                continue
            if parse is None:
                return Completion(attempt, text, text, from_cache, key)
            try:
                return Completion(attempt, text, parse(text), from_cache, key)
            except MalformedReply as err:
                reason, message = f"malformed:{err.reason}", str(err)
                self._count(reason)
        self._count(f"failed:{reason}")
        return CallFailure(request, reason, f"still malformed after {self.reask + 1} asks: {message}")

    def map(self, requests: Sequence[ChatRequest], parse: Callable[[str], Any] | None = None,
            desc: str | None = None) -> list[Completion | CallFailure]:
        """Answer many requests concurrently; results come back in the order of ``requests``.

        Identical requests (same key) are asked once and share the result, so concurrent workers never pay twice.
        """
        first: dict[str, int] = {}
        for i, request in enumerate(requests):
            first.setdefault(request.key(), i)
        unique = sorted(first.values())
        results: dict[int, Completion | CallFailure] = {}
        bar = tqdm(total=len(unique), desc=desc, disable=not self.progress or not unique, leave=False)
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = {pool.submit(self._run, requests[i], parse): i for i in unique}
            for future in futures:  # in submission order; each result is final once here
                results[futures[future]] = future.result()
                bar.update(1)
        bar.close()
        out = [results[first[request.key()]] for request in requests]
        self._flush(out)   # replies kept while the cache was locked: stored now, or saved aside and raised
        return out
