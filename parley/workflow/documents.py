"""A workflow document as an operator hands it in (a file, the admin API's body): Parley's own
format, or a Dify DSL file imported on the way. One place decides which, for the CLI and the
admin API alike."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from parley.workflow.definition import Problem, WorkflowDefinition, WorkflowInvalid, parse_workflow
from parley.workflow.dify import DifyImportError, import_dify


def is_dify(document: Any) -> bool:
    """Dify's files say `kind: app` and keep the graph under `workflow:`; Parley's `workflow:` is a number."""
    return isinstance(document, dict) and (document.get("kind") == "app" or isinstance(document.get("workflow"), dict))


def read_workflow(document: Any, *, models: dict[str, str] | None = None,
                  known_models: Iterable[str] | None = None) -> tuple[WorkflowDefinition, list[str]]:
    """The validated definition and the import's notes (what was skipped). Raises
    WorkflowInvalid, whose problems name node and field (a refused Dify node by its id)."""
    notes: list[str] = []
    try:
        if is_dify(document):
            document, notes = import_dify(document, models=models, known_models=known_models)
    except DifyImportError as exc:
        raise WorkflowInvalid([_dify_problem(problem) for problem in exc.problems]) from None
    return parse_workflow(document), notes


_DIFY_NODE = re.compile(r"^node (\S+) \(([^)]*)\): (.*)$", re.S)


def _dify_problem(text: str) -> Problem:
    """The importer's line "node ID (type): why" with the node id as the problem's node."""
    match = _DIFY_NODE.match(text)
    return Problem(node=match[1], message=f"Dify {match[2]} node: {match[3]}") if match else Problem(message=text)
