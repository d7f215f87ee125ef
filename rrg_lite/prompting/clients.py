"""LLM clients: one request type, three ways to answer it.

Every pipeline in :mod:`rrg_lite.prompting` builds :class:`ChatRequest` objects and hands them to an
:class:`~rrg_lite.prompting.runner.LLMRunner`, which calls a *client*. A client is anything with

    name: str                                   # recorded in provenance ("which model")
    chat(request: ChatRequest, timeout: float | None) -> str

and it signals trouble with the exceptions below, so that the runner can tell what to retry:

- :class:`TransientLLMError`  – worth retrying: HTTP 5xx/429/408, connection refused/reset, timeouts;
- :class:`MalformedResponseError` – the server answered, but not with a chat-completion body (bad JSON, no
  ``choices``); also retried, because proxies and overloaded servers produce these intermittently;
- :class:`PermanentLLMError` – retrying cannot help: HTTP 400/401/403/404, an unknown model.

The three clients:

- :class:`OpenAICompatibleClient` speaks the chat-completions protocol (``POST {base_url}/chat/completions``)
  with the standard library only. vLLM (``vllm serve``), Ollama (``http://localhost:11434/v1``), llama.cpp's
  ``llama-server`` and hosted APIs all accept it.
- :class:`HFLocalClient` generates in-process with a 🤗 Transformers causal LM and its chat template.
- :class:`rrg_lite.prompting.standin.OfflineStandInLLM` answers from the synthetic world's records (offline demo).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from typing import Any, Protocol, Sequence

__all__ = [
    "ChatRequest",
    "client_identity",
    "cache_key",
    "LLMClient",
    "LLMError",
    "TransientLLMError",
    "MalformedResponseError",
    "PermanentLLMError",
    "OpenAICompatibleClient",
    "HFLocalClient",
]

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request.

    ``messages`` is a tuple of ``(role, content)`` pairs. ``variant`` numbers the re-asks of the same prompt after a
    malformed reply: it is part of the cache key (so the re-ask is a new call) and shifts the sampling seed.
    ``model`` is the name the server knows the model by; offline and local clients ignore it.
    ``prompt_id`` names the prompt's version (e.g. ``"mu2.answer@v1"``); it is part of the cache key, so a new
    prompt version never reuses the old version's replies, but it is not sent to the server.
    """

    messages: tuple[tuple[str, str], ...]
    model: str = "default"
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    variant: int = 0
    prompt_id: str | None = None

    def __post_init__(self):
        if not self.messages:
            raise ValueError("ChatRequest needs at least one message")
        msgs = tuple((str(r), str(c)) for r, c in self.messages)
        for role, _ in msgs:
            if role not in _ROLES:
                raise ValueError(f"unknown chat role {role!r}; use one of {_ROLES}")
        object.__setattr__(self, "messages", msgs)
        if self.temperature < 0 or not (0 < self.top_p <= 1) or self.max_tokens < 1:
            raise ValueError(f"bad sampling parameters: temperature={self.temperature}, top_p={self.top_p}, "
                             f"max_tokens={self.max_tokens}")

    @classmethod
    def from_messages(cls, messages: Sequence[dict] | Sequence[tuple[str, str]], **kwargs) -> "ChatRequest":
        pairs = [(m["role"], m["content"]) if isinstance(m, dict) else tuple(m) for m in messages]
        return cls(messages=tuple(pairs), **kwargs)

    def with_variant(self, variant: int) -> "ChatRequest":
        return replace(self, variant=variant)

    @property
    def user_text(self) -> str:
        """The last user message (what the offline stand-in reads)."""
        for role, content in reversed(self.messages):
            if role == "user":
                return content
        return ""

    def as_dict(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "messages": [{"role": r, "content": c} for r, c in self.messages],
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "variant": self.variant,
        }
        if self.prompt_id is not None:   # absent when unset: keys of requests without a prompt id stay as they were
            out["prompt_id"] = self.prompt_id
        return out

    def key(self) -> str:
        """SHA-256 of the canonical JSON of the request (messages, model name, sampling, seed, variant, prompt id).

        This identifies the *request*; the cache key (:func:`cache_key`) adds the client that answers it.
        """
        return _sha256(self.as_dict())

    def openai_payload(self) -> dict[str, Any]:
        """The body of ``POST /chat/completions``; a re-ask (variant k) samples with seed + k."""
        body = self.as_dict()
        body.pop("variant")
        body.pop("prompt_id", None)
        body["seed"] = self.seed + self.variant
        body["stream"] = False
        return body


def _sha256(obj) -> str:
    canonical = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def client_identity(client) -> dict[str, Any]:
    """What about ``client`` changes its answers: its kind, endpoint and model (``client.identity()`` if it has one).

    A client without an ``identity()`` method is identified by its class and ``name``.
    """
    ident = getattr(client, "identity", None)
    if callable(ident):
        return dict(ident())
    return {"client": type(client).__name__, "name": getattr(client, "name", None)}


def cache_key(request: ChatRequest, client) -> str:
    """The cache key of ``request`` answered by ``client``: SHA-256 over the request and the client's identity.

    Two models (or two servers) asked the same request get different keys, so neither is served the other's reply.
    """
    return _sha256({"request": request.as_dict(), "client": client_identity(client)})


class LLMClient(Protocol):
    name: str

    def chat(self, request: ChatRequest, timeout: float | None = None) -> str: ...


class LLMError(RuntimeError):
    """Base class; ``kind`` is a short label the runner counts (``"http_500"``, ``"timeout"``, …)."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


class TransientLLMError(LLMError):
    """A failure that may go away if the same request is sent again."""


class MalformedResponseError(TransientLLMError):
    """The server replied, but the body is not a chat completion."""


class PermanentLLMError(LLMError):
    """A failure that the same request will hit again (bad request, authentication, unknown model)."""


_TRANSIENT_HTTP = {408, 409, 425, 429}


def _is_loopback(host: str | None) -> bool:
    return host in {"localhost", "127.0.0.1", "::1"}


class OpenAICompatibleClient:
    """A chat-completions client over HTTP(S), standard library only.

    ``base_url`` is the API root, e.g. ``http://127.0.0.1:8000/v1`` (vLLM), ``http://localhost:11434/v1``
    (Ollama), ``https://api.openai.com/v1``. The API key, if any, is taken from ``api_key`` or from the environment
    variable named by ``api_key_env``; it is sent as a bearer token and never logged or cached.
    """

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None, name: str | None = None):
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ValueError(f"base_url must look like http(s)://host[:port]/v1, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = name or model or self.base_url
        self._api_key = api_key or (os.environ.get(api_key_env) if api_key_env else None)
        # Loopback servers (a local vLLM, the tests' server) must not be routed through an HTTP proxy.
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(parsed.hostname) else []
        self._opener = urllib.request.build_opener(*handlers)

    def identity(self) -> dict[str, Any]:
        """Endpoint and served model: both change the answer (the API key does not, and is never part of it)."""
        parsed = urllib.parse.urlparse(self.base_url)
        endpoint = urllib.parse.urlunparse((parsed.scheme.lower(), parsed.netloc.lower(), parsed.path.rstrip("/"),
                                            "", "", ""))
        return {"client": "openai-compatible", "endpoint": endpoint, "model": self.model}

    def chat(self, request: ChatRequest, timeout: float | None = 60.0) -> str:
        payload = request.openai_payload()
        if self.model is not None:
            payload["model"] = self.model
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        http_request = urllib.request.Request(
            self.base_url + "/chat/completions", data=json.dumps(payload).encode("utf-8"),
            headers=headers, method="POST")
        try:
            with self._opener.open(http_request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read(300).decode("utf-8", "replace") if err.fp is not None else ""
            err.close()
            message = f"{self.base_url}: HTTP {err.code} {err.reason}: {detail}"
            if err.code >= 500 or err.code in _TRANSIENT_HTTP:
                raise TransientLLMError(message, kind=f"http_{err.code}") from None
            raise PermanentLLMError(message, kind=f"http_{err.code}") from None
        except (socket.timeout, TimeoutError) as err:
            raise TransientLLMError(f"{self.base_url}: no reply within {timeout} s", kind="timeout") from err
        except urllib.error.URLError as err:
            kind = "timeout" if isinstance(err.reason, (socket.timeout, TimeoutError)) else "connection"
            raise TransientLLMError(f"{self.base_url}: {err.reason}", kind=kind) from err
        except (ConnectionError, http.client.HTTPException, OSError) as err:
            raise TransientLLMError(f"{self.base_url}: {type(err).__name__}: {err}", kind="connection") from err
        return self.parse_completion(raw)

    def parse_completion(self, raw: bytes) -> str:
        """``choices[0].message.content`` of a chat-completion body, or :class:`MalformedResponseError`."""
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise MalformedResponseError(
                f"{self.base_url}: reply is not JSON ({err}); first bytes: {raw[:80]!r}", kind="invalid_json") from None
        try:
            content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise MalformedResponseError(
                f"{self.base_url}: reply has no choices[0].message.content: {str(body)[:200]}",
                kind="no_choices") from None
        if not isinstance(content, str):
            raise MalformedResponseError(f"{self.base_url}: message content is {type(content).__name__}, not text",
                                         kind="no_choices")
        return content


class HFLocalClient:
    """In-process generation with a 🤗 Transformers causal LM.

    Load from a Hub id or a local folder (``HFLocalClient("meta-llama/Llama-3.2-1B-Instruct")``; the download is
    the user's choice, never a default), or pass a ``model`` and ``tokenizer`` already in memory. Messages go
    through the tokenizer's chat template when it has one, else they are joined as ``role: content`` lines.
    Generation is serialised with a lock (one model, one forward at a time); ``timeout`` is not enforced.
    """

    def __init__(self, model_id_or_path: str | None = None, *, model=None, tokenizer=None, device: str = "cpu",
                 dtype: str | None = None, trust_remote_code: bool = False, name: str | None = None):
        if model is None or tokenizer is None:
            if model_id_or_path is None:
                raise ValueError("HFLocalClient needs a model id/path, or both model= and tokenizer=")
            from transformers import AutoModelForCausalLM, AutoTokenizer
            import torch
            tokenizer = AutoTokenizer.from_pretrained(model_id_or_path, trust_remote_code=trust_remote_code)
            torch_dtype = getattr(torch, dtype) if dtype else None
            model = AutoModelForCausalLM.from_pretrained(model_id_or_path, dtype=torch_dtype,
                                                         trust_remote_code=trust_remote_code)
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.name = name or model_id_or_path or type(model).__name__
        self._source = model_id_or_path or getattr(getattr(model, "config", None), "_name_or_path", None)
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        """The local model (its id/path and class); give in-memory models distinct ``name=`` values."""
        return {"client": "hf-local", "name": self.name, "source": self._source, "class": type(self.model).__name__}

    def _prompt_ids(self, request: ChatRequest):
        import torch
        messages = [{"role": r, "content": c} for r, c in request.messages]
        if getattr(self.tokenizer, "chat_template", None):
            enc = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=True, return_tensors="pt")
            return enc["input_ids"]
        text = "\n".join(f"{r}: {c}" for r, c in request.messages) + "\nassistant:"
        return torch.tensor([self.tokenizer(text)["input_ids"]])

    def chat(self, request: ChatRequest, timeout: float | None = None) -> str:
        import torch
        with self._lock:
            ids = self._prompt_ids(request).to(self.device)
            generator_seed = request.seed + request.variant
            torch.manual_seed(generator_seed)  # sampling reproducible per request
            do_sample = request.temperature > 0
            kwargs = dict(max_new_tokens=request.max_tokens, do_sample=do_sample,
                          attention_mask=torch.ones_like(ids))
            if do_sample:
                kwargs.update(temperature=request.temperature, top_p=request.top_p)
            pad = self.tokenizer.pad_token_id
            if pad is None:
                pad = self.tokenizer.eos_token_id
            if pad is not None:
                kwargs["pad_token_id"] = pad
            with torch.no_grad():
                out = self.model.generate(ids, **kwargs)
            return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
