"""Any OpenAI-compatible chat endpoint (DeepSeek, Hunyuan, vLLM, Ollama, llama.cpp server),
through the official `openai` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai

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
            timeout=httpx.Timeout(read, connect=10.0),
        )

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[ChatChunk]:
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
        splitter = ThinkTagSplitter() if config.think_tags else None
        finished = False
        try:
            stream = await self._client.chat.completions.create(**params)
        except openai.APITimeoutError as exc:
            raise ModelError("timeout", f"model {config.name} timed out") from exc
        except openai.APIStatusError as exc:
            raise ModelError("upstream", f"model {config.name} answered HTTP {exc.status_code}") from exc
        except (openai.APIError, httpx.HTTPError) as exc:
            raise ModelError("unavailable", f"model {config.name} is unreachable: {exc}") from exc
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    yield ChatChunk(usage=Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0))
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                reasoning = _reasoning_of(delta) if config.reasoning else ""
                text = delta.content or ""
                if splitter is not None and text:
                    tag_reasoning, text = splitter.feed(text)
                    reasoning += tag_reasoning
                if text or reasoning:
                    yield ChatChunk(text=text, reasoning=reasoning)
                if choice.finish_reason:
                    finished = True
            if splitter is not None:
                reasoning, text = splitter.flush()
                if text or reasoning:
                    yield ChatChunk(text=text, reasoning=reasoning)
        except openai.APITimeoutError as exc:
            raise ModelError("timeout", f"model {config.name} timed out") from exc
        except (openai.APIError, httpx.HTTPError) as exc:
            raise ModelError("dropped", f"model {config.name} stream broke off: {exc}") from exc
        finally:
            await stream.close()  # closes the HTTP stream at once when the turn stops early
        if not finished:
            raise ModelError("dropped", f"model {config.name} stream ended without a finish reason")

    async def aclose(self) -> None:
        await self._client.close()


def _reasoning_of(delta: Any) -> str:
    extra = delta.model_extra or {}
    return extra.get("reasoning_content") or extra.get("reasoning") or ""
