"""The request cache: keyed on everything that changes the answer, loses nothing when locked, stores no empty reply."""
import sqlite3
import time

import pytest

from rrg_lite.prompting.cache import CacheLockedError, RequestCache
from rrg_lite.prompting.clients import ChatRequest, OpenAICompatibleClient, cache_key
from rrg_lite.prompting.runner import CallFailure, Completion, LLMRunner
from rrg_lite.prompting.server import ChatCompletionServer


def req(i: int = 0, **kw) -> ChatRequest:
    return ChatRequest((("user", f"question {i}"),), **kw)


class Fake:
    """A client answering ``"<name>: <question>"`` (or ``reply``), counting calls."""

    def __init__(self, name="fake", reply=None):
        self.name, self.reply, self.calls = name, reply, 0

    def chat(self, request, timeout=None):
        self.calls += 1
        return self.reply if self.reply is not None else f"{self.name}: {request.user_text}"


def test_second_model_is_not_served_the_first_models_answers(tmp_path):
    # one server that answers with the model name it was asked for; the requests themselves are identical
    with ChatCompletionServer(lambda r: f"I am {r.model}") as server, RequestCache(tmp_path / "c.sqlite") as cache:
        a = LLMRunner(OpenAICompatibleClient(server.url, model="model-a"), cache, progress=False)
        b = LLMRunner(OpenAICompatibleClient(server.url, model="model-b"), cache, progress=False)
        assert a.run(req()).text == "I am model-a"
        out = b.run(req())
        assert out.text == "I am model-b" and not out.from_cache
        assert a.run(req()).from_cache and len(cache) == 2
    # a second endpoint serving a model under the same name is another key too
    with ChatCompletionServer(lambda r: "server 1") as s1, ChatCompletionServer(lambda r: "server 2") as s2:
        cache = RequestCache(":memory:")
        assert LLMRunner(OpenAICompatibleClient(s1.url, model="m"), cache, progress=False).run(req()).text == "server 1"
        assert LLMRunner(OpenAICompatibleClient(s2.url, model="m"), cache, progress=False).run(req()).text == "server 2"


def test_cache_key_covers_model_endpoint_prompt_version_and_sampling():
    c1 = OpenAICompatibleClient("http://127.0.0.1:8000/v1", model="m")
    base = cache_key(req(), c1)
    assert cache_key(req(), OpenAICompatibleClient("http://127.0.0.1:8000/v1/", model="m")) == base  # same place
    others = [cache_key(req(), OpenAICompatibleClient("http://127.0.0.1:8000/v1", model="m2")),
              cache_key(req(), OpenAICompatibleClient("http://127.0.0.1:8001/v1", model="m")),
              cache_key(req(prompt_id="mu2.answer@v2"), c1), cache_key(req(temperature=0.7), c1),
              cache_key(req(top_p=0.9), c1), cache_key(req(max_tokens=7), c1), cache_key(req(seed=3), c1),
              cache_key(req().with_variant(1), c1), cache_key(req(), Fake("other client"))]
    assert len({base, *others}) == len(others) + 1
    assert "prompt_id" not in req(prompt_id="x@v1").openai_payload()   # keyed on, never sent
    # the API key is not part of the identity (it does not change the answer, and must never be stored)
    secret = OpenAICompatibleClient("http://127.0.0.1:8000/v1", model="m", api_key="sk-secret")
    assert cache_key(req(), secret) == base


def _hold_lock(path):
    db = sqlite3.connect(path, timeout=0.1, isolation_level=None, check_same_thread=False)
    db.execute("BEGIN EXCLUSIVE")
    return db


def test_locked_cache_keeps_the_replies_already_answered(tmp_path):
    path = tmp_path / "c.sqlite"
    RequestCache(path).close()
    client = Fake()
    holder = _hold_lock(path)            # another process keeps the database locked
    cache = RequestCache(path, timeout_s=0.2)
    runner = LLMRunner(client, cache, progress=False, max_concurrency=2)
    t0 = time.monotonic()
    with pytest.raises(CacheLockedError, match=r"c\.sqlite: the cache database stayed locked .* 4 replies answered "
                                               r"in this run .* saved to .*c\.sqlite\.unsaved\.jsonl") as info:
        runner.map([req(i) for i in range(4)])
    assert time.monotonic() - t0 < 5     # waited for the lock once (or twice), not once per reply
    assert [o.text for o in info.value.results] == [f"fake: question {i}" for i in range(4)]
    assert info.value.unsaved_path.exists() and client.calls == 4
    holder.rollback()
    holder.close()
    cache.close()
    with RequestCache(path) as reopened:         # the next run loads the saved replies...
        assert len(reopened) == 4 and not info.value.unsaved_path.exists()
        again = LLMRunner(client, reopened, progress=False).map([req(i) for i in range(4)])
    assert client.calls == 4 and all(o.from_cache for o in again)   # ...and pays for none of them again


def test_cache_lock_that_clears_during_the_batch_loses_nothing(tmp_path):
    path = tmp_path / "c.sqlite"
    RequestCache(path).close()
    holder = _hold_lock(path)
    cache = RequestCache(path, timeout_s=0.2)

    class Releasing(Fake):
        def chat(self, request, timeout=None):
            if request.user_text == "question 3":
                holder.rollback()        # the other process lets go before the batch ends
            return super().chat(request, timeout)

    client = Releasing()
    out = LLMRunner(client, cache, progress=False, max_concurrency=1).map([req(i) for i in range(4)])
    assert all(isinstance(o, Completion) for o in out) and len(cache) == 4
    holder.close()


def test_empty_reply_without_parser_is_not_cached_as_success():
    client = Fake(reply="   ")
    runner = LLMRunner(client, RequestCache(":memory:"), progress=False, reask=1)
    out = runner.run(req())
    assert isinstance(out, CallFailure) and out.reason == "malformed:empty"
    assert len(runner.cache) == 0 and runner.stats["malformed:empty"] == 2
    client.reply = "now an answer"
    assert runner.run(req()).text == "now an answer"     # the rerun asks again instead of replaying ""
