"""Event ids on a turn's server-sent events, and resuming a stream from `Last-Event-ID`.

Every event of a turn's stream carries `id:<turn_id>-<n>`, n counting the stream's events
from 1. A client that lost its connection sends the same request again with the header
`Last-Event-ID: <turn_id>-<n>` (as fetch-based SSE clients do on retry); the face then starts
no turn, but replays the turn's events from the bus into a new renderer made for the same
request and writes only the events after the n-th. The id alone finds the turn and the
offset, so the server keeps no table of ids; replaying through the renderer rebuilds what
it batches, throttles or accumulates (whole-text replies), so the resumed events are those
the first stream would have sent.

Renderers write whole events ending in a blank line, with no blank line inside one (each
`data:` line is JSON on one line), so the events of a write are found by splitting it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADER = "last-event-id"
_ID = re.compile(r"(\d{1,20})-(\d{1,10})")


class MalformedEventId(ValueError):
    """A Last-Event-ID that no stream of this server gave."""


@dataclass(frozen=True, slots=True)
class ResumePoint:
    turn_id: int
    events_sent: int


def parse_last_event_id(value: str) -> ResumePoint:
    match = _ID.fullmatch(value.strip())
    if match is None:
        raise MalformedEventId(f"Last-Event-ID {value[:64]!r} is not an event id of this server (<turn id>-<event number>)")
    return ResumePoint(int(match[1]), int(match[2]))


def resume_point(last_event_id: str | None) -> ResumePoint | None:
    """Where a request resumes: None without a Last-Event-ID (an empty one counts as none, as
    EventSource never sends it empty); raises MalformedEventId for one this server never gave."""
    if last_event_id is None or not last_event_id.strip():
        return None
    return parse_last_event_id(last_event_id)


def last_event_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The Last-Event-ID header of an ASGI scope's raw headers, if any."""
    for name, value in headers:
        if name == b"last-event-id":
            return value.decode("latin-1")
    return None


class EventNumbering:
    """Puts `id:<turn_id>-<n>` on each event of a turn's writes, dropping the first `skip` events.

    With `one_event`, each write is at most one event (ADP v1's renderer): the id goes on
    without looking for the events' ends, which costs about as much as rendering the packet.
    """

    __slots__ = ("_line", "_count", "_skip", "_one_event", "_skipped")

    def __init__(self, turn_id: int, skip: int = 0, one_event: bool = False) -> None:
        self._line = b"id:%d-%%d\n" % turn_id  # the id line, with the event number to fill in
        self._count = 0
        self._skip = skip
        self._one_event = one_event
        self._skipped = b""  # the last write dropped whole (see short_end)

    def __call__(self, data: bytes) -> bytes:
        if not data:
            return data
        if self._one_event:
            self._count += 1
            if self._count > self._skip:
                return self._line % self._count + data
            self._skipped = data
            return b""
        parts: list[bytes] = []
        start, size = 0, len(data)
        while start < size:
            end = data.find(b"\n\n", start)  # each event ends with a blank line
            stop = size if end < 0 else end + 2
            self._count += 1
            if self._count > self._skip:
                if start == 0 and stop == size:
                    return self._line % self._count + data  # one event: the usual write
                parts.append(self._line % self._count)
                parts.append(data[start:stop])
            start = stop
        if not parts:
            self._skipped = data
        return b"".join(parts)

    def short_end(self, data: bytes | None = None) -> bytes:
        """The stream's last events (`data`, by default the last write dropped whole) numbered
        right after the resume point, when the stream ended without passing it; b"" when it
        did (its end was sent).

        A resumed stream can be shorter than the one the client read: with several instances,
        one that dies may have sent its client events it had not yet written to the shared bus,
        and another instance ends the turn after the events it has (engine/reaper.py). The
        client's Last-Event-ID then lies past the stream's end; without this it would get no end.
        """
        if self._count > self._skip:
            return b""
        self._count = self._skip
        return self(self._skipped if data is None else data)
