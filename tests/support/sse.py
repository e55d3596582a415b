"""Two ways ADP clients read the stream, both used on every stream the tests check.

- by the `event:` name, as the official Python demo does with `sseclient`;
- by the JSON `type` of each `data:` line, as the Go SDK and adp-chat-client do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import sseclient


@dataclass
class Stream:
    status: int
    headers: httpx.Headers
    raw: bytes
    events: list[tuple[str, dict[str, Any]]]  # (event name, parsed data)

    def of(self, name: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == name]

    def names(self) -> list[str]:
        return [event for event, _ in self.events]

    @property
    def answer_replies(self) -> list[dict[str, Any]]:
        return [d["payload"] for d in self.of("reply") if not d["payload"]["is_from_self"]]

    @property
    def echo(self) -> dict[str, Any]:
        return next(d["payload"] for d in self.of("reply") if d["payload"]["is_from_self"])


def read_by_event_name(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    client = sseclient.SSEClient(iter([raw]))
    return [(event.event, json.loads(event.data)) for event in client.events()]


def read_by_json_type(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for line in raw.decode("utf-8").split("\n"):
        if line.startswith("data:"):
            data = json.loads(line[5:])
            events.append((data["type"], data))
    return events


def post_chat(base_url: str, body: dict[str, Any] | bytes, timeout: float = 60) -> Stream:
    """Posts a chat request, reads the whole stream, and checks both readers agree on it."""
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    with httpx.stream("POST", f"{base_url}/v1/qbot/chat/sse", timeout=timeout,
                      headers={"Content-Type": "application/json", "Accept": "text/event-stream"}, **kwargs) as response:
        raw = response.read()
    by_name = read_by_event_name(raw)
    by_type = read_by_json_type(raw)
    assert by_name == by_type, "the event: name and the JSON type disagree"
    return Stream(response.status_code, response.headers, raw, by_name)
