"""Workflow runs in the store, SQLite and PostgreSQL: a run paused for the user is saved,
found by its session, resumed from what was stored, and its trace read back."""

import pytest
import yaml

from parley.ids import new_id
from parley.store.apps import AppRepository
from parley.store.database import Database
from parley.store.workflows import WorkflowRunRepository, WorkflowRunRow
from parley.workflow.definition import parse_workflow
from parley.workflow.runner import RunState, SystemValues, WorkflowRunner

MENU = parse_workflow(yaml.safe_load("""
name: menu
nodes:
  - {id: start, type: start}
  - {id: pick, type: option_cards, text: "Tea or coffee?", options: [Tea, Coffee]}
  - {id: tea, type: end, reply: "Tea it is"}
  - {id: coffee, type: end, reply: "Coffee it is"}
edges: [{source: start, target: pick}, {source: pick, target: tea, port: Tea}, {source: pick, target: coffee, port: Coffee}]
"""))


@pytest.fixture
async def store(database_url):
    database = Database(database_url)
    await database.migrate()
    app = await AppRepository(database.engine).create("flows", {"name": "flows"})
    yield WorkflowRunRepository(database.engine), app.id
    await database.close()


def row(app_id: int, session: str, state: RunState, record_id: int | None = None) -> WorkflowRunRow:
    return WorkflowRunRow(id=int(state.run_id), app_id=app_id, session_id=session, workflow_name=state.workflow_name,
                          status=state.status, state=state.model_dump(mode="json"), error=state.error, record_id=record_id)


async def test_a_paused_run_is_stored_found_resumed_and_traced(store):
    runs, app_id = store
    runner = WorkflowRunner()
    state = runner.start(MENU, SystemValues(query="hi", session="s-1"))
    await runner.execute(MENU, state, lambda event: None)
    assert state.status == "suspended"
    await runs.save(row(app_id, "s-1", state, record_id=1))

    assert await runs.waiting(app_id, "s-2") is None
    found = await runs.waiting(app_id, "s-1")
    assert found is not None and found.record_id == 1 and found.workflow_name == "menu"
    resumed = runner.resume(RunState.model_validate(found.state), "Coffee")
    await runner.execute(MENU, resumed, lambda event: None)
    assert resumed.reply == "Coffee it is"
    await runs.save(row(app_id, "s-1", resumed, record_id=2))

    assert await runs.waiting(app_id, "s-1") is None
    [stored] = await runs.list(app_id, "s-1")
    assert stored.status == "finished" and stored.record_id == 2
    trace = RunState.model_validate(stored.state).records
    assert [(r.node_id, r.status) for r in trace] == [("start", 2), ("pick", 1), ("pick", 2), ("coffee", 2)]


async def test_waiting_runs_can_be_abandoned(store):
    runs, app_id = store
    runner = WorkflowRunner()
    state = runner.start(MENU, SystemValues(query="hi"))
    await runner.execute(MENU, state, lambda event: None)
    await runs.save(row(app_id, "s-3", state))
    assert await runs.close_waiting(app_id, "s-3") == 1
    assert await runs.waiting(app_id, "s-3") is None
    assert (await runs.get(int(state.run_id))).status == "abandoned"
    assert await runs.get(new_id()) is None


async def test_only_one_question_claims_a_waiting_run(store):
    """Two questions at once: a single conditional UPDATE decides, so exactly one resumes the
    run; a claim left by a process that died is taken over once it is stale."""
    import asyncio

    runs, app_id = store
    runner = WorkflowRunner()
    state = runner.start(MENU, SystemValues(query="hi"))
    await runner.execute(MENU, state, lambda event: None)
    await runs.save(row(app_id, "s-4", state))
    run_id = int(state.run_id)

    won = await asyncio.gather(*(runs.claim(run_id) for _ in range(4)))
    assert sorted(won) == [False, False, False, True]
    claimed = await runs.waiting(app_id, "s-4")
    assert claimed.status == "running" and claimed.state["waiting"] == "pick"
    assert not await runs.claim(run_id, stale_after_ms=60_000)  # a live claim is not stale

    await asyncio.sleep(0.01)  # the claim's holder died: once stale, the next question takes it over
    assert await runs.claim(run_id, stale_after_ms=1)
    await runs.unclaim(run_id)  # a refused question gives it back
    assert (await runs.waiting(app_id, "s-4")).status == "suspended"
