"""Service `lkeap`, version 2024-05-22: ChatCompletions, the plain chat completion adp-chat-client
uses to title a new conversation.

`{Model, Messages, Stream}` is answered by a configured model: the one `Model` names when it is a
configured model's name, else `[cloud_api] lkeap_model`, else the server's default model (Tencent's
own names, such as `deepseek-v3-0324`, thus reach the operator's choice). With `Stream` the answer is
an SSE stream (`Content-Type: text/event-stream`): one `data:` line per chunk, each with
`Choices[0].Delta.Content` (empty on reasoning chunks and on the last one, which carries
`FinishReason` and `Usage`), and no terminator: the official SDK's reader and the client's own stop
at the end of the body. The client keeps reading a streaming call whose answer is not
`text/event-stream`, so only errors known before the first chunk are a JSON `Error` (which the SDK
raises); a model that fails mid-stream ends the stream with `data: {"Response": {"Error": ...}}`,
which the client raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import StreamingResponse

from parley.config import ModelConfig
from parley.faces.adp.cloud_actions import Action
from parley.faces.adp.cloud_params import CloudApiError, Params, invalid_value
from parley.models import ChatChunk, ChatMessage, ModelError, Usage
from parley.services import Services

log = logging.getLogger(__name__)

SERVICE = "lkeap"
VERSION = "2024-05-22"

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 1000
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Content-Type set here, not as media_type: Starlette would add `; charset=utf-8`, and both the SDK
and the client compare the header with `text/event-stream` exactly."""


def _model(services: Services, requested: str) -> ModelConfig:
    name = requested if services.models.config(requested) else (
        services.settings.cloud_api.lkeap_model or services.models.default_name
    )
    config = services.models.config(name)
    if config is None:
        raise CloudApiError("FailedOperation", f"The model {name!r} chosen for ChatCompletions is not configured.")
    return config


def _messages(params: Params) -> list[ChatMessage]:
    messages = []
    for index, item in enumerate(params.objects("Messages")):
        role = item.string("Role", required=True, max_len=16)
        if role not in ROLES:
            raise invalid_value(f"Messages[{index}].Role", "must be system, user or assistant")
        messages.append(ChatMessage(role, item.string("Content")))  # type: ignore[arg-type]
    if not messages:
        raise CloudApiError("MissingParameter", "The request is missing a required parameter `Messages`.")
    if len(messages) > MAX_MESSAGES:
        raise invalid_value("Messages", f"must have at most {MAX_MESSAGES} items")
    return messages


async def _chunks(services: Services, config: ModelConfig, messages: list[ChatMessage]) -> AsyncIterator[ChatChunk]:
    """The model's chunks, within its first-token and idle timeouts (TimeoutError past them)."""
    loop = asyncio.get_running_loop()
    stream = services.models.get(config.name).stream(messages)
    try:
        async with asyncio.timeout(config.first_token_timeout) as deadline:
            async for chunk in stream:
                deadline.reschedule(loop.time() + config.idle_timeout)
                yield chunk
    finally:
        await stream.aclose()


async def _read_into(chunks: AsyncIterator[ChatChunk], queue: asyncio.Queue[ChatChunk | Exception | None]) -> None:
    """Puts each chunk on the queue, then None at the end or the model's failure."""
    try:
        async for chunk in chunks:
            await queue.put(chunk)
    except Exception as exc:  # noqa: BLE001 - whatever ends the stream reaches the waiting side
        await queue.put(exc)
    else:
        await queue.put(None)


def _usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"PromptTokens": 0, "CompletionTokens": 0, "TotalTokens": 0}
    return {"PromptTokens": usage.input_tokens, "CompletionTokens": usage.output_tokens,
            "TotalTokens": usage.total_tokens}


def _failure(exc: Exception) -> CloudApiError:
    if isinstance(exc, TimeoutError):
        return CloudApiError("FailedOperation", "The model did not answer in time.")
    if isinstance(exc, ModelError):
        return CloudApiError("FailedOperation", f"The model could not answer: {exc.message}.")
    log.error("ChatCompletions failed", exc_info=exc)
    return CloudApiError("InternalError", "An internal error occurred.")


async def chat_completions(params: Params, services: Services) -> dict[str, Any] | StreamingResponse:
    requested = params.string("Model", required=True, max_len=128)
    messages = _messages(params)
    stream = params.boolean("Stream")
    params.object("Thinking").string("Type", max_len=16)
    params.boolean("EnableSearch")
    config = _model(services, requested)
    created = int(time.time())
    request_id = str(uuid.uuid4())
    chunks = _chunks(services, config, messages)
    if not stream:
        text, reasoning, usage = [], [], None
        try:
            async for chunk in chunks:
                text.append(chunk.text)
                reasoning.append(chunk.reasoning)
                usage = chunk.usage or usage
        except (ModelError, TimeoutError) as exc:
            raise _failure(exc) from None
        message = {"Role": "assistant", "Content": "".join(text), "ReasoningContent": "".join(reasoning)}
        return {"Created": created, "Id": request_id, "Model": requested, "Usage": _usage(usage),
                "Choices": [{"Index": 0, "FinishReason": "stop", "Message": message}]}
    # The model is read by a task of its own, so that its timeouts belong to one task while the
    # first chunk is awaited here (a failure then is a JSON error) and the rest by the response.
    queue: asyncio.Queue[ChatChunk | Exception | None] = asyncio.Queue()
    reader = asyncio.create_task(_read_into(chunks, queue))
    first = await queue.get()
    if isinstance(first, Exception):
        raise _failure(first)

    def data(chunk: ChatChunk | None, usage: Usage | None = None) -> bytes:
        delta = {"Role": "assistant", "Content": chunk.text if chunk else "",
                 "ReasoningContent": chunk.reasoning if chunk else ""}
        body: dict[str, Any] = {
            "Created": created, "Id": request_id, "Model": requested,
            "Choices": [{"Index": 0, "Delta": delta, "FinishReason": "" if chunk else "stop"}],
        }
        if chunk is None:
            body["Usage"] = _usage(usage)
        return b"data: " + orjson.dumps(body) + b"\n\n"

    async def events() -> AsyncIterator[bytes]:
        usage, item = None, first
        try:
            while isinstance(item, ChatChunk):
                usage = item.usage or usage
                if item.text or item.reasoning:
                    yield data(item)
                item = await queue.get()
        finally:
            reader.cancel()  # stops the model if the client went away; a no-op once it has ended
        if isinstance(item, Exception):
            error = _failure(item)
            failure = {"Response": {"Error": {"Code": error.code, "Message": error.message}, "RequestId": request_id}}
            yield b"data: " + orjson.dumps(failure) + b"\n\n"
        else:
            yield data(None, usage)

    return StreamingResponse(events(), headers=SSE_HEADERS)


ACTIONS: dict[str, Action] = {"ChatCompletions": chat_completions}  # type: ignore[dict-item]
