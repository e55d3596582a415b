from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from parley.config import ModelConfig, Settings
from parley.models.registry import ModelRegistry
from parley.workflow.definition import WorkflowDefinition, parse_workflow
from parley.workflow.events import NodeProgress, WorkflowEvent, WorkflowMessage
from parley.workflow.runner import RunState, SystemValues, WorkflowRunner
from parley.workflow.seams import Passage, RegistryChat, WorkflowRuntime
from tests.support.processes import ScriptedModel


def workflow(text: str) -> WorkflowDefinition:
    return parse_workflow(yaml.safe_load(text))


class WordRetriever:
    """A tiny knowledge base (the retriever seam's stand-in: the knowledge service is an
    outside part here): passages sharing a word with the query, filtered by labels."""

    def __init__(self, passages: list[tuple[str, dict[str, str]]]) -> None:
        self.passages = passages
        self.calls: list[dict[str, Any]] = []

    async def retrieve(self, query: str, *, labels: dict[str, list[str]], top_k: int) -> list[Passage]:
        self.calls.append({"query": query, "labels": labels, "top_k": top_k})
        words = set(query.lower().split())
        found = []
        for content, attrs in self.passages:
            if any(attrs.get(k) not in v for k, v in labels.items()):
                continue
            score = len(words & set(content.lower().split()))
            if score:
                found.append(Passage(content=content, title=attrs.get("title", ""), score=float(score), metadata=attrs))
        return sorted(found, key=lambda p: -p.score)[:top_k]


@dataclass
class Outcome:
    state: RunState
    events: list[WorkflowEvent] = field(default_factory=list)

    def node(self, node_id: str) -> dict[str, Any]:
        """The last current_node of `node_id`."""
        records = [e.record for e in self.events if isinstance(e, NodeProgress) and e.record.node_id == node_id]
        assert records, f"node {node_id} never ran"
        return records[-1].current_node()

    def ran(self) -> list[str]:
        return [e.record.node_id for e in self.events if isinstance(e, NodeProgress) and e.record.status == 2]

    def messages(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, WorkflowMessage)]

    def last(self) -> WorkflowEvent:
        return self.events[-1]


@pytest.fixture(scope="session")
def registry(scripted_model: ScriptedModel) -> ModelRegistry:
    settings = Settings(default_model="scripted", local_model=False, models=[
        ModelConfig(name="scripted", base_url=scripted_model.base_url, model="scripted"),
        ModelConfig(name="gpt-4o-mini", base_url=scripted_model.base_url, model="scripted"),
    ])
    return ModelRegistry(settings)


@pytest.fixture
def runtime(registry: ModelRegistry, model: ScriptedModel) -> WorkflowRuntime:
    return WorkflowRuntime(chat=RegistryChat(registry, "scripted"), node_timeout=20)


@pytest.fixture
async def close_models(registry: ModelRegistry):
    yield
    await registry.aclose()


class Driver:
    def __init__(self, runtime: WorkflowRuntime) -> None:
        self.runner = WorkflowRunner(runtime)

    async def run(self, definition: WorkflowDefinition, query: str = "hello", inputs: dict[str, Any] | None = None,
                  **system: Any) -> Outcome:
        state = self.runner.start(definition, SystemValues(query=query, **system), inputs)
        return await self.go(definition, state)

    async def resume(self, definition: WorkflowDefinition, stored: str, question: str) -> Outcome:
        """Resumes from the stored (JSON) state, as the engine will after the next question."""
        state = self.runner.resume(RunState.model_validate_json(stored), question)
        return await self.go(definition, state)

    async def go(self, definition: WorkflowDefinition, state: RunState) -> Outcome:
        outcome = Outcome(state)
        async for event in self.runner.stream(definition, state):
            outcome.events.append(event)
        return outcome


@pytest.fixture
def driver(runtime: WorkflowRuntime, close_models: None) -> Driver:
    return Driver(runtime)


class LoopbackServer:
    """A small ASGI app served on loopback inside the test's event loop (an outside service)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from tests.support.processes import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     loop="asyncio", lifespan="off"))

    async def __aenter__(self) -> "LoopbackServer":
        import asyncio

        self._task = asyncio.ensure_future(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        await self._task
