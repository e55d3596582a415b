"""Any OpenAI-compatible chat endpoint (DeepSeek, Hunyuan, vLLM, Ollama, llama.cpp server),
streamed with aiohttp.

This is Parley's hottest path: every token of every answer passes through it. The openai
SDK was used here first; profiles under load showed its request building and its httpx
response layers costing more than the rest of Parley's streaming path together (its typed
chunks even more), so the chat stream speaks the small, stable wire format itself: one POST
with `stream: true`, `data:` lines of JSON, `[DONE]`. The body is read to its end, even past
`[DONE]`, so that the connection goes back to the pool; a stopped turn closes it at once, so
the model sees the client leave.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from parley.config import ModelConfig
from parley.models.base import ChatChunk, ChatMessage, ModelError, Usage
from parley.models.thinking import ThinkTagSplitter

ERROR_BODY_LIMIT = 4096
"""How much of an error response is read for the message."""


class OpenAICompatibleModel:
    def __init__(self, config: ModelConfig) -> None:
        if not config.base_url:
            raise ValueError(f"model {config.name!r}: base_url is required for an OpenAI-compatible endpoint")
        self.config = config
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        key = config.api_key()
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        # No read timeout here: callers enforce the first-token and idle timeouts (a deadline
        # moved at most once a second), where aiohttp's sock_read would re-arm a timer for
        # every chunk of every stream.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=None)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # One upstream stream per turn in progress: the pool has no limit.
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()  # a model sets none
            )
        return self._session

    def _params(self, messages: list[ChatMessage]) -> dict[str, Any]:
        config = self.config
        params: dict[str, Any] = {
            "model": config.upstream_model,
            "messages": [_message_json(m) for m in messages],
            "stream": True,
        }
        if config.options.get("stream_usage", True):
            params["stream_options"] = {"include_usage": True}
        if config.max_output_tokens:
            params["max_tokens"] = config.max_output_tokens
        if config.temperature is not None:
            params["temperature"] = config.temperature
        return params

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[ChatChunk]:
        config = self.config
        splitter = ThinkTagSplitter() if config.think_tags else None
        finished = False
        read_to_end = False
        try:
            response = await self._client().post(
                self._url, data=orjson.dumps(self._params(messages)), headers=self._headers
            )
        except asyncio.TimeoutError as exc:
            raise ModelError("timeout", f"model {config.name} timed out") from exc
        except aiohttp.ClientError as exc:
            raise ModelError("unavailable", f"model {config.name} is unreachable: {exc}") from exc
        try:
            if response.status >= 400:
                detail = (await response.content.read(ERROR_BODY_LIMIT)).decode("utf-8", "replace")
                raise ModelError("upstream", f"model {config.name} answered HTTP {response.status}: {detail[:300]}")
            pending = b""
            async for data in response.content.iter_any():
                lines = (pending + data).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    chunk = _parse_line(line)
                    if chunk is None:
                        continue
                    if chunk.get("error"):
                        raise ModelError("upstream", f"model {config.name} reported: {_message(chunk['error'])}")
                    usage = chunk.get("usage")
                    if usage:
                        yield ChatChunk(usage=Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0))
                    choices = chunk.get("choices")
                    if not choices:
                        continue
                    choice = choices[0]
                    delta = choice.get("delta") or {}
                    reasoning = (delta.get("reasoning_content") or delta.get("reasoning") or "") if config.reasoning else ""
                    text = delta.get("content") or ""
                    if splitter is not None and text:
                        tag_reasoning, text = splitter.feed(text)
                        reasoning += tag_reasoning
                    if text or reasoning:
                        yield ChatChunk(text=text, reasoning=reasoning)
                    if choice.get("finish_reason"):
                        finished = True
            read_to_end = True
        except (ModelError, asyncio.CancelledError, GeneratorExit):
            raise
        except asyncio.TimeoutError as exc:
            raise ModelError("timeout", f"model {config.name} timed out") from exc
        except Exception as exc:  # a broken connection or a malformed chunk mid-stream
            raise ModelError("dropped", f"model {config.name} stream broke off: {type(exc).__name__}: {exc}") from exc
        finally:
            if read_to_end:
                response.release()  # the connection goes back to the pool
            else:
                response.close()  # at once when the turn stops: the model sees the connection close
        if splitter is not None:
            reasoning, text = splitter.flush()
            if text or reasoning:
                yield ChatChunk(text=text, reasoning=reasoning)
        if not finished:
            raise ModelError("dropped", f"model {config.name} stream ended without a finish reason")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _message_json(message: ChatMessage) -> dict[str, Any]:
    """A message as the chat completions API takes it: images as `image_url` parts with a data URL."""
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    for image in message.images:
        url = f"data:{image.mime};base64,{base64.b64encode(image.data).decode()}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"role": message.role, "content": parts}


def _parse_line(line: bytes) -> dict[str, Any] | None:
    """The JSON of one `data:` line; None for other lines, comments and `[DONE]`."""
    if not line.startswith(b"data:"):
        return None
    data = line[5:].strip()
    if not data or data == b"[DONE]":
        return None
    chunk = orjson.loads(data)
    return chunk if isinstance(chunk, dict) else None


def _message(error: Any) -> str:
    return str(error.get("message", error)) if isinstance(error, dict) else str(error)
