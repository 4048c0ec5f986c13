"""Any OpenAI-compatible chat-completions server (Ollama, llama-server, vLLM), standard library only.

Streaming reads server-sent events (``data: {...}`` lines ending with ``data: [DONE]``).
``http.client`` rather than ``urllib`` so that a local server is never reached through a
proxy from the environment.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

from .base import LLMError


class OpenAIChat:
    """``POST {url}/chat/completions``; ``streaming=False`` for servers that cannot stream."""

    name = "openai"

    def __init__(self, url: str, model: str = "", api_key: str = "", streaming: bool = True,
                 context: int = 2048) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LLMError(f"LLM URL {url!r} is not an http(s) URL; set --llm-url or RAG_LLM_URL, "
                           "e.g. http://127.0.0.1:11434/v1")
        self.url = url.rstrip("/")
        self._parts = parts
        self.model = model
        self.api_key = api_key
        self.streaming = streaming
        self.context = context

    def stream(self, messages: list[dict], max_tokens: int, timeout: float) -> Iterator[str]:
        body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "stream": self.streaming}
        if self.model:
            body["model"] = self.model
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        endpoint = f"{self.url}/chat/completions"
        cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        # The timeout bounds the connect and every read: a server silent that long is given up on.
        conn = cls(self._parts.hostname, self._parts.port, timeout=timeout)
        try:
            try:
                conn.request("POST", self._parts.path + "/chat/completions", json.dumps(body).encode(), headers)
                resp = conn.getresponse()
                if resp.status != 200:
                    detail = resp.read(300).decode("utf-8", "replace").strip()
                    raise LLMError(f"{endpoint} answered HTTP {resp.status} {resp.reason}"
                                   + (f": {detail}" if detail else ""))
                if "text/event-stream" in resp.getheader("Content-Type", ""):
                    yield from _events(resp, endpoint)
                else:  # not streaming, by request or because the server ignores "stream"
                    yield _message(_json(resp.read(), endpoint), endpoint)
            except TimeoutError:
                raise LLMError(f"{endpoint} sent nothing for {timeout:g}s (raise --llm-timeout or RAG_LLM_TIMEOUT)") from None
            except (ConnectionError, OSError, http.client.HTTPException) as e:
                raise LLMError(f"cannot reach {endpoint}: {e}; is the server running?") from None
        finally:
            conn.close()


def _events(resp: http.client.HTTPResponse, endpoint: str) -> Iterator[str]:
    for raw in resp:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue  # blank separators, ": comments", "event:" lines
        data = line[5:].strip()
        if data == "[DONE]":
            return
        chunk = _json(data.encode(), endpoint)
        choices = chunk.get("choices") or [{}]
        text = (choices[0].get("delta") or {}).get("content")
        if text:
            yield text


def _json(raw: bytes, endpoint: str) -> dict:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise LLMError(f"{endpoint} did not answer with JSON: {raw[:200]!r}") from None
    if not isinstance(obj, dict):
        raise LLMError(f"{endpoint} answered with unexpected JSON: {str(obj)[:200]}")
    if obj.get("error"):
        err = obj["error"]
        raise LLMError(f"{endpoint} reported an error: {err.get('message', err) if isinstance(err, dict) else err}")
    return obj


def _message(obj: dict, endpoint: str) -> str:
    try:
        return obj["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise LLMError(f"{endpoint} answered without choices[0].message.content: {str(obj)[:200]}") from None
