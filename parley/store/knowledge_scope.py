"""Who an item applies to, and the retrieval scope the knowledge queries filter by.

The store's vocabulary for labels: an item's `attr_range` and the `Scope` its queries take
(parley.store.knowledge turns a scope into SQL). Parsing a request into a scope, and what
the labels mean, is the knowledge domain's (parley.knowledge.labels re-exports these).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ATTR_ALL = 1
"""The item applies to every visitor."""
ATTR_LABELS = 2
"""The item applies to visitors whose scope matches its labels."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Requested values per attribute. Empty means no restriction."""

    filters: Mapping[str, frozenset[str]] = field(default_factory=dict)
    condition: Literal["and", "or"] = "and"

    @property
    def restricted(self) -> bool:
        return bool(self.filters)

    def admits(self, attr_range: int, labels: Mapping[str, set[str] | frozenset[str]]) -> bool:
        """Whether an item with these labels is in scope (the in-memory twin of the SQL filter)."""
        if not self.restricted or attr_range == ATTR_ALL:
            return True
        hits = [bool(labels.get(attr, set()) & values) for attr, values in self.filters.items()]
        return all(hits) if self.condition == "and" else any(hits)


EVERYTHING = Scope()
