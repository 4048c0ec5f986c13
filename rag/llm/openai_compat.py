"""Any OpenAI-compatible chat-completions server (Ollama, llama-server, vLLM), through the ``openai`` SDK.

The SDK does the HTTP and decodes the server-sent events; this module fixes its settings for
a local server (no retries, no proxy from the environment, one timeout for the connect and
every read) and turns each of its exceptions into an ``LLMError`` that names the URL.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from rag.llm.base import LLMError

# The SDK refuses to start without a key; servers that need none ignore the header.
PLACEHOLDER_KEY = "not-needed"

# The exceptions of the HTTP library under the SDK (httpx2 from openai 3, httpx before). The SDK turns
# them into its own, except while reading a body it left unread: a plain JSON reply to a streamed
# request, or the body of an error status on a streamed request.
_HTTP = [m for m in (sys.modules.get("httpx2"), sys.modules.get("httpx")) if m is not None]
_HTTP_TIMEOUTS = tuple(m.TimeoutException for m in _HTTP)
_HTTP_ERRORS = tuple(m.RequestError for m in _HTTP)


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
        self.model = model
        self.api_key = api_key
        self.streaming = streaming
        self.context = context

    def _client(self, timeout: float) -> openai.OpenAI:
        # The timeout bounds the connect and every read: a server silent that long is given up on.
        # No retries (each would start the wait again) and no proxy: a local server is reached directly.
        return openai.OpenAI(base_url=self.url, api_key=self.api_key or PLACEHOLDER_KEY, timeout=timeout,
                             max_retries=0, http_client=openai.DefaultHttpxClient(trust_env=False, timeout=timeout))

    def stream(self, messages: list[dict], max_tokens: int, timeout: float) -> Iterator[str]:
        endpoint = f"{self.url}/chat/completions"
        answered = False  # whether the server has sent the status line of its reply
        try:
            with self._client(timeout) as client, client.chat.completions.with_streaming_response.create(
                    model=self.model or openai.NOT_GIVEN, messages=messages, max_tokens=max_tokens,
                    temperature=0.0, stream=self.streaming) as resp:
                answered = True
                if "text/event-stream" in resp.headers.get("Content-Type", ""):
                    events = openai.Stream(cast_to=ChatCompletionChunk, response=resp.http_response, client=client)
                    for chunk in events:
                        text = _delta(chunk, endpoint)
                        if text:
                            yield text
                else:  # not streaming, by request or because the server ignores "stream"
                    yield _message(_json(resp.read(), endpoint), endpoint)
        except LLMError:
            raise
        except (openai.APITimeoutError, *_HTTP_TIMEOUTS):
            raise LLMError(f"{endpoint} sent nothing for {timeout:g}s (raise --llm-timeout or RAG_LLM_TIMEOUT)") from None
        except (openai.APIConnectionError, *_HTTP_ERRORS) as e:
            sdk = isinstance(e, openai.APIConnectionError)  # else the HTTP library's own: a body was being read
            reason = e.__cause__ if sdk and e.__cause__ else e
            if answered or not sdk:
                raise LLMError(f"{endpoint} broke off its reply: {reason}") from None
            raise LLMError(f"cannot reach {endpoint}: {reason}; is the server running?") from None
        except openai.APIStatusError as e:
            raise LLMError(self._status_message(e, endpoint)) from None
        except openai.APIError as e:  # an error event in the stream
            raise LLMError(f"{endpoint} reported an error: {e.message}") from None
        except openai.OpenAIError as e:
            raise LLMError(f"{endpoint} failed: {e}") from None
        except json.JSONDecodeError as e:  # a stream event whose data is not JSON
            raise LLMError(f"{endpoint} did not answer with JSON: {e.doc[:200]!r}") from None
        except UnicodeDecodeError:
            raise LLMError(f"{endpoint} sent a stream that is not UTF-8 text") from None
        except Exception as e:  # anything else the SDK lets through: a warning, never a traceback
            raise LLMError(f"{endpoint} failed: {type(e).__name__}: {e}") from None

    def _status_message(self, e: openai.APIStatusError, endpoint: str) -> str:
        """``HTTP 404 Not Found: <the server's message>``, with a hint for the usual causes."""
        body = e.body  # the JSON "error" object, the JSON body, or the text
        detail = body.get("message", body) if isinstance(body, dict) else body
        detail = str(detail if detail is not None else "").strip()[:300]
        status = f"HTTP {e.status_code} {e.response.reason_phrase}".strip() + (f": {detail}" if detail else "")
        if e.status_code in (400, 404) and "model" in detail.lower():
            if self.model:
                return (f"{endpoint} does not know model {self.model!r} ({status}); "
                        "check --llm-model or RAG_LLM_MODEL")
            return f"{endpoint} needs a model name ({status}); set --llm-model or RAG_LLM_MODEL"
        if e.status_code == 404 and not self.url.endswith("/v1"):
            return f"{endpoint} answered {status}; is {self.url} the API's base URL? (most end in /v1)"
        if e.status_code in (401, 403):
            return f"{endpoint} answered {status}; set RAG_LLM_API_KEY"
        return f"{endpoint} answered {status}"


def _delta(chunk: object, endpoint: str) -> str:
    """The text of one streamed chunk; "" for chunks without any (role, usage, keep-alive)."""
    if not isinstance(chunk, ChatCompletionChunk):
        raise LLMError(f"{endpoint} answered with unexpected JSON: {str(chunk)[:200]}")
    choices = getattr(chunk, "choices", None)
    if not isinstance(choices, list) or not choices:
        return ""
    text = getattr(getattr(choices[0], "delta", None), "content", None)
    return text if isinstance(text, str) else ""


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
        content = ChatCompletion.construct(**obj).choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        content = False
    if content is None or isinstance(content, str):
        return content or ""
    raise LLMError(f"{endpoint} answered without choices[0].message.content: {str(obj)[:200]}")
