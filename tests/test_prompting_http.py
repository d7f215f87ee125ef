"""The OpenAI-compatible client and the runner against a real HTTP server on 127.0.0.1, started by each test.

Every way a server can misbehave — HTTP 500/429/400, timeouts, a body that is not JSON, JSON without choices,
an empty reply, a reply without "Answer:" — is either retried (and counted) or counted as a failure; none crashes a
run or loses the records that did finish.
"""
import json

import pytest

from rrg_lite.prompting.cache import RequestCache
from rrg_lite.prompting.clients import (ChatRequest, MalformedResponseError, OpenAICompatibleClient,
                                        PermanentLLMError, TransientLLMError)
from rrg_lite.prompting.parsing import extract_thinking_answer
from rrg_lite.prompting.runner import CallFailure, Completion, LLMRunner
from rrg_lite.prompting.server import ChatCompletionServer

REPLY = "Thinking: the lung has a nodule.\n\nAnswer: Lung nodule."


def echo(request: ChatRequest) -> str:
    return REPLY


def req(i: int = 0, **kw) -> ChatRequest:
    return ChatRequest((("user", f"question {i}"),), model="m", **kw)


def runner_for(server, **kw) -> LLMRunner:
    kw.setdefault("max_retries", 3)
    kw.setdefault("timeout_s", 5.0)
    return LLMRunner(OpenAICompatibleClient(server.url, model="m"), RequestCache(":memory:"),
                     sleep=lambda s: None, progress=False, **kw)


def test_ok_reply_and_payload():
    seen = []
    with ChatCompletionServer(lambda r: seen.append(r) or REPLY) as server:
        client = OpenAICompatibleClient(server.url, model="served-name")
        assert client.chat(req(seed=7, temperature=0.5, top_p=0.9), timeout=5) == REPLY
    assert seen[0].model == "served-name" and seen[0].seed == 7
    assert seen[0].temperature == 0.5 and seen[0].top_p == 0.9
    assert seen[0].messages == (("user", "question 0"),)


@pytest.mark.parametrize("action, error, kind", [
    ("http_500", TransientLLMError, "http_500"),
    ("http_429", TransientLLMError, "http_429"),
    ("http_400", PermanentLLMError, "http_400"),
    ("invalid_json", MalformedResponseError, "invalid_json"),
    ("no_choices", MalformedResponseError, "no_choices"),
])
def test_client_classifies_server_failures(action, error, kind):
    with ChatCompletionServer(echo, lambda r, seen: action) as server:
        with pytest.raises(error) as info:
            OpenAICompatibleClient(server.url).chat(req(), timeout=5)
    assert info.value.kind == kind


def test_timeout_is_transient():
    with ChatCompletionServer(echo, lambda r, seen: "timeout", hang_s=1.0) as server:
        with pytest.raises(TransientLLMError) as info:
            OpenAICompatibleClient(server.url).chat(req(), timeout=0.2)
    assert info.value.kind == "timeout"


def test_connection_refused_is_transient():
    server = ChatCompletionServer(echo)  # bound but never started, then closed: nobody listens
    url = server.url
    server._httpd.server_close()
    with pytest.raises(TransientLLMError):
        OpenAICompatibleClient(url).chat(req(), timeout=1)


@pytest.mark.parametrize("first", ["http_500", "http_429", "invalid_json", "no_choices", "timeout"])
def test_runner_retries_transient_failures(first):
    # fail twice, then answer
    with ChatCompletionServer(echo, lambda r, seen: first if seen < 2 else "ok", hang_s=0.6) as server:
        runner = runner_for(server, timeout_s=0.2)
        out = runner.run(req(), extract_thinking_answer)
    assert isinstance(out, Completion) and out.parsed == ("the lung has a nodule.", "Lung nodule.")
    assert runner.stats["retries"] == 2 and runner.stats[f"transient:{first}"] == 2
    assert server.calls() == 3


def test_runner_gives_up_and_counts_without_crashing():
    # request 1 always fails with 500; the other requests must still finish and be returned
    script = lambda r, seen: "http_500" if r.messages[0][1] == "question 1" else "ok"  # noqa: E731
    with ChatCompletionServer(echo, script) as server:
        runner = runner_for(server, max_retries=2)
        out = runner.map([req(i) for i in range(4)], extract_thinking_answer)
    assert [type(o).__name__ for o in out] == ["Completion", "CallFailure", "Completion", "Completion"]
    assert out[1].reason == "http_500"
    assert runner.stats["failed:http_500"] == 1 and runner.stats["transient:http_500"] == 3
    assert len(runner.cache) == 3  # finished calls kept; the failure is not cached, so a rerun retries it


def test_permanent_error_is_not_retried():
    with ChatCompletionServer(echo, lambda r, seen: "http_400") as server:
        runner = runner_for(server)
        out = runner.run(req())
    assert isinstance(out, CallFailure) and out.reason == "http_400"
    assert server.calls() == 1 and runner.stats["retries"] == 0


@pytest.mark.parametrize("bad, reason", [("no_answer", "no_answer"), ("empty", "empty")])
def test_malformed_reply_is_reasked_as_a_new_variant(bad, reason):
    # the server answers badly to the first ask (seed 0) and well to the re-ask (seed shifted to 1)
    with ChatCompletionServer(echo, lambda r, seen: bad if r.seed == 0 else "ok") as server:
        runner = runner_for(server, reask=2)
        out = runner.run(req(), extract_thinking_answer)
    assert isinstance(out, Completion) and out.request.variant == 1
    assert runner.stats[f"malformed:{reason}"] == 1
    assert server.calls() == 2


def test_always_malformed_reply_is_counted_failure():
    with ChatCompletionServer(echo, lambda r, seen: "no_answer") as server:
        runner = runner_for(server, reask=2)
        out = runner.run(req(), extract_thinking_answer)
    assert isinstance(out, CallFailure) and out.reason == "malformed:no_answer"
    assert runner.stats["malformed:no_answer"] == 3 and server.calls() == 3
    assert len(runner.cache) == 3  # the server did answer: the replies are cached, so a rerun costs no call


def test_cache_means_a_rerun_makes_no_calls(tmp_path):
    with ChatCompletionServer(echo) as server:
        client = OpenAICompatibleClient(server.url)
        with RequestCache(tmp_path / "c.sqlite") as cache:
            LLMRunner(client, cache, progress=False).map([req(i) for i in range(5)])
        assert server.calls() == 5
        with RequestCache(tmp_path / "c.sqlite") as cache:  # a new process would reopen the file like this
            runner = LLMRunner(client, cache, progress=False)
            out = runner.map([req(i) for i in range(5)])
        assert server.calls() == 5 and runner.stats["cache_hits"] == 5
        assert all(o.from_cache and o.text == REPLY for o in out)


def test_concurrency_limit_is_respected():
    with ChatCompletionServer(echo, delay_s=0.05) as server:
        runner = runner_for(server, max_concurrency=3)
        out = runner.map([req(i) for i in range(12)])
    assert all(isinstance(o, Completion) for o in out)
    assert 1 <= server.max_in_flight <= 3


def test_order_of_results_is_the_order_of_requests():
    with ChatCompletionServer(lambda r: r.messages[0][1].upper(), delay_s=0.01) as server:
        out = runner_for(server, max_concurrency=4).map([req(i) for i in range(10)])
    assert [o.text for o in out] == [f"QUESTION {i}" for i in range(10)]


def test_request_key_depends_on_everything_that_changes_the_answer():
    base = req()
    assert base.key() == req().key()
    for other in [req(1), req(seed=1), req(temperature=0.7), req(max_tokens=9), base.with_variant(1),
                  ChatRequest((("user", "question 0"),), model="other")]:
        assert other.key() != base.key()
    assert json.loads(json.dumps(base.openai_payload()))["seed"] == 0
    assert base.with_variant(2).openai_payload()["seed"] == 2


def test_bad_base_url_and_bad_request_fail_clearly():
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatibleClient("localhost:8000")
    with pytest.raises(ValueError, match="role"):
        ChatRequest((("robot", "hi"),))
    with pytest.raises(ValueError, match="top_p"):
        ChatRequest((("user", "hi"),), top_p=0)
