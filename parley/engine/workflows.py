"""Workflows inside the turn: which run a question starts or resumes, the runtime its nodes
get (the application's model, the operator's sandbox and HTTP settings), and the run saved
when it pauses or ends. The turn (turn.py) streams the run and renders its events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parley.config import WorkflowServerSettings
from parley.models.registry import ModelRegistry
from parley.store.workflows import WorkflowRunRepository, WorkflowRunRow
from parley.workflow.definition import WorkflowDefinition, parse_workflow
from parley.workflow.events import NodeRecord
from parley.workflow.runner import RunState, SystemValues, WorkflowRunner
from parley.workflow.seams import Passage, RegistryChat, runtime_from_settings

RUN_STATUSES = ("suspended", "running", "finished", "failed", "stopped", "abandoned")
"""A stored run's status: the runner's own (RunState.status), or `abandoned` (the session's
application moved to another workflow while the run waited). The admin API filters by them."""

if TYPE_CHECKING:
    from parley.engine.sources import KnowledgeSource


class KnowledgeRetriever:
    """The workflow's Retriever over the application's knowledge base: segments only (Q&A
    pairs are the knowledge Q&A node's business through its model), within the node's labels."""

    def __init__(self, knowledge: KnowledgeSource, app_id: int, settings: Any) -> None:
        self._knowledge = knowledge
        self._app_id = app_id
        self._settings = settings

    async def retrieve(self, query: str, *, labels: dict[str, list[str]], top_k: int) -> list[Passage]:
        settings = self._settings.model_copy(update={"qa_enabled": False, "top_k": top_k, "enabled": True})
        visitor_labels = [{"name": name, "values": values} for name, values in labels.items()]
        scope = self._knowledge.scope({}, visitor_labels, settings)
        resolution = await self._knowledge.resolve(self._app_id, query, scope, settings)
        return [Passage(content=p.text, title=p.doc_name, score=p.similarity,
                        metadata={"doc_id": str(p.doc_id), "segment_id": str(p.segment_id), "url": p.url})
                for p in resolution.passages]


@dataclass(slots=True)
class WorkflowTurn:
    """One turn's run: a new one, or the session's paused one resumed by this question."""

    definition: WorkflowDefinition
    runner: WorkflowRunner
    state: RunState
    app_id: int
    session_id: str
    release_version: int | None
    resumed: bool
    runs: WorkflowRunRepository

    def work_flow(self, record: NodeRecord | None = None, option_cards: list[str] | None = None,
                  outputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """ADP's work_flow object."""
        return {
            "workflow_name": self.definition.name,
            "workflow_id": self.definition.name,
            "workflow_run_id": self.state.run_id,
            "option_cards": option_cards or [],
            "outputs": [f"{k}: {v}" for k, v in (outputs or {}).items()],
            "current_node": record.current_node() if record is not None else None,
        }

    async def save(self, record_id: int) -> None:
        state = self.state
        await self.runs.save(WorkflowRunRow(
            id=int(state.run_id), app_id=self.app_id, session_id=self.session_id, workflow_name=state.workflow_name,
            status=state.status, state=state.model_dump(mode="json"), error=state.error, record_id=record_id,
            release_version=self.release_version,
        ))

    async def give_back(self) -> None:
        """The question that resumed the run was refused before the run went on: the run waits again."""
        if self.resumed:
            await self.runs.unclaim(int(self.state.run_id))


class WorkflowHost:
    """Starts and resumes runs for the engine."""

    def __init__(self, settings: WorkflowServerSettings, runs: WorkflowRunRepository, models: ModelRegistry,
                 knowledge: KnowledgeSource | None = None) -> None:
        self.settings = settings
        self.runs = runs
        self.models = models
        self.knowledge = knowledge
        self._definitions: dict[int, dict[str, WorkflowDefinition]] = {}  # by release id: releases never change

    def definitions(self, release_id: int, data: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, WorkflowDefinition]:
        """The release's workflows by name (the application's `workflow` and `workflows`)."""
        found = self._definitions.get(release_id)
        if found is None:
            found = self._definitions[release_id] = {d.name: d for d in map(parse_workflow, [data, *others])}
        return found

    async def turn(
        self, release_id: int, release_version: int | None, data: dict[str, Any], *, app_id: int, session_id: str,
        visitor_id: str, question: str, model: str | None, inputs: dict[str, str], knowledge_settings: Any = None,
        workflows: list[dict[str, Any]] | None = None,
    ) -> WorkflowTurn:
        library = self.definitions(release_id, data, workflows or [])
        definition = library[data["name"]]
        retriever = (KnowledgeRetriever(self.knowledge, app_id, knowledge_settings)
                     if self.knowledge is not None and knowledge_settings is not None else None)
        runtime = runtime_from_settings(self.settings, chat=RegistryChat(self.models, model), retriever=retriever,
                                        workflows=library.get)
        runner = WorkflowRunner(runtime)
        system = SystemValues(query=question, visitor=visitor_id, session=session_id)
        stale_ms = int(self.settings.claim_timeout * 1000)
        waiting = await self.runs.waiting(app_id, session_id)
        if waiting is not None and waiting.workflow_name == definition.name:
            if not await self.runs.claim(waiting.id, stale_ms):
                raise RunBusy(f"the session's workflow run {waiting.id} is already answering another question")
            state = runner.resume(RunState.model_validate(waiting.state), question, system)
            return WorkflowTurn(definition, runner, state, app_id, session_id, release_version, True, self.runs)
        if waiting is not None:  # the application now runs another workflow: the old run is over
            await self.runs.close_waiting(app_id, session_id, stale_ms)
        state = runner.start(definition, system, inputs)
        return WorkflowTurn(definition, runner, state, app_id, session_id, release_version, False, self.runs)


class RunBusy(Exception):
    """Another question of the session resumed its paused run first (ADP's busy error, 460011:
    the client asks again once the answer in progress has ended)."""
