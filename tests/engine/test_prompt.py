from parley.engine.prompt import build_messages, history_pairs, render_role
from parley.store.conversations import RecordRow
from parley.text import estimate_tokens


def record(id, is_from_self, content, related=None, status="success"):
    return RecordRow(id=id, session_pk=1, app_id=1, is_from_self=is_from_self, content=content,
                     status=status, created_at=0, related_record_id=related)


HISTORY = [
    record(1, True, "q1"), record(2, False, "a1", related=1),
    record(3, True, "q2"), record(4, False, "", related=3, status="failed"),
    record(5, True, "q3"), record(6, False, "a3", related=5),
]


def test_role_templates_take_custom_variables():
    assert render_role("Hi {{ name }}, plan {{plan}}.{{missing}}", {"name": "Ann", "plan": "pro"}) == "Hi Ann, plan pro."


def test_failed_turns_are_left_out_of_the_history():
    assert history_pairs(HISTORY) == [("q1", "a1"), ("q3", "a3")]


def test_history_depth_keeps_the_latest_pairs():
    messages = build_messages("role", HISTORY, "now", depth=1, context_window=4096, reserve_for_answer=100)
    assert [(m.role, m.content) for m in messages] == [("system", "role"), ("user", "q3"), ("assistant", "a3"), ("user", "now")]


def test_a_client_history_replaces_the_stored_one_and_an_empty_one_does_not():
    client = [("my name is Ada", "Hello Ada.")]
    sent = build_messages("", HISTORY, "now", depth=5, context_window=4096, reserve_for_answer=100, client_history=client)
    assert [(m.role, m.content) for m in sent] == [("user", "my name is Ada"), ("assistant", "Hello Ada."), ("user", "now")]
    stored = build_messages("", HISTORY, "now", depth=5, context_window=4096, reserve_for_answer=100, client_history=[])
    assert [m.content for m in stored] == ["q1", "a1", "q3", "a3", "now"]


def test_the_oldest_history_goes_first_when_the_context_is_small():
    long = [record(1, True, "x " * 400), record(2, False, "y " * 400, related=1), record(3, True, "q"), record(4, False, "a", related=3)]
    budget = estimate_tokens("q") + estimate_tokens("a") + estimate_tokens("now") + 20
    messages = build_messages("", long, "now", depth=5, context_window=budget, reserve_for_answer=0)
    assert [m.content for m in messages] == ["q", "a", "now"]


def test_chinese_counts_a_token_per_character():
    assert estimate_tokens("你好世界") >= 4
