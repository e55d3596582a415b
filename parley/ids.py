"""Numeric ids for records, applications, documents and Q&A pairs.

ADP clients (the official Go SDK among them) decode ids as decimal-digit strings into
uint64, so every id Parley mints is a positive 63-bit integer: milliseconds since an epoch,
a per-process node number and a sequence, in the manner of Twitter's Snowflake. Ids sort by
creation time, which lets history pages walk backwards by id alone.
"""

from __future__ import annotations

import os
import secrets
import threading
import time

MAX_ID = (1 << 63) - 1
"""The largest id there can be: ids are stored as signed 64-bit integers."""

_EPOCH_MS = 1_700_000_000_000  # 2023-11-14: keeps the ids short for decades
_NODE_BITS = 10
_SEQUENCE_BITS = 12
_SEQUENCE_MASK = (1 << _SEQUENCE_BITS) - 1
NODE_MASK = (1 << _NODE_BITS) - 1
"""Node numbers are 0..NODE_MASK. Two live processes minting with one node can mint the same id:
alone on a database (SQLite) a random node is enough; processes sharing one claim theirs."""


class IdGenerator:
    """Mints unique, time-ordered positive integers (safe across threads)."""

    def __init__(self, node: int | None = None) -> None:
        self._node = (secrets.randbits(_NODE_BITS) if node is None else node) & NODE_MASK
        self._lock = threading.Lock()
        self._last_ms = 0
        self._sequence = 0

    @property
    def node(self) -> int:
        return self._node

    def use_node(self, node: int) -> None:
        """Mints with `node` from now on (one claimed for this process, see store.id_nodes)."""
        if not 0 <= node <= NODE_MASK:
            raise ValueError(f"an id node is 0..{NODE_MASK}, not {node}")
        with self._lock:
            self._node = node

    def next(self) -> int:
        with self._lock:
            now = int(time.time() * 1000) - _EPOCH_MS
            if now <= self._last_ms:
                # Same millisecond (or a clock step back): keep counting on the last one.
                now = self._last_ms
                self._sequence = (self._sequence + 1) & _SEQUENCE_MASK
                if self._sequence == 0:
                    now += 1
            else:
                self._sequence = 0
            self._last_ms = now
            return (now << (_NODE_BITS + _SEQUENCE_BITS)) | (self._node << _SEQUENCE_BITS) | self._sequence


def node_of(minted: int) -> int:
    """The node number of the process that minted the id `minted`."""
    return (minted >> _SEQUENCE_BITS) & NODE_MASK


def minted_at_ms(minted: int) -> int:
    """When the id `minted` was minted, in milliseconds since the Unix epoch (by its minter's clock)."""
    return (minted >> (_NODE_BITS + _SEQUENCE_BITS)) + _EPOCH_MS


PREFERRED_NODE = int(os.environ["PARLEY_NODE_ID"]) if "PARLEY_NODE_ID" in os.environ else None
"""The node an operator asked for (PARLEY_NODE_ID); on a shared database it is claimed like any other."""
_default = IdGenerator(PREFERRED_NODE)


def parse_id(value: object) -> int | None:
    """An id as clients send it (a decimal string, or an integer), or None when it cannot be
    one Parley minted: other characters, digits other than 0-9 (which `str.isdigit()`
    accepts and `int()` does not), or past 63 bits (which the database cannot hold)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    else:
        return None
    return number if 0 <= number <= MAX_ID else None


def new_id() -> int:
    """A new unique id from the process-wide generator."""
    return _default.next()


def id_generator() -> IdGenerator:
    """The process-wide generator behind `new_id`."""
    return _default


def new_key(nbytes: int = 24) -> str:
    """A new secret key (application keys, admin tokens): URL-safe, no padding."""
    return secrets.token_urlsafe(nbytes)
