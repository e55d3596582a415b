"""A small ADP SSE client for `parley chat`: prints thoughts dimmed, then the answer."""

from __future__ import annotations

import json
from typing import Any

import httpx
from rich.console import Console


def stream_turn(base_url: str, body: dict[str, Any], console: Console) -> bool:
    """Sends one question and prints the streamed answer; returns False on an error event."""
    in_thought = False
    try:
        with httpx.stream("POST", f"{base_url}/v1/qbot/chat/sse", json=body, timeout=httpx.Timeout(300, connect=5)) as response:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                kind, payload = event.get("type"), event.get("payload", {})
                if kind == "thought":
                    if not in_thought:
                        console.print("[dim]thinking: [/]", end="")
                        in_thought = True
                    for procedure in payload.get("procedures", []):
                        console.print(procedure.get("debugging", {}).get("content", ""), style="dim", end="", highlight=False)
                elif kind == "reply" and not payload.get("is_from_self"):
                    if in_thought:
                        console.print()
                        in_thought = False
                    console.print(payload.get("content", ""), end="", highlight=False, markup=False)
                    if payload.get("is_final"):
                        console.print()
                elif kind == "error":
                    error = event.get("error") or payload.get("error", {})
                    console.print(f"\n[red]error {error.get('code')}: {error.get('message')}[/]")
                    return False
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {base_url}: {exc}[/]")
        return False
    return True
