"""The `parley` command: serve, manage applications, chat from a terminal."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.console import Console
from rich.markup import escape as markup_escape

from parley.config import Settings, load_settings

cli = typer.Typer(help="Parley: a self-hosted agent dialogue server.", no_args_is_help=True)
app_cli = typer.Typer(help="Define, publish and inspect applications.", no_args_is_help=True)
cli.add_typer(app_cli, name="app")
console = Console()
err = Console(stderr=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="TOML settings file.")
DataDirOpt = typer.Option(None, "--data-dir", "-d", help="Where the database and keys live (default ./data).")


def _settings(config: Optional[Path], data_dir: Optional[Path], **overrides: Any) -> Settings:
    return load_settings(config, data_dir=data_dir, **overrides)


@cli.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Port to listen on (default 8080)."),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
    demo: bool = typer.Option(True, help="Create and publish the demo application."),
    database_url: Optional[str] = typer.Option(
        None, "--database-url",
        help="SQLAlchemy URL of the database, e.g. postgresql+asyncpg://user@host/parley (default: SQLite in the data directory).",
    ),
    bus_url: Optional[str] = typer.Option(
        None, "--bus-url",
        help="Redis URL of the bus shared by several instances, e.g. redis://127.0.0.1:6379/0 (default: in this process).",
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-w", min=1,
        help="Server processes sharing the port (default 1); more than one needs --database-url (PostgreSQL) and --bus-url.",
    ),
) -> None:
    """Run the server."""
    settings = _settings(config, data_dir, host=host, port=port, database_url=database_url, bus_url=bus_url,
                         workers=workers)
    settings.demo = demo and settings.demo
    if settings.workers > 1:
        raise typer.Exit(_serve_workers(settings))

    import uvicorn

    from parley.server import build_app
    from parley.workers import uvicorn_options

    def on_ready(services: Any, demo_app: Any) -> None:
        _announce(settings, demo_app)

    uvicorn.run(build_app(settings, on_ready), host=settings.host, port=settings.port, **uvicorn_options(settings))


def _serve_workers(settings: Settings) -> int:
    """`serve --workers N`: refused without a shared database and bus; else the supervisor's exit code."""
    from parley.workers import Supervisor, prepare, shared_state_missing

    problem = shared_state_missing(settings)
    if problem is not None:
        err.print(f"[red]{problem}[/]", highlight=False)
        return 2
    try:
        demo_app = asyncio.run(prepare(settings))  # migrations and the demo once, before the workers start
    except Exception as exc:
        err.print(f"[red]Could not prepare the database: {type(exc).__name__}: {exc}[/]", highlight=False)
        return 1
    settings.demo = False
    _announce(settings, demo_app)
    return Supervisor(settings).run()


def _announce(settings: Settings, demo_app: Any) -> None:
    """Where the server listens, the admin token, and how to try the demo application."""
    url = f"http://{settings.host}:{settings.port}"
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    console.print(f"[bold]Parley[/] listening on {url}  (data: {settings.data_dir.resolve()}{workers})")
    console.print(f"Admin token: {settings.ensure_admin_token()}")
    if demo_app is not None:
        body = json.dumps(
            {
                "bot_app_key": demo_app.app_key,
                "visitor_biz_id": "visitor-1",
                "session_id": "demo-session-1",
                "content": "What is the capital of France?",
                "incremental": True,
            },
            ensure_ascii=False,
        )
        console.print(f"Demo application AppKey: [bold]{demo_app.app_key}[/]")
        console.print("Try it:", highlight=False)
        print(f"curl -N -X POST {url}/v1/qbot/chat/sse -H 'Content-Type: application/json' -d '{body}'", flush=True)


def _run(settings: Settings, work: Any) -> Any:
    """Runs `work(services)` against the data directory's database, without a server."""
    from parley.server import open_services

    async def main() -> Any:
        async with open_services(settings, serving=False) as services:
            return await work(services)

    return asyncio.run(main())


def _describe(app: Any) -> str:
    state = f"published v{app.release_version}" if app.published else "draft only"
    if app.published and app.has_unpublished_changes:
        state += ", unpublished changes"
    return f"{app.name}  ({state})  AppKey {app.app_key}"


@app_cli.command("apply")
def app_apply(
    file: Path = typer.Argument(..., exists=True, readable=True, help="YAML file: one application, or `apps: [...]`."),
    publish: bool = typer.Option(False, "--publish", help="Publish each application after applying it."),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Create or update applications from a YAML file."""
    from parley.engine.apps import AppError

    document = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    definitions = document.get("apps", [document]) if isinstance(document, dict) else document
    if not isinstance(definitions, list) or not all(isinstance(d, dict) for d in definitions):
        err.print(f"[red]{file}: expected an application mapping or `apps:` with a list of them[/]")
        raise typer.Exit(2)

    async def work(services: Any) -> None:
        for definition in definitions:
            app, created = await services.apps.apply(definition)
            if publish:
                app = await services.apps.publish(app.name)
            console.print(("created " if created else "updated ") + _describe(app))

    try:
        _run(_settings(config, data_dir), work)
    except AppError as exc:
        err.print(f"[red]{file}: {exc}[/]")
        raise typer.Exit(2) from None


@app_cli.command("publish")
def app_publish(name: str, description: str = "", config: Optional[Path] = ConfigOpt, data_dir: Optional[Path] = DataDirOpt) -> None:
    """Publish an application's draft as a new release."""
    from parley.engine.apps import AppError

    try:
        app = _run(_settings(config, data_dir), lambda s: s.apps.publish(name, description))
    except AppError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    console.print("published " + _describe(app))


@app_cli.command("list")
def app_list(config: Optional[Path] = ConfigOpt, data_dir: Optional[Path] = DataDirOpt) -> None:
    """List applications."""
    for app in _run(_settings(config, data_dir), lambda s: s.apps.list()):
        console.print(_describe(app))


@app_cli.command("show")
def app_show(name: str, config: Optional[Path] = ConfigOpt, data_dir: Optional[Path] = DataDirOpt) -> None:
    """Show an application's draft as YAML."""
    app = _run(_settings(config, data_dir), lambda s: s.apps.get(name))
    if app is None:
        err.print(f"[red]no application named {name!r}[/]")
        raise typer.Exit(1)
    console.print(f"# {_describe(app)}")
    console.print(yaml.safe_dump(app.draft.model_dump(), allow_unicode=True, sort_keys=False), highlight=False)


@cli.command()
def chat(
    application: str = typer.Argument(..., metavar="APP", help="Application name (or its AppKey)."),
    server: Optional[str] = typer.Option(None, help="Server URL (default: from the settings)."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Ask one question and exit."),
    session: Optional[str] = typer.Option(None, help="Session id (default: a new one)."),
    visitor: str = typer.Option("terminal", help="Visitor id."),
    model: Optional[str] = typer.Option(None, help="Model name for this chat."),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Chat with a published application in the terminal (thoughts are shown dimmed)."""
    from parley.chat_client import stream_turn

    settings = _settings(config, data_dir)
    base = server or f"http://{settings.host}:{settings.port}"
    app_key = application
    if settings.database_url or (settings.data_dir / "parley.db").exists():  # a name: look its key up
        found = _run(settings, lambda s: s.apps.get(application))
        if found is not None:
            app_key = found.app_key
    session_id = session or uuid.uuid4().hex
    questions = [message] if message is not None else None
    while True:
        if questions is not None:
            if not questions:
                return
            question = questions.pop()
        else:
            try:
                question = console.input("[bold green]you>[/] ")
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            if not question.strip():
                continue
        ok = stream_turn(
            base,
            {"bot_app_key": app_key, "visitor_biz_id": visitor, "session_id": session_id,
             "content": question, "incremental": True, **({"model_name": model} if model else {})},
            console,
        )
        if not ok and questions is not None:
            raise typer.Exit(1)


cloudbase_cli = typer.Typer(help="The CloudBase AI bot face: bots and their API keys.", no_args_is_help=True)
cloudbase_bot_cli = typer.Typer(help="Publish applications as CloudBase bots.", no_args_is_help=True)
cloudbase_key_cli = typer.Typer(help="Issue, list and revoke CloudBase API keys.", no_args_is_help=True)
cloudbase_cli.add_typer(cloudbase_bot_cli, name="bot")
cloudbase_cli.add_typer(cloudbase_key_cli, name="key")
cli.add_typer(cloudbase_cli, name="cloudbase")


def _cloudbase(config: Optional[Path], data_dir: Optional[Path], work: Any) -> Any:
    """Runs `work(channel)`; an operator error is printed and exits with status 2."""
    from parley.channels.cloudbase import OperatorError

    try:
        return _run(_settings(config, data_dir), lambda services: work(services.cloudbase))
    except OperatorError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@cloudbase_bot_cli.command("publish")
def cloudbase_bot_publish(
    application: str = typer.Argument(..., metavar="APP", help="Application name."),
    bot_id: Optional[str] = typer.Option(None, "--bot-id", help="The bot id (default: bot-<8 hex digits>); fixed once set."),
    enable: Optional[bool] = typer.Option(None, "--enable/--disable", help="Whether the bot answers."),
    search: Optional[bool] = typer.Option(None, "--search/--no-search", help="searchEnable, as shown to clients."),
    multi: Optional[bool] = typer.Option(None, "--multi-conversation/--single-conversation"),
    recommend: Optional[bool] = typer.Option(None, "--recommend/--no-recommend", help="isNeedRecommend."),
    background: Optional[str] = typer.Option(None, help="Background image URL shown by agent UIs."),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Publish an application as a CloudBase bot, or change its bot settings."""
    bot = _cloudbase(config, data_dir, lambda channel: channel.publish_bot(
        application, bot_id=bot_id, enabled=enable, search_enable=search, multi_conversation=multi,
        need_recommend=recommend, background=background,
    ))
    state = "enabled" if bot.row.enabled else "disabled"
    console.print(f"{application}: CloudBase bot [bold]{bot.bot_id}[/] ({state})")


@cloudbase_key_cli.command("create")
def cloudbase_key_create(
    application: str = typer.Argument(..., metavar="APP", help="Application name."),
    publishable: bool = typer.Option(False, "--publishable", help="A publishable key (visitor rights) instead of an API key."),
    name: str = typer.Option("", help="A note to recognise the key by."),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Issue a key for an application's CloudBase bot (publishing the bot if need be). Shown once."""
    from parley.channels.cloudbase import KeyKind

    kind = KeyKind.PUBLISHABLE if publishable else KeyKind.API

    async def work(channel: Any) -> Any:
        issued = await channel.issue_key(application, kind, name)
        bot = await channel.bot_of_app(application)
        return issued, bot

    issued, bot = _cloudbase(config, data_dir, work)
    err.print(f"{kind.value} key {issued.row.id} for bot {bot.bot_id} ({application}); it is shown only once:")
    print(issued.secret, flush=True)


@cloudbase_key_cli.command("list")
def cloudbase_key_list(
    application: str = typer.Argument(..., metavar="APP"), config: Optional[Path] = ConfigOpt, data_dir: Optional[Path] = DataDirOpt
) -> None:
    """List an application's CloudBase keys (their prefixes only)."""
    for key in _cloudbase(config, data_dir, lambda channel: channel.list_keys(application)):
        state = "revoked" if key.revoked_at else "active"
        console.print(f"{key.id}  {key.kind:<11}  {key.key_prefix}...  {state}  {key.name}", highlight=False)


@cloudbase_key_cli.command("revoke")
def cloudbase_key_revoke(
    key_id: int = typer.Argument(..., help="The key's id (from `list`)."), config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Revoke a CloudBase key at once."""
    if not _cloudbase(config, data_dir, lambda channel: channel.revoke_key(key_id)):
        err.print(f"[red]no active key {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"revoked key {key_id}")


im_cli = typer.Typer(help="Tencent Cloud Chat (IM) applications.", no_args_is_help=True)
cli.add_typer(im_cli, name="im")


@im_cli.command("usersig")
def im_usersig(
    identifier: Optional[str] = typer.Option(None, "--identifier", "-i", help="UserID to sign for (default: the app's first admin)."),
    sdkappid: Optional[int] = typer.Option(None, "--sdkappid", help="SDKAppID (default: the only configured IM app)."),
    expire: int = typer.Option(180 * 86400, help="Validity in seconds."),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Print a UserSig for an identifier of a configured IM application."""
    from parley.faces.im.usersig import generate

    apps = _settings(config, data_dir).im.apps
    chosen = [a for a in apps if sdkappid is None or a.sdkappid == sdkappid]
    if len(chosen) != 1:
        known = ", ".join(str(a.sdkappid) for a in apps) or "none"
        err.print(f"[red]name one configured SDKAppID with --sdkappid (configured: {known})[/]")
        raise typer.Exit(2)
    app = chosen[0]
    who = identifier or (app.admins[0] if app.admins else None)
    if not who:
        err.print("[red]the application has no admins; pass --identifier[/]")
        raise typer.Exit(2)
    print(generate(app.sdkappid, app.secret_key, who, expire))



# --- knowledge bases -------------------------------------------------------------------------

kb_cli = typer.Typer(help="Knowledge bases: documents and Q&A pairs an application answers from.", no_args_is_help=True)
kb_qa_cli = typer.Typer(help="Q&A pairs: answered directly, without a model call.", no_args_is_help=True)
kb_cli.add_typer(kb_qa_cli, name="qa")
cli.add_typer(kb_cli, name="kb")
LabelOpt = typer.Option(None, "--label", "-l", help="A label ATTRIBUTE=VALUE[|VALUE...]; repeat for several. None: for everyone.")


def _kb(config: Optional[Path], data_dir: Optional[Path], application: str, work: Any) -> Any:
    """Runs `work(knowledge_service, app_id)` against the data directory, without a server.

    Learning happens here, in the foreground; a server running at the same time picks the
    new segments up on its next question.
    """
    from parley.knowledge.service import KnowledgeError, KnowledgeService
    from parley.store.apps import AppRepository
    from parley.store.database import Database
    from parley.store.id_nodes import claim_id_node

    settings = _settings(config, data_dir)

    async def main() -> Any:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(settings.sqlalchemy_url, settings.database_busy_timeout, settings.database_pool_size)
        await database.migrate()
        id_node = await claim_id_node(database.engine)  # servers may be minting ids on the same database
        try:
            row = await AppRepository(database.engine).get_by_name(application)
            if row is None:
                err.print(f"[red]no application named {application!r}[/]")
                raise typer.Exit(1)
            service = KnowledgeService(database.engine, settings.knowledge, settings.data_dir)
            try:
                return await work(service, row.id)
            finally:
                await service.aclose()
        finally:
            if id_node is not None:
                await id_node.aclose()
            await database.close()

    try:
        return asyncio.run(main())
    except KnowledgeError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


def _kb_files(paths: list[Path]) -> list[tuple[Path, str]]:
    """Files to add and their document names: a folder's supported files, named by their path in it."""
    from parley.knowledge.parse import file_type, supported_types

    kinds = set(supported_types())
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file() and file_type(p.name) in kinds):
                found.append((file, file.relative_to(path).as_posix()))
        elif path.is_file():
            found.append((path, path.name))
        else:
            err.print(f"[red]{path}: no such file or folder[/]")
            raise typer.Exit(2)
    return found


def _label_options(options: list[str] | None) -> dict[str, list[str]]:
    """`--label attribute=value` options as labels; a malformed one exits with status 2."""
    from parley.knowledge.labels import ScopeError, parse_label_options

    try:
        return parse_label_options(options or [])
    except ScopeError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@kb_cli.command("add")
def kb_add(
    application: str = typer.Argument(..., metavar="APP", help="Application name."),
    paths: list[Path] = typer.Argument(..., metavar="PATH...", help="Files or folders (txt, md, html, pdf, docx, xlsx, csv)."),
    label: Optional[list[str]] = LabelOpt,
    url: str = typer.Option("", help="A link shown with references to these documents."),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Add or update documents and learn them now. Interrupted, run it again: it resumes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    labels = _label_options(label)
    files = _kb_files(paths)
    failed = 0

    async def work(service: Any, app_id: int) -> None:
        nonlocal failed
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            overall = progress.add_task("files", total=len(files))
            segments = progress.add_task("segments", total=None)
            for path, name in files:
                progress.update(segments, description=name, completed=0, total=None)
                registered = await service.add_document(
                    app_id, name, path.read_bytes(), labels=labels, url=url, background=False
                )
                document = registered.document
                if registered.action != "unchanged":
                    document = await service.learn(
                        document.id, lambda _d, done, total: progress.update(segments, completed=done, total=total)
                    )
                if document is None or document.status == "failed":
                    failed += 1
                    reason = document.reason if document is not None else "deleted while learning"
                    progress.console.print(f"[red]failed[/]    {name}: {reason}")
                else:
                    verb = "unchanged" if registered.action == "unchanged" else "learned  "
                    progress.console.print(f"{verb} {name} ({document.segment_count} segments)")
                progress.advance(overall)

    _kb(config, data_dir, application, work)
    if failed:
        raise typer.Exit(1)


@kb_cli.command("list")
def kb_list(
    application: str = typer.Argument(..., metavar="APP"),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """List an application's documents with their status, and count its Q&A pairs."""
    from rich.table import Table

    async def work(service: Any, app_id: int) -> None:
        table = Table("id", "name", "status", "segments", "labels", "reason")
        for d in await service.list_documents(app_id):
            labels = "; ".join(f"{a}={'|'.join(v)}" for a, v in d.labels.items()) or "all"
            table.add_row(str(d.id), d.name, d.status, str(d.segment_count), labels, d.reason)
        console.print(table)
        console.print(f"{len(await service.list_qa(app_id))} Q&A pairs")

    _kb(config, data_dir, application, work)


@kb_cli.command("delete")
def kb_delete(
    application: str = typer.Argument(..., metavar="APP"),
    document: str = typer.Argument(..., help="The document's name or id."),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Delete a document and its segments."""

    async def work(service: Any, app_id: int) -> bool:
        found = await service.document_by_name(app_id, document)
        if found is None and document.isdigit():
            found = await service.get_document(app_id, int(document))
        return found is not None and await service.delete_document(app_id, found.id)

    if not _kb(config, data_dir, application, work):
        err.print(f"[red]no document {document!r} in {application!r}[/]")
        raise typer.Exit(1)
    console.print(f"deleted {document}")


@kb_cli.command("resume")
def kb_resume(
    application: str = typer.Argument(..., metavar="APP"),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Finish learning the documents an interrupted run left unfinished."""

    async def work(service: Any, app_id: int) -> None:
        for d in await service.list_documents(app_id):
            if d.status == "learning":
                done = await service.learn(d.id)
                console.print(f"{done.status if done else 'deleted'}  {d.name}")

    _kb(config, data_dir, application, work)


@kb_qa_cli.command("add")
def kb_qa_add(
    application: str = typer.Argument(..., metavar="APP"),
    question: str = typer.Option(..., "--question", "-q"),
    answer: str = typer.Option(..., "--answer", "-a"),
    similar: Optional[list[str]] = typer.Option(None, "--similar", "-s", help="A similar question; repeat for several."),
    label: Optional[list[str]] = LabelOpt,
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Add a Q&A pair."""
    labels = _label_options(label)
    pair = _kb(config, data_dir, application, lambda s, app_id: s.add_qa(app_id, question, answer, similar or [], labels))
    console.print(f"added Q&A pair {pair.id}")


@kb_qa_cli.command("import")
def kb_qa_import(
    application: str = typer.Argument(..., metavar="APP"),
    file: Path = typer.Argument(..., exists=True, readable=True, help="CSV or XLSX: question, answer, similar questions, labels."),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Import Q&A pairs from a CSV or XLSX file (all of them, or none if a row is bad)."""
    ids = _kb(config, data_dir, application, lambda s, app_id: s.import_qa(app_id, file.name, file.read_bytes()))
    console.print(f"imported {len(ids)} Q&A pairs")


@kb_qa_cli.command("list")
def kb_qa_list(
    application: str = typer.Argument(..., metavar="APP"),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """List an application's Q&A pairs."""
    for pair in _kb(config, data_dir, application, lambda s, app_id: s.list_qa(app_id)):
        similar = f"  (also: {' / '.join(pair.similar_questions)})" if pair.similar_questions else ""
        console.print(f"{pair.id}  Q: {pair.question}{similar}\n    A: {pair.answer}", highlight=False)


def workflow_apply(
    file: Path = typer.Argument(..., exists=True, readable=True, help="A Parley workflow or a Dify DSL file."),
    app: str = typer.Option(..., "--app", "-a", help="The application whose draft gets the workflow."),
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", help="Map a Dify model to a Parley one: DIFY=PARLEY (repeatable)."),
    publish: bool = typer.Option(False, "--publish", help="Publish the application afterwards (visitors see it at once)."),
    config: Optional[Path] = ConfigOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Put a workflow into an application's draft; visitors get it at the next publish. The
    workflows its workflow nodes name are read from NAME.yaml beside FILE and go with it."""
    from parley.engine.apps import AppError, WorkflowRejected
    from parley.workflow.cli import console as out
    from parley.workflow.cli import err as errors
    from parley.workflow.cli import model_map, problems_exit, with_called

    documents = with_called(file)

    async def work(services: Any) -> Any:
        found, notes = await services.apps.set_workflow(app, documents[0], documents[1:], models=model_map(model))
        if publish:
            found = await services.apps.publish(app)
        return found, notes

    try:
        found, notes = _run(_settings(config, data_dir), work)
    except WorkflowRejected as exc:
        raise problems_exit(file, exc.problems) from None
    except AppError as exc:
        errors.print(f"[red]{markup_escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    for note in notes:
        errors.print(markup_escape(f"note: {note}"))
    names = ", ".join(repr(w["name"]) for w in [found.draft.workflow, *found.draft.workflows])
    out.print(markup_escape(f"applied workflow {names} to the draft of {_describe(found)}"))
    if not publish:
        out.print(markup_escape(f"visitors get it at the next publish: parley app publish {app}"))


def _add_workflow_commands() -> None:
    from parley.workflow.cli import workflow_cli

    workflow_cli.command("apply")(workflow_apply)  # here: it needs the applications (the engine)

    cli.add_typer(workflow_cli, name="workflow")


_add_workflow_commands()


def main() -> None:
    cli()
