"""A small chat-completions server on the loopback interface, for tests and for the offline demo.

``ChatCompletionServer(answer)`` serves ``POST /v1/chat/completions`` on ``127.0.0.1`` (only) and answers each
request with ``answer(ChatRequest) -> str`` — e.g. the offline stand-in's ``chat`` — wrapped in an OpenAI-style
body. A ``script(request, seen) -> action`` can make it misbehave the way real servers do, so clients can be tested
against them: ``seen`` counts earlier requests with the same cache key, and the actions are

``"ok"``, ``"http_500"``, ``"http_429"``, ``"http_400"``, ``"timeout"`` (answers only after ``hang_s`` seconds),
``"invalid_json"`` (a body that is not JSON), ``"no_choices"`` (JSON without ``choices``), ``"empty"`` (content ""),
``"no_answer"`` (the answer with its ``Answer:`` line removed).

It keeps a log of ``(key, action)`` per request and the highest number of requests it was serving at once.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from .clients import ChatRequest

__all__ = ["ChatCompletionServer", "ACTIONS", "flaky_script"]

ACTIONS = ("ok", "http_500", "http_429", "http_400", "timeout", "invalid_json", "no_choices", "empty", "no_answer")


def flaky_script(rate: float, action: str = "http_500") -> Callable[[ChatRequest, int], str]:
    """A script that answers a fixed share ``rate`` of distinct requests with ``action`` the first time they are
    seen (chosen by a hash of the request, so the same requests fail on every run) and normally afterwards."""
    if action not in ACTIONS:
        raise ValueError(f"unknown server action {action!r}; use one of {ACTIONS}")

    def script(request: ChatRequest, seen: int) -> str:
        return action if seen == 0 and int(request.key()[:8], 16) / 16 ** 8 < rate else "ok"

    return script


class ChatCompletionServer:
    def __init__(self, answer: Callable[[ChatRequest], str],
                 script: Callable[[ChatRequest, int], str] | None = None, *, port: int = 0,
                 delay_s: float = 0.0, hang_s: float = 2.0):
        self.answer = answer
        self.script = script or (lambda request, seen: "ok")
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.log: list[tuple[str, str]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._seen: Counter = Counter()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def calls(self, action: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, a in self.log if action is None or a == action)

    def _respond(self, payload: dict) -> tuple[int, bytes, float]:
        messages = tuple((m["role"], m["content"]) for m in payload["messages"])
        # The key identifies the payload; a client's re-ask arrives with a shifted seed, i.e. as a new request.
        request = ChatRequest(messages, model=payload.get("model", "default"),
                              temperature=payload.get("temperature", 0.0), top_p=payload.get("top_p", 1.0),
                              max_tokens=payload.get("max_tokens", 512), seed=payload.get("seed", 0))
        key = request.key()
        with self._lock:
            seen = self._seen[key]
            self._seen[key] += 1
        action = self.script(request, seen)
        if action not in ACTIONS:
            raise ValueError(f"unknown server action {action!r}; use one of {ACTIONS}")
        with self._lock:
            self.log.append((key, action))
        if action.startswith("http_"):
            return int(action[5:]), b'{"error": {"message": "scripted failure"}}', self.delay_s
        if action == "invalid_json":
            return 200, b'{"choices": [{"message": {"content": "trunc', self.delay_s
        if action == "no_choices":
            return 200, b'{"object": "error", "detail": "overloaded"}', self.delay_s
        text = "" if action == "empty" else self.answer(request)
        if action == "no_answer":
            text = "\n".join(line for line in text.splitlines() if not line.startswith("Answer:"))
        body = {"id": f"chatcmpl-{key[:12]}", "object": "chat.completion", "model": request.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}]}
        delay = self.hang_s if action == "timeout" else self.delay_s
        return 200, json.dumps(body).encode(), delay

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self.send_error(404)
                    return
                with server._lock:
                    server._in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server._in_flight)
                try:
                    length = int(self.headers.get("Content-Length", 0))
                    payload = json.loads(self.rfile.read(length))
                    status, body, delay = server._respond(payload)
                    time.sleep(delay)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) before we answered
                finally:
                    with server._lock:
                        server._in_flight -= 1

        return Handler

    def start(self) -> "ChatCompletionServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "ChatCompletionServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
