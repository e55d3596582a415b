"""Nodes that ask a model or the knowledge base: LLM, parameter extractor, tag extractor,
intent recognition, knowledge retrieval, knowledge Q&A.

The extractors and the intent node ask their model for a JSON object, as Dify's do. A model
answer is read leniently (code fences and text around the object are ignored); when there is
still no JSON object in it:
- intent recognition takes its fallback intent (the first one unless `fallback` names
  another) and says so in its `parse_error` output, so the run goes on;
- the parameter and tag extractors fail (Status 3) with the model's answer in FailMessage:
  an extraction nobody can read would otherwise feed empty values to the nodes after it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from parley.models.base import ChatMessage
from parley.workflow.definition import (
    InputParam,
    IntentNode,
    KnowledgeQANode,
    KnowledgeRetrievalNode,
    LLMNode,
    ParameterExtractorNode,
    TagExtractorNode,
)
from parley.workflow.nodes.basic import coerce
from parley.workflow.references import SYSTEM, as_text, render, render_text
from parley.workflow.runner import NodeContext, NodeFailed, NodeResult, Suspend
from parley.workflow.seams import ModelAnswer, Passage

_FENCE = re.compile(r"^```[A-Za-z]*\s*|\s*```$")


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object in a model's answer, or None."""
    candidate = _FENCE.sub("", text.strip())
    for attempt in (candidate, candidate[candidate.find("{"): candidate.rfind("}") + 1]):
        if not attempt:
            continue
        try:
            value = orjson.loads(attempt)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


async def ask_model(ctx: NodeContext, model: str | None, messages: list[ChatMessage]) -> ModelAnswer:
    chat = ctx.runtime.chat
    if chat is None:
        raise NodeFailed("no chat model is available to workflows here")
    started = time.perf_counter()
    try:
        answer = await chat(model, messages)
    finally:
        ctx.model_time(time.perf_counter() - started)
    ctx.model_used(answer)
    ctx.record.task_output = answer.text
    return answer


def _history(ctx: NodeContext, pairs: int) -> list[ChatMessage]:
    if not pairs:
        return []
    turns = ctx.values.get(SYSTEM, {}).get("history") or []
    recent = turns[-2 * pairs:]
    return [ChatMessage(t["role"], t["content"]) for t in recent if t.get("role") in ("user", "assistant")]


async def run_llm(ctx: NodeContext) -> NodeResult:
    node: LLMNode = ctx.node  # type: ignore[assignment]
    system = render_text(node.system, ctx.values)
    prompt = render_text(node.prompt, ctx.values)
    messages = ([ChatMessage("system", system)] if system else []) + _history(ctx, node.history)
    messages.append(ChatMessage("user", prompt))
    ctx.record.input = {"system": system, "prompt": prompt} if system else {"prompt": prompt}
    answer = await ask_model(ctx, node.model, messages)
    return NodeResult(outputs={"text": answer.text})


def _describe_params(params: list[InputParam] | list[Any]) -> str:
    lines = []
    for p in params:
        kind = getattr(p, "type", "string")
        required = ", required" if getattr(p, "required", False) else ""
        options = getattr(p, "options", None) or getattr(p, "values", None)
        choices = f"; one of: {', '.join(options)}" if options else ""
        lines.append(f"- {p.name} ({kind}{required}): {p.description}{choices}")
    return "\n".join(lines)


async def run_parameter_extractor(ctx: NodeContext) -> NodeResult:
    """Fills typed parameters from the question; asks the user for required ones still missing
    (the run waits), and tries again with the answer."""
    node: ParameterExtractorNode = ctx.node  # type: ignore[assignment]
    if ctx.resumed_with is None:
        text = render_text(node.query, ctx.values)
        ctx.state.update(text=text, asks=0, found={})
    else:
        text = ctx.resumed_with
    instruction = render_text(node.instruction, ctx.values)
    system = (
        "Extract these parameters from the user's message. Answer with one JSON object and nothing "
        "else: its keys are the parameter names; leave out any parameter the message does not give.\n"
        f"Parameters:\n{_describe_params(node.parameters)}" + (f"\n{instruction}" if instruction else "")
    )
    ctx.record.input = {"query": text, "found_before": ctx.state.get("found", {})}
    answer = await ask_model(ctx, node.model, [ChatMessage("system", system), ChatMessage("user", text)])
    parsed = parse_json_object(answer.text)
    if parsed is None:
        raise NodeFailed(f"the model's answer is not a JSON object: {answer.text[:200]!r}")
    found: dict[str, Any] = dict(ctx.state.get("found", {}))
    for param in node.parameters:
        value = parsed.get(param.name)
        if value is None or value == "":
            continue
        try:
            value = coerce(param, value)
        except NodeFailed:
            continue  # a value of the wrong type counts as not given
        if param.options and value not in param.options:
            continue
        found[param.name] = value
    ctx.state["found"] = found
    missing = [p for p in node.parameters if p.required and p.name not in found]
    outputs = {p.name: found.get(p.name, p.default) for p in node.parameters}
    if missing:
        asks = int(ctx.state.get("asks", 0))
        if asks >= node.max_asks:
            raise NodeFailed(f"still missing after {asks} questions: {', '.join(p.name for p in missing)}")
        ctx.state["asks"] = asks + 1
        names = ", ".join(p.description or p.name for p in missing)
        question = render_text(node.ask, ctx.values).replace("{{missing}}", names) if node.ask else f"Please tell me: {names}."
        return NodeResult(outputs=outputs, reply=question, suspend=Suspend(reply=question))
    return NodeResult(outputs=outputs)


async def run_tag_extractor(ctx: NodeContext) -> NodeResult:
    node: TagExtractorNode = ctx.node  # type: ignore[assignment]
    text = render_text(node.query, ctx.values)
    instruction = render_text(node.instruction, ctx.values)
    system = (
        "Tag the user's message. Answer with one JSON object and nothing else: its keys are the tag "
        "names, each with the tag's value (null when the message gives none).\n"
        f"Tags:\n{_describe_params(node.tags)}" + (f"\n{instruction}" if instruction else "")
    )
    ctx.record.input = {"query": text}
    answer = await ask_model(ctx, node.model, [ChatMessage("system", system), ChatMessage("user", text)])
    parsed = parse_json_object(answer.text)
    if parsed is None:
        raise NodeFailed(f"the model's answer is not a JSON object: {answer.text[:200]!r}")
    tags: dict[str, Any] = {}
    for tag in node.tags:
        value = parsed.get(tag.name)
        if value is not None and tag.values and as_text(value) not in tag.values:
            value = None  # not one of the allowed values
        tags[tag.name] = value
    return NodeResult(outputs={"tags": tags, **tags})


async def run_intent(ctx: NodeContext) -> NodeResult:
    node: IntentNode = ctx.node  # type: ignore[assignment]
    text = render_text(node.query, ctx.values)
    instruction = render_text(node.instruction, ctx.values)
    listing = "\n".join(f"- {i.id}: {i.name}" + (f" ({i.description})" if i.description else "") for i in node.intents)
    system = (
        "Classify the user's message into exactly one of these intents. Answer with one JSON object "
        f'and nothing else: {{"intent": "<intent id>"}}.\nIntents:\n{listing}' + (f"\n{instruction}" if instruction else "")
    )
    ctx.record.input = {"query": text}
    answer = await ask_model(ctx, node.model, [ChatMessage("system", system), ChatMessage("user", text)])
    parsed = parse_json_object(answer.text)
    chosen = None
    error = ""
    if parsed is None:
        error = f"not a JSON object: {answer.text[:200]!r}"
    else:
        named = as_text(parsed.get("intent", parsed.get("id", parsed.get("category_id", "")))).strip()
        by_name = {i.name.casefold(): i for i in node.intents}
        chosen = next((i for i in node.intents if i.id == named), None) or by_name.get(named.casefold())
        if chosen is None:
            error = f"names no known intent: {answer.text[:200]!r}"
    if chosen is None:
        fallback = node.fallback or node.intents[0].id
        chosen = next(i for i in node.intents if i.id == fallback)
    return NodeResult(outputs={"intent": chosen.id, "name": chosen.name, "parse_error": error}, port=chosen.id)


def _labels(ctx: NodeContext, labels: dict[str, list[str]]) -> dict[str, list[str]]:
    scope: dict[str, list[str]] = {}
    for attribute, values in render(labels, ctx.values).items():
        flat: list[str] = []
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, list):
                flat += [as_text(v) for v in value if v not in (None, "")]
            elif value not in (None, ""):
                flat.append(as_text(value))
        if flat:
            scope[attribute] = flat
    return scope


async def _retrieve(ctx: NodeContext, query: str, labels: dict[str, list[str]], top_k: int) -> list[Passage]:
    retriever = ctx.runtime.retriever
    if retriever is None:
        raise NodeFailed("this application has no knowledge base to search")
    scope = _labels(ctx, labels)
    ctx.record.input = {"query": query, "labels": scope, "top_k": top_k}
    return await retriever.retrieve(query, labels=scope, top_k=top_k)


def _passages(passages: list[Passage]) -> list[dict[str, Any]]:
    return [{"content": p.content, "title": p.title, "score": p.score, "metadata": p.metadata} for p in passages]


async def run_knowledge_retrieval(ctx: NodeContext) -> NodeResult:
    node: KnowledgeRetrievalNode = ctx.node  # type: ignore[assignment]
    passages = await _retrieve(ctx, render_text(node.query, ctx.values), node.labels, node.top_k)
    return NodeResult(outputs={"result": _passages(passages), "text": "\n\n".join(p.content for p in passages)})


async def run_knowledge_qa(ctx: NodeContext) -> NodeResult:
    node: KnowledgeQANode = ctx.node  # type: ignore[assignment]
    query = render_text(node.query, ctx.values)
    passages = await _retrieve(ctx, query, node.labels, node.top_k)
    knowledge = "\n\n".join(f"[{i + 1}] {p.content}" for i, p in enumerate(passages)) or "(nothing found)"
    system = render_text(node.system, ctx.values) or (
        "Answer the user's question from the knowledge below. If it does not hold the answer, say so."
    )
    messages = [ChatMessage("system", f"{system}\n\nKnowledge:\n{knowledge}"), ChatMessage("user", query)]
    answer = await ask_model(ctx, node.model, messages)
    return NodeResult(outputs={"text": answer.text, "result": _passages(passages)})
