"""What the model is sent: the role prompt, the session's history and the question."""

from __future__ import annotations

import re

from parley.models.base import ChatMessage
from parley.store.conversations import RecordRow
from parley.text import estimate_tokens, fit_text

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
_ANSWERED = ("success", "stopped")


def render_role(template: str, variables: dict[str, str]) -> str:
    """Replaces `{{key}}` with custom_variables[key]; a key the request lacks becomes empty."""
    if "{{" not in template:
        return template
    return _VARIABLE.sub(lambda m: variables.get(m.group(1), ""), template)


def history_pairs(records: list[RecordRow]) -> list[tuple[str, str]]:
    """(question, answer) pairs of the answered turns among `records` (oldest first)."""
    questions = {r.id: r.content for r in records if r.is_from_self}
    pairs = []
    for record in records:
        if record.is_from_self or record.status not in _ANSWERED or not record.content:
            continue
        question = questions.get(record.related_record_id or 0)
        if question is not None:
            pairs.append((question, record.content))
    return pairs


def build_messages(
    system_role: str,
    history: list[RecordRow],
    question: str,
    *,
    depth: int,
    context_window: int,
    reserve_for_answer: int,
    client_history: list[tuple[str, str]] | None = None,
    material: str = "",
) -> list[ChatMessage]:
    """The chat messages for one turn, the oldest history dropped first to fit the context.

    `client_history` (pairs a client sent along, as the conversation so far) replaces the
    session's stored history for this turn when it is not empty: the client that keeps the
    conversation itself says what the model should see, and turns it resends that were also
    stored are not counted twice. `material` (attached documents, retrieved knowledge) goes
    before the question and is cut to what the context leaves.
    """
    pairs = list(client_history) if client_history else history_pairs(history)
    pairs = pairs[-depth:] if depth > 0 else []
    budget = context_window - reserve_for_answer - estimate_tokens(system_role) - estimate_tokens(question)
    if material:
        material = fit_text(material, max(budget // 2, budget - 1000))
        budget -= estimate_tokens(material)
        question = f"{material}\n\n{question}"
    kept: list[tuple[str, str]] = []
    for q, a in reversed(pairs):
        cost = estimate_tokens(q) + estimate_tokens(a)
        if cost > budget:
            break
        budget -= cost
        kept.append((q, a))
    messages = [ChatMessage("system", system_role)] if system_role else []
    for q, a in reversed(kept):
        messages.append(ChatMessage("user", q))
        messages.append(ChatMessage("assistant", a))
    messages.append(ChatMessage("user", question))
    return messages


def documents_material(documents: list[tuple[str, str]]) -> str:
    """Attached documents as the model reads them: each file's name, then its text. A file
    with no text (a photo) is named, so the model knows it was sent but cannot see it."""
    return "\n\n".join(
        f"[Attached document: {name}]\n{text}" if text.strip() else f"[Attached file: {name} (no text could be read from it)]"
        for name, text in documents
    )
