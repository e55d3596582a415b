"""`parley workflow validate | import | run`: workflows from files, without a server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from parley.workflow.definition import WorkflowDefinition, WorkflowInvalid, parse_workflow, workflows_called
from parley.workflow.dify import DifyImportError, import_dify
from parley.workflow.documents import read_workflow

workflow_cli = typer.Typer(help="Validate, import (Dify DSL) and try out workflows.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="TOML settings file (for the models).")
ModelMapOpt = typer.Option(None, "--model", "-m", help="Map a Dify model to a Parley one: DIFY=PARLEY (repeatable).")


def _document(file: Path) -> Any:
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        err.print(f"[red]{file}: not YAML: {exc}[/]")
        raise typer.Exit(2) from None


def problems_exit(file: Path, problems: list[Any]) -> typer.Exit:
    err.print(f"[red]{file}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:[/]")
    for problem in problems:
        err.print(escape(f"  {problem}"))
    return typer.Exit(2)


def _load(file: Path, models: list[str] | None = None, known: list[str] | None = None) -> tuple[WorkflowDefinition, list[str]]:
    """A Parley workflow or a Dify DSL file (imported on the way), validated."""
    try:
        return read_workflow(_document(file), models=model_map(models), known_models=known)
    except WorkflowInvalid as exc:
        raise problems_exit(file, exc.problems) from None


def model_map(pairs: list[str] | None) -> dict[str, str]:
    mapping = {}
    for pair in pairs or []:
        dify, sep, parley = pair.partition("=")
        if not sep or not dify or not parley:
            err.print(f"[red]--model {pair!r}: expected DIFY=PARLEY[/]")
            raise typer.Exit(2)
        mapping[dify] = parley
    return mapping


@workflow_cli.command("validate")
def validate(file: Path = typer.Argument(..., exists=True, readable=True, help="A Parley workflow or a Dify DSL file."),
             model: Optional[list[str]] = ModelMapOpt) -> None:
    """Check a workflow: node fields, edges, cycles, references. Exit status 2 on problems."""
    definition, notes = _load(file, model)
    for note in notes:
        err.print(escape(f"note: {note}"))
    console.print(f"{file}: workflow {definition.name!r} is valid ({len(definition.nodes)} nodes)")


def with_called(file: Path) -> list[Any]:
    """FILE's document, then those of the workflows its workflow nodes name (NAME.yaml beside
    it, and theirs in turn), each once. Unreadable or missing ones are left to validation."""
    documents = [_document(file)]
    seen = {file.resolve()}
    index = 0
    while index < len(documents):
        try:
            called = [name for _, name in workflows_called(read_workflow(documents[index])[0])]
        except WorkflowInvalid:
            called = []
        for name in called:
            path = file.with_name(f"{name}.yaml")
            if path.resolve() not in seen and path.exists():
                seen.add(path.resolve())
                documents.append(_document(path))
        index += 1
    return documents


@workflow_cli.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, readable=True, help="A Dify DSL file (kind: app)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the Parley workflow here (default: print it)."),
    model: Optional[list[str]] = ModelMapOpt,
    name: Optional[str] = typer.Option(None, help="The workflow's name (default: from the app's name)."),
    config: Optional[Path] = ConfigOpt,
    check_models: bool = typer.Option(False, "--check-models", help="Refuse models the settings do not configure."),
) -> None:
    """Turn a Dify DSL workflow into Parley's format; refuses what does not map, naming each node."""
    document = yaml.safe_load(file.read_text(encoding="utf-8"))
    known = _known_models(config) if check_models else None
    try:
        data, notes = import_dify(document, models=model_map(model), known_models=known, name=name)
        definition = parse_workflow(data)
    except (DifyImportError, WorkflowInvalid) as exc:
        err.print(f"[red]{file}: cannot import:[/]")
        for problem in exc.problems:
            err.print(escape(f"  {problem}"))
        raise typer.Exit(2) from None
    for note in notes:
        err.print(escape(f"note: {note}"))
    text = yaml.safe_dump(definition.to_data(), sort_keys=False, allow_unicode=True)
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")
    else:
        console.print(text, end="", markup=False)


def _known_models(config: Optional[Path]) -> list[str]:
    from parley.config import load_settings
    from parley.models.registry import ModelRegistry

    return ModelRegistry(load_settings(config)).names()


@workflow_cli.command("run")
def run(
    file: Path = typer.Argument(..., exists=True, readable=True, help="A Parley workflow or a Dify DSL file."),
    inputs: Optional[list[str]] = typer.Option(None, "--input", "-i", help="A start input: NAME=VALUE (JSON text for non-strings)."),
    query: str = typer.Option("", "--query", "-q", help="The user's question (sys.query)."),
    answer: Optional[list[str]] = typer.Option(None, "--answer", "-a", help="Answers to the questions the run asks, in order."),
    model: Optional[list[str]] = ModelMapOpt,
    config: Optional[Path] = ConfigOpt,
    allow_code: bool = typer.Option(False, "--allow-code", help="Run code nodes (in the local sandbox)."),
    allow_private: bool = typer.Option(False, "--allow-private", help="Let HTTP nodes reach private and loopback addresses."),
) -> None:
    """Run a workflow once, printing each node and the reply; a workflow named by a workflow
    node is read from NAME.yaml beside FILE."""
    from parley.config import load_settings
    from parley.models.registry import ModelRegistry
    from parley.workflow.events import NodeProgress, WorkflowFailed, WorkflowFinished, WorkflowMessage, WorkflowSuspended
    from parley.workflow.runner import SystemValues, WorkflowRunner
    from parley.workflow.seams import RegistryChat, runtime_from_settings

    definition, notes = _load(file, model)
    for note in notes:
        err.print(escape(f"note: {note}"))
    values: dict[str, Any] = {}
    for pair in inputs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            err.print(f"[red]--input {pair!r}: expected NAME=VALUE[/]")
            raise typer.Exit(2)
        values[key] = value
    settings = load_settings(config)
    workflow_settings = settings.workflows.model_copy(update={
        "code_enabled": settings.workflows.code_enabled or allow_code,
        "http_allow_private": settings.workflows.http_allow_private or allow_private,
    })

    def sibling(name: str) -> WorkflowDefinition | None:
        path = file.with_name(f"{name}.yaml")
        return _load(path, model)[0] if path.exists() else None

    async def main() -> int:
        registry = ModelRegistry(settings)
        runtime = runtime_from_settings(workflow_settings, chat=RegistryChat(registry), workflows=sibling)
        runner = WorkflowRunner(runtime)
        state = runner.start(definition, SystemValues(query=query, visitor="terminal", session="terminal"), values)
        pending = list(answer or [])
        try:
            while True:
                async for event in runner.stream(definition, state):
                    if isinstance(event, NodeProgress) and event.record.status >= 2:
                        r = event.record
                        mark = "[green]ok[/]" if r.status == 2 else "[red]failed[/]"
                        where = f" (in {r.belong_node_id})" if r.belong_node_id else ""
                        err.print(mark + escape(f" {r.node_id} [{r.type_name}]{where} {r.cost_ms:.1f} ms"
                                                + (f": {r.fail_message}" if r.fail_message else "")))
                    elif isinstance(event, WorkflowMessage):
                        console.print(f"» {event.text}", markup=False)
                    elif isinstance(event, WorkflowSuspended):
                        cards = f"  [{' | '.join(event.option_cards)}]" if event.option_cards else ""
                        console.print(f"? {event.reply}{cards}", markup=False)
                    elif isinstance(event, WorkflowFinished):
                        console.print(event.reply or "(no reply: an operation)", markup=False)
                        if event.outputs:
                            console.print_json(data=event.outputs)
                    elif isinstance(event, WorkflowFailed):
                        err.print(f"[red]{escape(event.message)}[/]")
                if state.status == "suspended" and pending:
                    reply = pending.pop(0)
                    console.print(f"> {reply}", markup=False)
                    state = runner.resume(state, reply)
                    continue
                return {"finished": 0, "suspended": 3}.get(state.status, 1)
        finally:
            await registry.aclose()

    raise typer.Exit(asyncio.run(main()))
