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
) -> None:
    """Run the server."""
    import uvicorn

    from parley.server import build_app

    settings = _settings(config, data_dir, host=host, port=port)
    settings.demo = demo and settings.demo

    def on_ready(services: Any, demo_app: Any) -> None:
        url = f"http://{settings.host}:{settings.port}"
        console.print(f"[bold]Parley[/] listening on {url}  (data: {settings.data_dir.resolve()})")
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

    uvicorn.run(
        build_app(settings, on_ready),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
    )


def _run(settings: Settings, work: Any) -> Any:
    """Runs `work(services)` against the data directory's database, without a server."""
    from parley.server import open_services

    async def main() -> Any:
        async with open_services(settings) as services:
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
    if settings.sqlalchemy_url and (settings.data_dir / "parley.db").exists():
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


def main() -> None:
    cli()
