"""Any OpenAI-compatible chat endpoint (DeepSeek, Hunyuan, vLLM, Ollama, llama.cpp server),
through the official `openai` SDK.

The SDK authenticates and sends the request and maps HTTP errors to its exceptions. Two
of its conveniences are skipped on this hot path, as the profile showed them to cost more
than the rest of Parley's streaming path together: the typed request-parameter transform
(the body is built here) and the typed chunk objects (lines are parsed with orjson). The
body is read to its end, even past `[DONE]`, so that the connection returns to the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import orjson

from parley.config import ModelConfig
from parley.models.base import ChatChunk, ChatMessage, ModelError, Usage
from parley.models.thinking import ThinkTagSplitter


class OpenAICompatibleModel:
    def __init__(self, config: ModelConfig) -> None:
        if not config.base_url:
            raise ValueError(f"model {config.name!r}: base_url is required for an OpenAI-compatible endpoint")
        self.config = config
        read = max(config.first_token_timeout, config.idle_timeout) + 5
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key() or "none",
            max_retries=0,  # a retried stream would repeat text already sent to the visitor
            timeout=httpx2.Timeout(read, connect=10.0),
            # The SDK's aiohttp transport: measured at about half the CPU per streamed request of
            # its default httpx transport. One upstream stream per turn in progress, so the pool
            # is unbounded (0 is aiohttp's "no limit"; None would mean its default of 100).
            http_client=openai.DefaultAioHttpClient(
                limits=httpx2.Limits(max_connections=0, max_keepalive_connections=512),
            ),
        )

    def _params(self, messages: list[ChatMessage]) -> dict[str, Any]:
        config = self.config
        params: dict[str, Any] = {
            "model": config.upstream_model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
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
        try:
            response = await self._client.post(
                "/chat/completions", cast_to=httpx2.Response, body=self._params(messages), stream=True
            )
            try:
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        continue  # read on to the end of the body: the connection is then reused
                    chunk = orjson.loads(data)
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
            finally:
                await response.aclose()  # at once when the turn stops: the model sees the connection close
        except (ModelError, asyncio.CancelledError, GeneratorExit):
            raise
        except openai.APITimeoutError as exc:
            raise ModelError("timeout", f"model {config.name} timed out") from exc
        except openai.APIStatusError as exc:
            raise ModelError("upstream", f"model {config.name} answered HTTP {exc.status_code}") from exc
        except openai.APIConnectionError as exc:
            raise ModelError("unavailable", f"model {config.name} is unreachable: {exc}") from exc
        except Exception as exc:  # a broken connection or a malformed chunk mid-stream
            raise ModelError("dropped", f"model {config.name} stream broke off: {type(exc).__name__}: {exc}") from exc
        if splitter is not None:
            reasoning, text = splitter.flush()
            if text or reasoning:
                yield ChatChunk(text=text, reasoning=reasoning)
        if not finished:
            raise ModelError("dropped", f"model {config.name} stream ended without a finish reason")

    async def aclose(self) -> None:
        await self._client.close()


def _message(error: Any) -> str:
    return str(error.get("message", error)) if isinstance(error, dict) else str(error)
