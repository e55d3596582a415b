"""Dify DSL import: a Dify app file (`kind: app`, mode `workflow` or `advanced-chat`, DSL
0.1 to 0.6) turned into Parley's workflow format.

What maps (Dify -> Parley): start, end, answer (the reply when nothing follows it, a message
otherwise), llm, knowledge-retrieval (the application's own knowledge base: dataset ids are
dropped), question-classifier (intent), parameter-extractor, if-else (condition; the old
single-case form too), code (Python), template-transform (template), http-request (http),
variable-aggregator and its old name variable-assigner, iteration (loop). Canvas notes are
skipped. Everything else (tools, agents, document extractors, conversation variables, ...)
is refused, each node named. `{{#node.field#}}` becomes `{{node.field}}`; Dify's system
variables become Parley's (sys.user_id -> sys.visitor, sys.conversation_id -> sys.session,
sys.dialogue_count -> sys.turn, sys.workflow_run_id -> sys.run_id). A node's model keeps its
name unless the operator maps it (`--model dify-name=parley-name`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SYSTEM_MAP = {
    "query": "query", "user_id": "visitor", "conversation_id": "session", "dialogue_count": "turn",
    "workflow_run_id": "run_id",
}
FIELD_RENAMES = {"question-classifier": {"class_name": "name"}, "iteration": {"output": "outputs"}}
"""Outputs whose Parley name differs from Dify's, by Dify node type."""
SKIPPED_TYPES = {"", "custom-note", "note", "iteration-start", "loop-start"}
OPERATORS = {
    "=": "equals", "is": "equals", "≠": "not_equals", "!=": "not_equals", "is not": "not_equals",
    "contains": "contains", "not contains": "not_contains", "start with": "starts_with", "end with": "ends_with",
    "empty": "empty", "not empty": "not_empty", "null": "empty", "not null": "not_empty",
    ">": "gt", "<": "lt", "≥": "ge", ">=": "ge", "≤": "le", "<=": "le", "in": "in", "not in": "not_in",
}
_DIFY_REF = re.compile(r"\{\{#([^#{}]+)#\}\}")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


class DifyImportError(Exception):
    """What could not be mapped, one line per node."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Refused(Exception):
    pass


@dataclass
class DifyImport:
    """Turns one Dify DSL document into Parley's workflow data."""

    models: dict[str, str] = field(default_factory=dict)
    """Dify model name -> Parley model name."""
    known_models: Iterable[str] | None = None
    """When given, every model a node uses must be one of these (after mapping)."""
    name: str | None = None
    notes: list[str] = field(default_factory=list)

    def convert(self, doc: Any) -> dict[str, Any]:
        if not isinstance(doc, dict) or doc.get("kind", "app") != "app":
            raise DifyImportError(["not a Dify app file (expected `kind: app`)"])
        version = str(doc.get("version", "0.1.0"))
        if not re.match(r"^0\.[1-6](\.\d+)?$", version):
            self.notes.append(f"DSL version {version} is outside 0.1-0.6; imported as far as it maps")
        app = doc.get("app") or {}
        mode = app.get("mode")
        if mode not in ("workflow", "advanced-chat"):
            raise DifyImportError([f"app mode {mode!r} is not a workflow (expected workflow or advanced-chat)"])
        graph = ((doc.get("workflow") or {}).get("graph")) or {}
        raw_nodes = [n for n in graph.get("nodes") or [] if isinstance(n, dict)]
        raw_edges = [e for e in graph.get("edges") or [] if isinstance(e, dict)]
        self._types = {str(n.get("id")): (n.get("data") or {}).get("type", "") for n in raw_nodes}
        self._outgoing = {str(e.get("source")) for e in raw_edges}
        problems: list[str] = []
        top: list[dict[str, Any]] = []
        children: dict[str, list[dict[str, Any]]] = {}
        parent_of: dict[str, str] = {}
        for raw in raw_nodes:
            node_id = str(raw.get("id"))
            data = raw.get("data") or {}
            kind = data.get("type", "")
            if raw.get("type") == "custom-note" or kind in SKIPPED_TYPES:
                if kind not in ("iteration-start", "loop-start"):
                    self.notes.append(f"skipped canvas note {node_id}")
                continue
            parent = raw.get("parentId") or (data.get("iteration_id") if data.get("isInIteration") else None)
            try:
                node = self._node(node_id, kind, data)
            except _Refused as exc:
                problems.append(f"node {node_id} ({kind or 'no type'}): {exc}")
                continue
            if parent:
                parent_of[node_id] = str(parent)
                children.setdefault(str(parent), []).append(node)
            else:
                top.append(node)
        if problems:
            raise DifyImportError(problems)
        edges: list[dict[str, Any]] = []
        body_edges: dict[str, list[dict[str, Any]]] = {}
        kept = {n["id"] for n in top} | set(parent_of)
        for raw in raw_edges:
            source, target = str(raw.get("source")), str(raw.get("target"))
            if source not in kept or target not in kept:
                continue  # an edge from a loop's start marker or a note
            edge: dict[str, Any] = {"source": source, "target": target}
            port = self._port(source, str(raw.get("sourceHandle") or "source"))
            if port is not None:
                edge["port"] = port
            if source in parent_of:
                body_edges.setdefault(parent_of[source], []).append(edge)
            else:
                edges.append(edge)
        for node in top:
            if node["type"] == "loop":
                node["body"] = {"nodes": children.get(node["id"], []), "edges": body_edges.get(node["id"], [])}
        name = self.name or _NAME_CHARS.sub("-", str(app.get("name") or "")).strip("-.") or "imported-workflow"
        return {
            "workflow": 1, "name": name[:128], "description": str(app.get("description") or ""),
            "mode": "chat" if mode == "advanced-chat" else "run", "nodes": top, "edges": edges,
        }

    # -- references --------------------------------------------------------------------------

    def _selector(self, selector: Any) -> str:
        """A Dify value selector ([node, field, ...]) as a Parley reference."""
        if not isinstance(selector, list) or len(selector) < 2:
            raise _Refused(f"unreadable variable selector {selector!r}")
        head, rest = str(selector[0]), [str(s) for s in selector[1:]]
        if rest[0].startswith("sys."):  # the old form: [start_id, "sys.query"]
            head, rest = "sys", [rest[0][4:], *rest[1:]]
        return "{{" + self._path(head, rest) + "}}"

    def _path(self, head: str, rest: list[str]) -> str:
        if head == "sys":
            mapped = SYSTEM_MAP.get(rest[0])
            if mapped is None:
                raise _Refused(f"sys.{rest[0]} has no Parley counterpart")
            return ".".join(["sys", mapped, *rest[1:]])
        if head in ("env", "conversation"):
            raise _Refused(f"{head} variables ({head}.{'.'.join(rest)}) are not imported")
        renames = FIELD_RENAMES.get(self._types.get(head, ""), {})
        return ".".join([head, renames.get(rest[0], rest[0]), *rest[1:]])

    def _text(self, text: Any) -> str:
        """Dify text with `{{#node.field#}}` references, in Parley's `{{node.field}}` form."""
        if text is None:
            return ""

        def swap(match: re.Match[str]) -> str:
            parts = match.group(1).strip().split(".")
            if len(parts) >= 3 and parts[1] == "sys":  # {{#start.sys.query#}}
                parts = parts[1:]
            if len(parts) < 2:
                raise _Refused(f"reference {match.group(0)} has no Parley counterpart")
            return "{{" + self._path(parts[0], parts[1:]) + "}}"

        return _DIFY_REF.sub(swap, str(text))

    def _model(self, data: dict[str, Any]) -> str | None:
        spec = data.get("model") or {}
        name = spec.get("name")
        if not name:
            return None
        mapped = self.models.get(name, name)
        known = list(self.known_models) if self.known_models is not None else None
        if known is not None and mapped not in known:
            raise _Refused(f"model {name!r} is not configured here (map it: --model {name}=NAME, or the admin API's models; known: {', '.join(known)})")
        return mapped

    def _port(self, source: str, handle: str) -> str | None:
        kind = self._types.get(source)
        if kind == "if-else":
            return "else" if handle == "false" else handle
        if kind == "question-classifier":
            return handle
        return None

    # -- nodes ---------------------------------------------------------------------------------

    def _node(self, node_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        convert = getattr(self, "_" + kind.replace("-", "_"), None)
        if convert is None:
            raise _Refused(f"Parley has no counterpart for a {kind!r} node")
        node = {"id": node_id, "name": str(data.get("title") or ""), **convert(node_id, data)}
        return node

    def _start(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        inputs = []
        types = {"text-input": "string", "paragraph": "string", "select": "string", "number": "number",
                 "checkbox": "boolean", "boolean": "boolean", "json_object": "object"}
        for var in data.get("variables") or []:
            kind = types.get(var.get("type", "text-input"))
            if kind is None:
                raise _Refused(f"start input {var.get('variable')!r} of type {var.get('type')!r} (files are not imported)")
            param = _param(var["variable"], kind, var.get("required"), var.get("label"), var.get("options"))
            if var.get("default") not in (None, ""):
                param["default"] = var["default"]
            inputs.append(param)
        return {"type": "start", "inputs": inputs}

    def _end(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        outputs = {o["variable"]: self._selector(o.get("value_selector")) for o in data.get("outputs") or []}
        node: dict[str, Any] = {"type": "end", "outputs": outputs}
        if len(outputs) == 1:
            node["reply"] = next(iter(outputs.values()))  # a single output is the answer
        return node

    def _answer(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        text = self._text(data.get("answer"))
        if node_id in self._outgoing:
            return {"type": "message", "text": text}
        return {"type": "end", "reply": text}

    def _llm(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        template = data.get("prompt_template") or []
        if isinstance(template, dict):  # completion mode: one text
            template = [{"role": "user", **template}]
        if any(m.get("edition_type") == "jinja2" for m in template):
            raise _Refused("Jinja2 prompts are not imported (use a template node before the LLM)")
        context = data.get("context") or {}
        context_ref = self._selector(context["variable_selector"]) if context.get("enabled") and context.get("variable_selector") else ""

        def fill(text: Any) -> str:
            return self._text(str(text or "").replace("{{#context#}}", context_ref))

        system = "\n".join(fill(m.get("text")) for m in template if m.get("role") == "system")
        users = [fill(m.get("text")) for m in template if m.get("role", "user") == "user"]
        if any(m.get("role") == "assistant" for m in template):
            self.notes.append(f"node {node_id}: assistant turns in the prompt were dropped")
        memory = data.get("memory")
        node: dict[str, Any] = {"type": "llm", "system": system, "prompt": "\n".join(users) or "{{sys.query}}"}
        if memory:
            window = memory.get("window") or {}
            node["history"] = int(window.get("size") or 10) if window.get("enabled") else 10
            query = memory.get("query_prompt_template")
            if query and node["prompt"] == "{{sys.query}}":
                node["prompt"] = self._text(query)
        model = self._model(data)
        if model:
            node["model"] = model
        return node

    def _knowledge_retrieval(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("dataset_ids"):
            self.notes.append(f"node {node_id}: searches the application's knowledge base (Dify dataset ids dropped)")
        top_k = ((data.get("multiple_retrieval_config") or {}).get("top_k")) or 5
        return {"type": "knowledge_retrieval", "query": self._selector(data.get("query_variable_selector")), "top_k": int(top_k)}

    def _question_classifier(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        intents = [{"id": str(c["id"]), "name": str(c.get("name") or c["id"])} for c in data.get("classes") or []]
        node: dict[str, Any] = {"type": "intent", "intents": intents, "instruction": self._text(data.get("instruction")),
                                "query": self._selector(data.get("query_variable_selector"))}
        model = self._model(data)
        if model:
            node["model"] = model
        return node

    def _parameter_extractor(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        types = {"string": "string", "number": "number", "bool": "boolean", "boolean": "boolean", "select": "string",
                 "object": "object"}
        params = []
        for p in data.get("parameters") or []:
            kind = p.get("type", "string")
            mapped = "array" if kind.startswith("array") else types.get(kind)
            if mapped is None:
                raise _Refused(f"parameter {p.get('name')!r} of type {kind!r}")
            params.append(_param(p["name"], mapped, p.get("required"), p.get("description"), p.get("options")))
        query = data.get("query")
        node: dict[str, Any] = {"type": "parameter_extractor", "parameters": params,
                                "instruction": self._text(data.get("instruction")),
                                "query": self._selector(query) if query else "{{sys.query}}"}
        model = self._model(data)
        if model:
            node["model"] = model
        return node

    def _condition(self, condition: dict[str, Any]) -> dict[str, Any]:
        if condition.get("sub_variable_condition"):
            raise _Refused("conditions on file attributes are not imported")
        op = OPERATORS.get(str(condition.get("comparison_operator")))
        if op is None:
            raise _Refused(f"comparison {condition.get('comparison_operator')!r}")
        value = condition.get("value")
        return {"value": self._selector(condition.get("variable_selector")), "op": op,
                "to": self._text(value) if isinstance(value, str) else value}

    def _if_else(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        cases = data.get("cases")
        if not cases:  # DSL 0.1: one case, handles "true" / "false"
            cases = [{"case_id": "true", "logical_operator": data.get("logical_operator", "and"),
                      "conditions": data.get("conditions") or []}]
        branches = []
        for case in cases:
            branches.append({"port": str(case.get("case_id") or case.get("id")),
                             "match": "any" if case.get("logical_operator") == "or" else "all",
                             "conditions": [self._condition(c) for c in case.get("conditions") or []]})
        return {"type": "condition", "branches": branches}

    def _code(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("code_language", "python3") != "python3":
            raise _Refused(f"{data.get('code_language')} code (only Python is run)")
        types = {"string": "string", "number": "number", "object": "object", "boolean": "boolean"}
        outputs = {name: ("array" if str(spec.get("type", "")).startswith("array") else types.get(spec.get("type"), "any"))
                   for name, spec in (data.get("outputs") or {}).items()}
        inputs = {v["variable"]: self._selector(v.get("value_selector")) for v in data.get("variables") or []}
        return {"type": "code", "code": str(data.get("code") or ""), "inputs": inputs, "outputs": outputs}

    def _template_transform(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        variables = {v["variable"]: self._selector(v.get("value_selector")) for v in data.get("variables") or []}
        return {"type": "template", "template": str(data.get("template") or ""), "variables": variables}

    def _http_request(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        headers = _pairs(self._text(data.get("headers")))
        auth = data.get("authorization") or {}
        if auth.get("type") == "api-key":
            config = auth.get("config") or {}
            key = self._text(config.get("api_key"))
            kind = config.get("type", "bearer")
            if kind == "bearer":
                headers["Authorization"] = f"Bearer {key}"
            elif kind == "basic":
                headers["Authorization"] = f"Basic {key}"
            else:
                headers[str(config.get("header") or "Authorization")] = key
        body = data.get("body") or {}
        kind = body.get("type", "none")
        payload: Any = None
        raw = body.get("data")
        if isinstance(raw, list):  # newer DSL: [{key, type, value}]
            if kind in ("json", "raw-text"):
                raw = "".join(str(item.get("value") or "") for item in raw)
            else:
                raw = "\n".join(f"{item.get('key')}:{item.get('value', '')}" for item in raw)
        if kind == "json":
            payload = self._text(raw)
            headers.setdefault("Content-Type", "application/json")
        elif kind == "raw-text":
            payload = self._text(raw)
        elif kind == "x-www-form-urlencoded":
            from urllib.parse import urlencode

            payload = urlencode(_pairs(self._text(raw)))
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif kind not in ("none", None):
            raise _Refused(f"request bodies of type {kind!r} are not imported")
        node: dict[str, Any] = {"type": "http", "method": str(data.get("method") or "get").upper(),
                                "url": self._text(data.get("url")), "headers": headers,
                                "params": _pairs(self._text(data.get("params")))}
        if payload is not None:
            node["body"] = payload
        read_timeout = (data.get("timeout") or {}).get("max_read_timeout")
        if read_timeout:
            node["timeout"] = float(read_timeout)
        return node

    def _variable_aggregator(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        if (data.get("advanced_settings") or {}).get("group_enabled"):
            raise _Refused("grouped aggregation is not imported")
        return {"type": "variable_aggregator", "variables": [self._selector(s) for s in data.get("variables") or []]}

    _variable_assigner = _variable_aggregator  # its name in DSL 0.1

    def _iteration(self, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
        node: dict[str, Any] = {"type": "loop", "items": self._selector(data.get("iterator_selector"))}
        if data.get("output_selector"):
            node["output"] = self._selector(data["output_selector"])
        return node


def _param(name: str, kind: str, required: Any, description: Any, options: Any) -> dict[str, Any]:
    """A Parley input parameter (start inputs, extractor parameters)."""
    param: dict[str, Any] = {"name": name, "type": kind, "required": bool(required), "description": str(description or "")}
    if options:
        param["options"] = [str(o) for o in options]
    return param


def _pairs(text: str) -> dict[str, str]:
    """Dify's `key:value` lines (headers, params)."""
    pairs: dict[str, str] = {}
    for line in (text or "").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            if key.strip():
                pairs[key.strip()] = value.strip()
    return pairs


def import_dify(doc: Any, *, models: dict[str, str] | None = None, known_models: Iterable[str] | None = None,
                name: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Parley workflow data from a parsed Dify DSL document, and notes on what was left out.
    Raises DifyImportError naming every node that does not map."""
    importer = DifyImport(models=models or {}, known_models=known_models, name=name)
    return importer.convert(doc), importer.notes
