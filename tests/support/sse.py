"""Two ways ADP clients read the stream, both used on every stream the tests check.

- by the `event:` name, as the official Python demo does with `sseclient`;
- by the JSON `type` of each `data:` line, as the Go SDK and adp-chat-client do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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


def event_blocks(response: httpx.Response) -> Iterator[str]:
    """The events of a stream as it arrives, each block without its blank line; comments
    (keep-alives) left out. Leaving the loop early leaves the rest unread."""
    buffer = ""
    for text in response.iter_text():
        buffer += text
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if not block.startswith(":"):
                yield block


# ADP v2: `event:TYPE` and a `data:` line whose JSON `Type` is the same name; `data:[DONE]` ends it.

DONE = "[DONE]"


@dataclass
class V2Stream:
    status: int
    headers: httpx.Headers
    raw: bytes
    events: list[tuple[str, dict[str, Any]]]  # (event name, parsed data); the terminator is ("[DONE]", {})

    def of(self, name: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == name]

    def names(self) -> list[str]:
        return [event for event, _ in self.events]

    def texts(self) -> dict[str, str]:
        """Each message's text (by its type) as a client assembles it: deltas appended, replaces replacing."""
        kinds = {d["Message"]["MessageId"]: d["Message"]["Type"] for d in self.of("message.added")}
        texts: dict[str, str] = {}
        for name, data in self.events:
            if name == "text.delta":
                texts[kinds[data["MessageId"]]] = texts.get(kinds[data["MessageId"]], "") + data["Text"]
            elif name == "text.replace":
                texts[kinds[data["MessageId"]]] = data["Text"]
        return texts


def read_v2_by_event_name(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    client = sseclient.SSEClient(iter([raw]))
    return [(DONE, {}) if event.data == DONE else (event.event, json.loads(event.data)) for event in client.events()]


def read_v2_by_json_type(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """As adp-chat-client reads it: `data:` lines only, keyed on `Type`."""
    events: list[tuple[str, dict[str, Any]]] = []
    for line in raw.decode("utf-8").split("\n"):
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload == DONE:
                events.append((DONE, {}))
            else:
                data = json.loads(payload)
                events.append((data["Type"], data))
    return events


def post_v2_chat(base_url: str, body: dict[str, Any] | bytes, path: str = "/adp/v2/chat", timeout: float = 60) -> V2Stream:
    """Posts a v2 chat request, reads the whole stream, and checks both readers agree on it."""
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    with httpx.stream("POST", f"{base_url}{path}", timeout=timeout,
                      headers={"Content-Type": "application/json", "Accept": "text/event-stream"}, **kwargs) as response:
        raw = response.read()
    by_name = read_v2_by_event_name(raw)
    by_type = read_v2_by_json_type(raw)
    assert by_name == by_type, "the event: name and the JSON Type disagree"
    return V2Stream(response.status_code, response.headers, raw, by_name)
