"""The knowledge service against a real database (SQLite and PostgreSQL), real files and the
embedded embedder."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from parley.config import KnowledgeServerSettings
from parley.ids import IdGenerator
from parley.knowledge.service import KnowledgeError, KnowledgeService, Resolution, quote_infos
from parley.knowledge.settings import KnowledgeSettings
from parley.store.database import Database
from tests.knowledge import files

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP = 1001
SETTINGS = KnowledgeSettings(variable_bindings={"department": "dept", "level": "tier"})


async def open_service(directory: Path, url: str | None = None, **settings) -> tuple[Database, KnowledgeService]:
    """A service (as one process has it) on the database at `url`, by default SQLite in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    database = Database(url or f"sqlite+aiosqlite:///{directory / 'parley.db'}")
    await database.migrate()
    return database, KnowledgeService(database.engine, KnowledgeServerSettings(**settings), directory)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def kb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KnowledgeService]:
    """Every file type learned in the background; policy.docx is for HR only, notes.txt for IT.
    Once on each database."""
    url = request.getfixturevalue("postgres").new_database() if request.param == "postgresql" else None
    database, service = await open_service(tmp_path_factory.mktemp("kb"), url)
    await service.start()
    labels = {"policy.docx": {"dept": ["hr"]}, "notes.txt": {"dept": ["it"]}}
    for name, data in files.every_type().items():
        registered = await service.add_document(APP, name, data, labels=labels.get(name))
        assert registered.action == "created"
    await service.add_qa(
        APP, "What are your opening hours?", "We are open from 9am to 6pm, Monday to Friday.",
        ["When do you open?", "营业时间是什么时候？"],
    )
    await service.add_qa(APP, "What is the VIP discount?", "VIP members get 20% off.", [], {"tier": ["vip"]})
    await service.idle()
    yield service
    await service.aclose()
    await database.close()


async def ask(kb: KnowledgeService, question: str, **variables: str) -> Resolution:
    return await kb.resolve(APP, question, kb.scope(variables, None, SETTINGS), SETTINGS)


async def test_every_document_is_learned(kb):
    documents = {d.name: d for d in await kb.list_documents(APP)}
    assert set(documents) == set(files.every_type())
    assert {d.status for d in documents.values()} == {"success"}
    assert all(d.segment_count > 0 for d in documents.values())


@pytest.mark.parametrize(
    "question, document, snippet",
    [
        ("How do I reset my password?", "guide.md", "Reset password"),
        ("退款多久能到账？", "guide.md", "七个工作日"),
        ("How long does the battery last?", "manual.pdf", "twelve hours"),
        ("国际订单多久能送达？", "faq.html", "十到十五天"),
        ("How much does an apple cost per kilo?", "prices.xlsx", "Apple"),
        ("上海的门店地址是什么？", "stores.csv", "世纪大道"),
    ],
)
async def test_questions_in_chinese_and_english_find_their_segment(kb, question, document, snippet):
    resolution = await ask(kb, question)
    assert resolution.kind == "passages"
    best = resolution.passages[0]
    assert (best.doc_name, snippet in best.text) == (document, True), resolution.context


@pytest.mark.parametrize(
    "question, document",
    [("the printer code at reception", "notes.txt"), ("苹果礼盒", "prices.xlsx"), ("世纪大道的门店", "stores.csv")],
)
async def test_keyword_search_ranks_the_segment_holding_the_words(kb, question, document):
    """The keyword half of hybrid search works on every database (on PostgreSQL it used to find nothing)."""
    vector = kb.embedder.embed_queries([question])[0]
    hits = await kb.searcher.search(APP, question, vector, kb.scope({}, None, SETTINGS))
    [best] = [h for h in hits if h.keyword_rank == 1]
    assert best.segment.doc_name == document


async def test_segments_carry_page_sheet_and_headings(kb):
    battery = (await ask(kb, "How long does the battery last?")).passages[0]
    assert battery.page == 2
    apple = (await ask(kb, "How much does an apple cost per kilo?")).passages[0]
    assert apple.sheet == "Fruit"
    refund = (await ask(kb, "退款多久能到账？")).passages[0]
    assert refund.headings == "Parley Guide > 退款"


async def test_references_knowledge_and_context_agree(kb):
    resolution = await ask(kb, "How do I reset my password?")
    references = resolution.references()
    assert [r["type"] for r in references] == [2] * len(resolution.passages)
    first, passage = references[0], resolution.passages[0]
    assert first["id"] == str(passage.segment_id) and first["id"].isdigit()
    assert first["doc_id"] == first["doc_biz_id"] == str(passage.doc_id)
    assert (first["doc_name"], first["name"], first["qa_biz_id"]) == ("guide.md", "guide", "0")
    assert resolution.knowledge()[0] == {"id": first["id"], "type": 2, "seg_id": first["id"]}
    assert resolution.context.startswith("[1] guide.md (Parley Guide > Passwords)\n")
    assert resolution.input_tokens > 0 and resolution.elapsed_ms >= 0


async def test_quote_positions_point_at_the_cited_text(kb):
    resolution = await ask(kb, "How do I reset my password?")
    reply = "Open Settings, then Security[1]. Refunds are another matter."
    (info,) = quote_infos(reply, resolution.references())
    assert reply[info["position"] :].startswith("[1]") and info["index"] == 1
    details = await kb.describe_refer(APP, [resolution.references()[info["index"] - 1]["id"]])
    assert "Reset password" in details[0].page_content


async def test_label_scope_excludes_other_departments(kb):
    question = "How many days of paid annual leave do employees get?"
    sales = await ask(kb, question, department="sales")
    assert all(p.doc_name != "policy.docx" for p in sales.passages)
    hr = await ask(kb, question, department="hr")
    assert hr.passages[0].doc_name == "policy.docx"
    several = await ask(kb, question, department="sales|hr")
    assert several.passages[0].doc_name == "policy.docx"
    # a document for everyone stays visible inside any scope
    battery = await ask(kb, "How long does the battery last?", department="sales")
    assert battery.passages[0].doc_name == "manual.pdf"


async def test_legacy_visitor_labels_scope_the_same_way(kb):
    scope = kb.scope({}, [{"name": "dept", "values": ["hr"]}], SETTINGS)
    resolution = await kb.resolve(APP, "What is the office wifi password?", scope, SETTINGS)
    assert all(p.doc_name != "notes.txt" for p in resolution.passages)
    scope = kb.scope({}, [{"name": "dept", "values": ["it"]}], SETTINGS)
    resolution = await kb.resolve(APP, "What is the office wifi password?", scope, SETTINGS)
    assert resolution.passages[0].doc_name == "notes.txt"


@pytest.mark.parametrize("question", ["When do you open?", "营业时间是什么时候", "what are your opening hours"])
async def test_a_matching_question_gets_the_qa_answer(kb, question):
    resolution = await ask(kb, question)
    assert resolution.kind == "qa"
    assert resolution.qa.answer == "We are open from 9am to 6pm, Monday to Friday."
    (reference,) = resolution.references()
    assert reference["type"] == 1 and reference["qa_biz_id"] == reference["id"] == str(resolution.qa.qa_id)
    (detail,) = await kb.describe_refer(APP, [reference["id"]])
    assert (detail.doc_type, detail.question) == (1, "What are your opening hours?")


async def test_a_labelled_qa_pair_answers_only_inside_its_scope(kb):
    assert (await ask(kb, "What is the VIP discount?", level="basic")).kind != "qa"
    assert (await ask(kb, "What is the VIP discount?", level="vip")).qa.answer == "VIP members get 20% off."


async def test_nothing_relevant_gives_nothing_or_the_unknown_reply(kb):
    question = "Who won the football world cup in 1966?"
    assert (await ask(kb, question)).kind == "nothing"
    strict = SETTINGS.model_copy(update={"unknown_when_nothing": True})
    resolution = await kb.resolve(APP, question, settings=strict)
    assert (resolution.kind, resolution.unknown, resolution.references()) == ("nothing", True, [])


async def test_the_token_budget_limits_the_context(kb):
    tight = SETTINGS.model_copy(update={"token_budget": 50, "top_k": 5, "relative_margin": 1.0})
    resolution = await kb.resolve(APP, "How do I reset my password?", settings=tight)
    assert len(resolution.passages) >= 1
    from parley.text import estimate_tokens

    assert sum(estimate_tokens(p.text) for p in resolution.passages) <= 50


async def test_bad_input_is_refused_with_a_reason(kb):
    with pytest.raises(KnowledgeError, match="unsupported file type"):
        await kb.add_document(APP, "virus.exe", b"MZ")
    with pytest.raises(KnowledgeError, match="answer"):
        await kb.add_qa(APP, "Question?", "")
    with pytest.raises(KnowledgeError, match="not a decimal id"):
        await kb.describe_refer(APP, ["abc"])
    assert await kb.describe_refer(APP, ["123"]) == []


async def test_a_damaged_file_fails_with_a_reason_and_hides_nothing(kb):
    registered = await kb.add_document(APP, "broken.pdf", b"%PDF-1.4 not a pdf at all", background=False)
    document = await kb.learn(registered.document.id)
    assert document.status == "failed" and "could not read pdf" in document.reason
    await kb.delete_document(APP, document.id)


async def test_an_application_without_knowledge_resolves_to_nothing(kb):
    assert (await kb.resolve(APP + 1, "How do I reset my password?")).kind == "nothing"
    strict = KnowledgeSettings(unknown_when_nothing=True)
    assert (await kb.resolve(APP + 1, "How do I reset my password?", settings=strict)).unknown


async def test_has_knowledge_sees_own_changes_at_once_and_others_later(tmp_path, database_url):
    database, service = await open_service(tmp_path / "own", database_url)
    other = KnowledgeService(database.engine, KnowledgeServerSettings(), tmp_path / "own")  # another process
    try:
        app = 2002
        assert await service.has_knowledge(app) is False
        pair = await service.add_qa(app, "Where is the office?", "On the third floor.", [])
        assert await service.has_knowledge(app) is True  # its own change: at once

        assert await other.has_knowledge(app) is True
        assert await other.delete_qa(app, pair.id) is True
        assert await other.has_knowledge(app) is False
        assert await service.has_knowledge(app) is True  # someone else's: after a refresh (tests/test_caching.py)
    finally:
        await other.aclose()
        await service.aclose()
        await database.close()


async def test_qa_pairs_changed_by_a_writer_whose_clock_is_behind_are_matched_at_once(tmp_path, database_url, monkeypatch):
    """Each process matches Q&A questions held in memory and checks them against the database
    before every match. Ids are time-ordered by their minter's clock only: a process on another
    host whose clock is behind mints older ids, and its change must show all the same."""
    database, service = await open_service(tmp_path / "own", database_url)
    other = KnowledgeService(database.engine, KnowledgeServerSettings(), tmp_path / "own")  # another process
    try:
        app = 2003
        canteen = await service.add_qa(app, "Where is the canteen?", "On the ground floor.", [])
        await service.add_qa(app, "Where do I leave my bicycle?", "In the yard.", [])
        assert (await service.resolve(app, "Where is the canteen?")).kind == "qa"  # its questions are in memory

        behind = time.time() - 60
        monkeypatch.setattr("parley.ids._default", IdGenerator())  # the other process's, on a host
        monkeypatch.setattr("parley.ids.time.time", lambda: behind)  # whose clock is a minute behind
        await other.modify_qa(app, canteen.id, question="How do I book a meeting room?", answer="Through the calendar.")
        monkeypatch.undo()

        booked = await service.resolve(app, "How do I book a meeting room?")
        assert booked.kind == "qa" and booked.qa.answer == "Through the calendar."
        assert (await service.resolve(app, "Where is the canteen?")).kind != "qa"
    finally:
        await other.aclose()
        await service.aclose()
        await database.close()
