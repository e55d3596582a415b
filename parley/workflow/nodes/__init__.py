"""Node handlers by node type: each takes a NodeContext and returns a NodeResult."""

from __future__ import annotations

from parley.workflow.nodes import basic, code, compose, http, model

HANDLERS = {
    "start": basic.run_start,
    "end": basic.run_end,
    "message": basic.run_message,
    "option_cards": basic.run_option_cards,
    "condition": basic.run_condition,
    "variable_aggregator": basic.run_aggregator,
    "template": basic.run_template,
    "llm": model.run_llm,
    "parameter_extractor": model.run_parameter_extractor,
    "tag_extractor": model.run_tag_extractor,
    "intent": model.run_intent,
    "knowledge_retrieval": model.run_knowledge_retrieval,
    "knowledge_qa": model.run_knowledge_qa,
    "code": code.run_code,
    "http": http.run_http,
    "loop": compose.run_loop,
    "workflow": compose.run_workflow,
}
