"""Applications: their definition, drafts, releases and the AppKey.

A draft can change freely; publishing freezes it as an immutable release. The dialogue
faces serve the latest release only, so edits reach visitors at the next publish.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from parley.knowledge.settings import KnowledgeSettings
from parley.search.settings import SearchAppSettings
from parley.store.apps import AppRepository, AppRow, PublishConflict, ReleaseRow
from parley.workflow.definition import WorkflowInvalid, models_used, parse_workflow, workflows_called
from parley.workflow.documents import read_workflow

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class StreamingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    throttle: int = Field(5, ge=1, le=1000)
    """Characters per packet when a request leaves `streaming_throttle` at 0 or out."""


class AppConfig(BaseModel):
    """An application as the operator writes it (YAML or the admin API)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    avatar: str = ""
    model: str | None = None
    """A configured model's name; none means the server's default model."""
    system_role: str = ""
    """The role prompt. `{{key}}` is replaced by the request's custom_variables[key]."""
    greeting: str = ""
    opening_questions: list[str] = Field(default_factory=list)
    unknown_reply: str = "Sorry, I cannot answer that question yet."
    busy_reply: str = "Too many people are asking right now; please try again in a moment."
    streaming: StreamingSettings = Field(default_factory=StreamingSettings)
    history_depth: int = Field(5, ge=0, le=100)
    """How many earlier question-and-answer pairs of the session go to the model."""
    concurrency: int = Field(20, ge=1, le=100_000)
    """Turns of this application in progress at once."""
    queue_timeout: float = Field(0.0, ge=0, le=60)
    """Seconds a turn over the concurrency limit waits in line for a slot."""
    busy_mode: Literal["error", "reply"] = "error"
    """When no slot comes: error 460011, or `busy_reply` as reply method 7."""
    max_streams: int = Field(1000, ge=1, le=1_000_000)
    """Open dialogue streams (connections) at once; more get 460031."""
    rate_limit: int | None = Field(None, ge=1)
    """Turns per minute for the whole application (none: no limit)."""
    visitor_rate_limit: int | None = Field(None, ge=1)
    """Turns per minute for one visitor (none: no limit)."""
    refusal_reply: str = "Sorry, I can't help with that."
    """The answer (reply method 4) when a question or an answer hits a sensitive word."""
    sensitive_words: list[str] = Field(default_factory=list)
    """This application's own sensitive words, checked with the global lists."""
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    """How answers draw on the knowledge base: Q&A pairs, retrieval, scoping by labels."""
    workflow: dict[str, Any] | None = None
    """The workflow that answers this application's questions (docs/workflows.md), in Parley's
    format; part of the configuration, so a draft's changes reach visitors at the next publish."""
    workflows: list[dict[str, Any]] = Field(default_factory=list)
    """Further workflows, run by the workflow nodes (type `workflow`, ADP NodeType 14) that name
    them; released with the application like `workflow`."""
    search: SearchAppSettings = Field(default_factory=SearchAppSettings)
    """Online search: on or off by default, which engine, how many results."""
    vision_model: str | None = None
    """The model that answers questions carrying images (a configured model with `vision`);
    none: the application's model, which sees them only if it has `vision` itself."""

    @field_validator("workflow")
    @classmethod
    def _workflow(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            return parse_workflow(value).to_data()
        except WorkflowInvalid as exc:
            raise ValueError(str(exc)) from None

    @field_validator("workflows")
    @classmethod
    def _workflows(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        parsed = []
        for index, data in enumerate(value):
            try:
                parsed.append(parse_workflow(data).to_data())
            except WorkflowInvalid as exc:
                name = data.get("name") if isinstance(data, dict) else None
                raise ValueError(f"{index} ({name!r}): {exc}" if name else f"{index}: {exc}") from None
        return parsed

    @model_validator(mode="after")
    def _calls_resolve(self) -> AppConfig:
        """Every workflow node names a workflow the application has, once each name."""
        problems = workflow_call_problems(self.workflow, self.workflows)
        if problems:
            raise ValueError("; ".join(map(str, problems)))
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit")
        return value


class AppError(Exception):
    """An application definition or operation the operator has to correct."""


@dataclass(frozen=True, slots=True)
class WorkflowProblem:
    """One thing wrong with an application's workflows: which workflow, node and field, and what."""

    workflow: str | None
    node: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = " ".join(filter(None, [
            f"workflow {self.workflow!r}" if self.workflow else "", f"node {self.node!r}" if self.node else "",
            f"field {self.field!r}" if self.field else "",
        ]))
        return f"{where}: {self.message}" if where else self.message


class WorkflowRejected(AppError):
    """An application's workflows do not validate; `problems` name workflow, node and field."""

    def __init__(self, problems: list[WorkflowProblem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


def workflow_call_problems(main: dict[str, Any] | None, others: list[dict[str, Any]]) -> list[WorkflowProblem]:
    """What is wrong between an application's workflows (already parsed): two of one name, a
    workflow node naming none of them, further workflows with no main one."""
    if main is None:
        return [WorkflowProblem(None, None, "workflows", "there are further workflows but no `workflow` to run them")] if others else []
    problems = []
    names = [main["name"]]
    for data in others:
        if data["name"] in names:
            problems.append(WorkflowProblem(data["name"], None, "name", "two of the application's workflows have this name"))
        names.append(data["name"])
    for data in [main, *others]:
        for node_id, called in workflows_called(parse_workflow(data)):
            if called not in names:
                problems.append(WorkflowProblem(data["name"], node_id, "workflow", f"no workflow named {called!r} in "
                                                f"the application (known: {', '.join(names)})"))
    return problems


@dataclass(frozen=True, slots=True)
class App:
    """An application with its draft and, once published, its latest release."""

    id: int
    app_key: str
    draft: AppConfig
    release: AppConfig | None
    release_version: int | None
    created_at: int
    updated_at: int
    release_id: int | None = None

    @property
    def name(self) -> str:
        return self.draft.name

    @property
    def published(self) -> bool:
        return self.release is not None

    @property
    def has_unpublished_changes(self) -> bool:
        return self.release != self.draft


class AppConflict(Exception):
    """An operation lost a race with concurrent ones on the same application; it may be retried."""


class ApplicationService:
    def __init__(
        self, repository: AppRepository, known_models: Callable[[], list[str]],
        known_search: Callable[[], list[str]] = list,
    ) -> None:
        self._repo = repository
        self._known_models = known_models
        self._known_search = known_search
        self._listeners: list[Callable[[], None]] = []
        self._announcers: list[Callable[[], Awaitable[None]]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Calls `listener` after every publish or delete, here or on another instance (caches
        of releases listen)."""
        self._listeners.append(listener)

    def share_changes(self, announce: Callable[[], Awaitable[None]]) -> None:
        """`announce()` tells the other instances of a publish or delete made here; each of them
        then calls `forget_cached`, so that all serve the new release at once."""
        self._announcers.append(announce)

    def forget_cached(self) -> None:
        """Has every cache of releases in this process forget (a change here or on another instance)."""
        for listener in self._listeners:
            listener()

    async def _changed(self) -> None:
        self.forget_cached()
        for announce in self._announcers:
            await announce()

    def validate(self, data: dict[str, Any]) -> AppConfig:
        if isinstance(data, dict):
            self._check_workflows(data.get("workflow"), data.get("workflows"))
        try:
            config = AppConfig.model_validate(data)
        except ValidationError as exc:
            raise AppError(_describe(exc)) from exc
        if config.model is not None and config.model not in self._known_models():
            raise AppError(f"model {config.model!r} is not configured (known: {', '.join(self._known_models())})")
        if config.search.provider is not None and config.search.provider not in self._known_search():
            known = ", ".join(self._known_search()) or "none"
            raise AppError(f"search.provider {config.search.provider!r} is not configured (known: {known})")
        if config.vision_model is not None and config.vision_model not in self._known_models():
            raise AppError(f"vision_model {config.vision_model!r} is not configured (known: {', '.join(self._known_models())})")
        return config

    def _check_workflows(self, workflow: Any, workflows: Any, *, models: dict[str, str] | None = None,
                         dify: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
        """An application's workflows as Parley data (with `dify`, Dify DSL documents imported
        on the way) and the import's notes; raises WorkflowRejected naming every workflow, node
        and field at fault: definitions, models that are not configured, workflow nodes naming
        no workflow of the application. Fields of the wrong shape are left to AppConfig."""
        others = workflows if isinstance(workflows, list) else []
        documents = [workflow, *others] if workflow is not None else []
        if workflow is None and others:
            raise WorkflowRejected(workflow_call_problems(None, others))
        known = self._known_models()
        parsed: list[dict[str, Any]] = []
        notes: list[str] = []
        problems: list[WorkflowProblem] = []
        for index, document in enumerate(documents):
            label = document.get("name") if isinstance(document, dict) and isinstance(document.get("name"), str) else None
            label = label or ("workflow" if index == 0 else f"workflows[{index - 1}]")
            try:
                if dify:
                    definition, found = read_workflow(document, models=models, known_models=known)
                    notes += [f"{definition.name}: {note}" for note in found]
                else:
                    definition = parse_workflow(document)
            except WorkflowInvalid as exc:
                problems += [WorkflowProblem(label, p.node, p.field, p.message) for p in exc.problems]
                continue
            parsed.append(definition.to_data())
            problems += [
                WorkflowProblem(definition.name, node_id, "model", f"model {model!r} is not configured (known: {', '.join(known)})")
                for node_id, model in models_used(definition) if model not in known
            ]
        if not problems and parsed:
            problems = workflow_call_problems(parsed[0], parsed[1:])
        if problems:
            raise WorkflowRejected(problems)
        return parsed, notes

    async def set_workflow(self, name: str, workflow: Any, workflows: list[Any] | None = None, *,
                           models: dict[str, str] | None = None, dry_run: bool = False) -> tuple[App, list[str]]:
        """Puts workflows into the application's draft (visitors get them at the next publish):
        `workflow` answers its questions, `workflows` are those its workflow nodes run; each in
        Parley's format or a Dify DSL document, imported on the way (`models` maps Dify's model
        names to configured ones). None removes them. Returns the application and the import's
        notes; raises WorkflowRejected naming every workflow, node and field at fault. With
        `dry_run` nothing is stored."""
        row = await self._require(name)
        parsed, notes = self._check_workflows(workflow, workflows or [], models=models, dify=True)
        config = self.validate({**row.config, "workflow": parsed[0] if parsed else None, "workflows": parsed[1:]})
        if not dry_run:
            await self._repo.update_config(row.id, config.model_dump())
        app = await self.get(name)
        if dry_run:
            app = dataclasses.replace(app, draft=config)  # type: ignore[arg-type]
        return app, notes  # type: ignore[return-value]

    async def apply(self, data: dict[str, Any]) -> tuple[App, bool]:
        """Creates the application or replaces its draft; returns it and whether it is new."""
        config = self.validate(data)
        row = await self._repo.get_by_name(config.name)
        if row is None:
            row = await self._repo.create(config.name, config.model_dump())
            return await self._assemble(row), True
        await self._repo.update_config(row.id, config.model_dump())
        return await self.get(config.name), False  # type: ignore[return-value]

    async def publish(self, name: str, description: str = "") -> App:
        """Freezes the draft as a new release; returns the application with that release (a
        concurrent publish may already have made a newer one)."""
        row = await self._require(name)
        try:
            release = await self._repo.publish(row.id, row.config, description)
        except PublishConflict as exc:
            raise AppConflict(str(exc)) from None
        await self._changed()
        return await self._assemble(row, release)

    async def delete(self, name: str) -> None:
        row = await self._require(name)
        await self._repo.mark_deleted(row.id)
        await self._changed()

    async def get(self, name: str) -> App | None:
        row = await self._repo.get_by_name(name)
        return await self._assemble(row) if row else None

    async def get_by_id(self, app_id: int) -> App | None:
        row = await self._repo.get(app_id)
        return await self._assemble(row) if row and not row.deleted else None

    async def list(self) -> list[App]:
        return [await self._assemble(row) for row in await self._repo.list()]

    async def released_by_key(self, app_key: str) -> tuple[AppRow | None, ReleaseRow | None]:
        return await self._repo.released_by_key(app_key)

    async def _require(self, name: str) -> AppRow:
        row = await self._repo.get_by_name(name)
        if row is None:
            raise AppError(f"no application named {name!r}")
        return row

    async def _assemble(self, row: AppRow, release: ReleaseRow | None = None) -> App:
        if release is None:
            release = await self._repo.latest_release(row.id)
        return App(
            id=row.id,
            app_key=row.app_key,
            draft=AppConfig.model_validate(row.config),
            release=AppConfig.model_validate(release.config) if release else None,
            release_version=release.version if release else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
            release_id=release.id if release else None,
        )


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'application'}: {err['msg']}" for err in exc.errors()
    )
