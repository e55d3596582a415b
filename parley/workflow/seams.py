"""What a run needs from the rest of Parley, as small Protocols: a chat model, a retriever,
a code sandbox, other workflows. The engine fills them in; this package imports no engine
and no knowledge code."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from parley.models.base import ChatMessage

if TYPE_CHECKING:
    from parley.models.registry import ModelRegistry
    from parley.workflow.definition import WorkflowDefinition
    from parley.workflow.sandbox import Sandbox


@dataclass(slots=True)
class ModelAnswer:
    text: str
    model_name: str
    first_token_ms: int = 0
    total_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class ChatFunction(Protocol):
    """One complete model answer; `model` None means the application's model."""

    async def __call__(self, model: str | None, messages: list[ChatMessage]) -> ModelAnswer: ...


@dataclass(slots=True)
class Passage:
    content: str
    title: str = ""
    score: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


class Retriever(Protocol):
    """The application's knowledge base, searched within a label scope."""

    async def retrieve(self, query: str, *, labels: dict[str, list[str]], top_k: int) -> list[Passage]: ...


@dataclass(slots=True)
class HTTPPolicy:
    allow_private: bool = False
    """Let HTTP nodes reach private, loopback and link-local addresses (off: only public ones)."""
    timeout: float = 10.0


@dataclass(slots=True)
class WorkflowRuntime:
    """Everything a run may call out to. A seam left None disables the nodes that need it
    (they fail with a message saying so)."""

    chat: ChatFunction | None = None
    retriever: Retriever | None = None
    sandbox: Sandbox | None = None
    """None: code nodes are off (the operator enables them)."""
    http: HTTPPolicy = field(default_factory=HTTPPolicy)
    workflows: Callable[[str], WorkflowDefinition | None] | None = None
    """Finds the workflow a workflow node names."""
    node_timeout: float = 60.0
    """Seconds a node may take unless its `timeout` says otherwise."""


class RegistryChat:
    """A ChatFunction over Parley's model registry: streams the configured model and collects
    the answer, timing the first token."""

    def __init__(self, registry: ModelRegistry, default_model: str | None = None) -> None:
        self._registry = registry
        self._default = default_model

    async def __call__(self, model: str | None, messages: list[ChatMessage]) -> ModelAnswer:
        name = model or self._default or self._registry.default_name
        if name is None or self._registry.config(name) is None:
            raise LookupError(f"model {name!r} is not configured")
        started = time.perf_counter()
        first = 0.0
        parts: list[str] = []
        usage = None
        async for chunk in self._registry.get(name).stream(messages):
            if chunk.text:
                if not parts:
                    first = time.perf_counter()
                parts.append(chunk.text)
            if chunk.usage is not None:
                usage = chunk.usage
        ended = time.perf_counter()
        return ModelAnswer(
            text="".join(parts), model_name=name,
            first_token_ms=int(((first or ended) - started) * 1000), total_ms=int((ended - started) * 1000),
            input_tokens=usage.input_tokens if usage else 0, output_tokens=usage.output_tokens if usage else 0,
        )


def runtime_from_settings(
    settings: Any, chat: ChatFunction | None = None, retriever: Retriever | None = None,
    workflows: Callable[[str], WorkflowDefinition | None] | None = None,
) -> WorkflowRuntime:
    """The runtime the operator's `[workflows]` settings (config.WorkflowServerSettings) allow."""
    import os

    from parley.workflow.sandbox import HTTPSandbox, LocalProcessSandbox

    sandbox: Sandbox | None = None
    if settings.code_enabled:
        if settings.sandbox_url:
            key = os.environ.get(settings.sandbox_api_key_env, "") if settings.sandbox_api_key_env else ""
            sandbox = HTTPSandbox(settings.sandbox_url, key)
        else:
            sandbox = LocalProcessSandbox(memory_mb=settings.code_memory_mb,
                                          require_network_isolation=settings.code_require_network_isolation)
    return WorkflowRuntime(
        chat=chat, retriever=retriever, sandbox=sandbox, workflows=workflows, node_timeout=settings.node_timeout,
        http=HTTPPolicy(allow_private=settings.http_allow_private, timeout=settings.http_timeout),
    )
