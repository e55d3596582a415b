"""An application's knowledge settings (a field of its AppConfig)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.models.embedders import Thresholds


class KnowledgeSettings(BaseModel):
    """How an application answers from its knowledge base.

    Thresholds are cosine similarities in the embedder's own scale; left out, the
    embedder's defaults apply (they differ a lot between embedders).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    qa_enabled: bool = True
    """Answer directly with a Q&A pair whose question matches above `qa_threshold`."""
    qa_threshold: float | None = Field(None, ge=0, le=1)
    doc_threshold: float | None = Field(None, ge=0, le=1)
    relative_margin: float = Field(0.05, ge=0, le=1)
    """Segments scoring more than this below the best one are left out (embedder scores are
    compressed, so a fixed threshold alone lets weak neighbours of a strong hit through)."""
    top_k: int = Field(5, ge=1, le=50)
    """At most this many segments go into the prompt."""
    token_budget: int = Field(1500, ge=50, le=100_000)
    """At most this many (estimated) tokens of knowledge go into the prompt."""
    unknown_when_nothing: bool = False
    """When nothing relevant is found, reply with the application's unknown-question reply
    (reply method 2) instead of letting the model answer on its own."""
    variable_bindings: dict[str, str] = Field(default_factory=dict)
    """custom_variables keys that scope retrieval, each bound to a label attribute."""
    scope_condition: Literal["and", "or"] = "and"
    """With several scoped attributes: an item must match all of them, or any."""

    def thresholds(self, defaults: Thresholds) -> Thresholds:
        return Thresholds(
            self.qa_threshold if self.qa_threshold is not None else defaults.qa,
            self.doc_threshold if self.doc_threshold is not None else defaults.doc,
        )
