"""The CloudBase AI bot channel: bots, API keys, conversations, records and feedback.

- A bot is a published application made available to CloudBase clients under a bot id.
- Callers authenticate with keys the operator issues per application: an API key has the
  operator's rights on that application's bot (it may also read all feedback), a
  publishable key a visitor's. Each key is one visitor: conversations belong to it.
- A conversation is a Parley session: its id is the session id. Each visitor has one
  default conversation per bot, used when a message names none.
- Feedback is kept per record and sender, and also scores the record (1 like, 2 dislike)
  as ADP's rating does, so every face sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from parley.engine.apps import App, ApplicationService
from parley.engine.faces import Face
from parley.engine.turn import TurnRequest
from parley.ids import new_id, new_key
from parley.models.base import ChatMessage
from parley.models.registry import ModelRegistry
from parley.store.cloudbase import (
    BotRow,
    CloudBaseRepository,
    ConversationRow,
    FeedbackQuery,
    FeedbackRow,
    KeyRow,
)
from parley.store.conversations import ConversationRepository, RecordRow

BOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$")
KEY_PREFIXES = {"api": "cb_api_", "publishable": "cb_pub_"}
TITLE_LIMIT = 256
DEFAULT_TITLE_LENGTH = 30
SCORES = {"upvote": 1, "downvote": 2}
RECOMMEND_PROMPT = (
    "You suggest follow-up questions a user might ask the assistant described below next. "
    "Answer with exactly {count} short questions in the user's language, one per line, "
    "without numbering or any other text.\n\nAssistant: {name}\n{introduction}"
)


class KeyKind(str, Enum):
    API = "api"
    PUBLISHABLE = "publishable"


class Problem(str, Enum):
    """Why a call was refused, in the channel's terms; the face maps them to its codes."""

    MISSING_CREDENTIALS = "missing_credentials"
    INVALID_CREDENTIALS = "invalid_credentials"
    FORBIDDEN = "forbidden"
    BOT_NOT_FOUND = "bot_not_found"
    NOT_FOUND = "not_found"
    INVALID = "invalid"


class ChannelError(Exception):
    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


class OperatorError(Exception):
    """An operator's request (CLI or admin API) that cannot be carried out as given."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the key's application, its rights and the visitor it stands for."""

    key_id: int
    app_id: int
    kind: KeyKind

    @property
    def visitor_id(self) -> str:
        return f"cloudbase:{self.key_id}"

    @property
    def is_operator(self) -> bool:
        return self.kind is KeyKind.API


@dataclass(frozen=True, slots=True)
class Bot:
    """A bot as CloudBase clients see it: the channel's settings over the latest release."""

    row: BotRow
    app: App

    @property
    def bot_id(self) -> str:
        return self.row.bot_id

    @property
    def config(self) -> Any:
        return self.app.release or self.app.draft


@dataclass(frozen=True, slots=True)
class IssuedKey:
    row: KeyRow
    secret: str
    """The key itself, shown once: only its hash is stored."""


@dataclass(frozen=True, slots=True)
class FeedbackInput:
    record_id: int
    type: str
    rating: int = 0
    comment: str = ""
    tags: list[str] = field(default_factory=list)
    input: str = ""
    ai_answer: str = ""


@dataclass(frozen=True, slots=True)
class HistoryItem:
    role: str
    content: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


class CloudBaseChannel:
    def __init__(
        self,
        repository: CloudBaseRepository,
        apps: ApplicationService,
        conversations: ConversationRepository,
        models: ModelRegistry,
    ) -> None:
        self._repo = repository
        self._apps = apps
        self._conversations = conversations
        self._models = models

    # --- the operator's side -------------------------------------------------------

    async def publish_bot(
        self,
        app_name: str,
        *,
        bot_id: str | None = None,
        enabled: bool | None = None,
        search_enable: bool | None = None,
        multi_conversation: bool | None = None,
        need_recommend: bool | None = None,
        background: str | None = None,
    ) -> Bot:
        """Makes the application a CloudBase bot, or changes its bot settings (None keeps them)."""
        app = await self._apps.get(app_name)
        if app is None:
            raise OperatorError(f"no application named {app_name!r}")
        current = await self._repo.bot_for_app(app.id)
        if bot_id is not None:
            if not BOT_ID.match(bot_id):
                raise OperatorError("a bot id is 2-64 letters, digits, '_' or '-', starting with a letter or digit")
            if current is not None and current.bot_id != bot_id:
                raise OperatorError(f"{app_name!r} is already published as bot {current.bot_id!r}")
            other = await self._repo.get_bot(bot_id)
            if other is not None and other.app_id != app.id:
                raise OperatorError(f"bot id {bot_id!r} is taken by another application")
        if background is not None and len(background) > 1024:
            raise OperatorError("background must be at most 1024 characters")
        now = _now_ms()
        row = BotRow(
            bot_id=current.bot_id if current else bot_id or f"bot-{secrets.token_hex(4)}",
            app_id=app.id,
            enabled=_setting(enabled, current, "enabled", True),
            search_enable=_setting(search_enable, current, "search_enable", False),
            multi_conversation=_setting(multi_conversation, current, "multi_conversation", True),
            need_recommend=_setting(need_recommend, current, "need_recommend", True),
            background=_setting(background, current, "background", ""),
            created_at=current.created_at if current else now,
            updated_at=now,
        )
        await self._repo.save_bot(row)
        return Bot(row, app)

    async def bot_of_app(self, app_name: str) -> Bot | None:
        app = await self._apps.get(app_name)
        if app is None:
            return None
        row = await self._repo.bot_for_app(app.id)
        return Bot(row, app) if row else None

    async def issue_key(self, app_name: str, kind: KeyKind, name: str = "") -> IssuedKey:
        """A new key for the application's bot (publishing the bot first if need be)."""
        if len(name) > 128:
            raise OperatorError("a key name is at most 128 characters")
        bot = await self.bot_of_app(app_name) or await self.publish_bot(app_name)
        secret = KEY_PREFIXES[kind.value] + new_key(30)
        row = KeyRow(
            id=new_id(), app_id=bot.app.id, kind=kind.value, name=name, key_hash=hash_key(secret),
            key_prefix=secret[:12], created_at=_now_ms(),
        )
        await self._repo.add_key(row)
        return IssuedKey(row, secret)

    async def list_keys(self, app_name: str) -> list[KeyRow]:
        app = await self._apps.get(app_name)
        if app is None:
            raise OperatorError(f"no application named {app_name!r}")
        return await self._repo.list_keys(app.id)

    async def revoke_key(self, key_id: int) -> bool:
        return await self._repo.revoke_key(key_id, _now_ms())

    # --- callers -------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Caller:
        """The caller behind an `Authorization: Bearer KEY` header."""
        if not authorization:
            raise ChannelError(Problem.MISSING_CREDENTIALS, "the Authorization header is missing")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ChannelError(Problem.MISSING_CREDENTIALS, "expected Authorization: Bearer <API key>")
        key = await self._repo.key_by_hash(hash_key(token))
        if key is None or key.revoked_at is not None:
            raise ChannelError(Problem.INVALID_CREDENTIALS, "Credentials are invalid")
        return Caller(key.id, key.app_id, KeyKind(key.kind))

    async def bots(
        self, caller: Caller, name: str = "", introduction: str = "", information: str = "", enable: bool | None = None
    ) -> list[Bot]:
        """The bots the caller may see (a key serves one application), filtered.

        `name` and `introduction` match their fields, `information` either; all ignore case.
        """
        bot = await self._visible_bot(caller)
        if bot is None:
            return []
        bot_name, intro = bot.config.name.lower(), bot.config.description.lower()
        if name and name.lower() not in bot_name:
            return []
        if introduction and introduction.lower() not in intro:
            return []
        if information and information.lower() not in bot_name and information.lower() not in intro:
            return []
        if enable is not None and bot.row.enabled != enable:
            return []
        return [bot]

    async def bot(self, caller: Caller, bot_id: str) -> Bot:
        """The bot, if the caller's key may use it and it is published."""
        row = await self._repo.get_bot(bot_id)
        if row is None:
            raise ChannelError(Problem.BOT_NOT_FOUND, f"bot {bot_id!r} does not exist")
        if row.app_id != caller.app_id:
            raise ChannelError(Problem.FORBIDDEN, f"this key does not give access to bot {bot_id!r}")
        bot = await self._visible_bot(caller)
        if bot is None:
            raise ChannelError(Problem.BOT_NOT_FOUND, f"bot {bot_id!r} is not published")
        return bot

    async def usable_bot(self, caller: Caller, bot_id: str) -> Bot:
        """The bot, if it may also answer now (enabled)."""
        bot = await self.bot(caller, bot_id)
        if not bot.row.enabled:
            raise ChannelError(Problem.BOT_NOT_FOUND, f"bot {bot_id!r} is disabled")
        return bot

    async def _visible_bot(self, caller: Caller) -> Bot | None:
        row = await self._repo.bot_for_app(caller.app_id)
        if row is None:
            return None
        app = await self._apps.get_by_id(caller.app_id)
        if app is None or app.release is None:
            return None
        return Bot(row, app)

    # --- conversations ---------------------------------------------------------------

    async def conversation(self, caller: Caller, bot: Bot, conversation_id: str | None) -> ConversationRow:
        """The named conversation of this visitor, or (None) the visitor's default one."""
        if not conversation_id:
            return await self._default_conversation(caller, bot)
        row = await self._repo.get_conversation(conversation_id)
        if row is None or row.app_id != bot.app.id or row.owner != caller.visitor_id:
            raise ChannelError(Problem.NOT_FOUND, f"conversation {conversation_id!r} does not exist")
        return row

    async def _default_conversation(self, caller: Caller, bot: Bot) -> ConversationRow:
        default_for = f"{bot.app.id}:{caller.visitor_id}"
        row = await self._repo.default_conversation(default_for)
        if row is not None:
            return row
        now = _now_ms()
        return await self._repo.add_conversation(
            ConversationRow(str(new_id()), bot.app.id, caller.visitor_id, "", True, default_for, now, now)
        )

    async def create_conversation(self, caller: Caller, bot: Bot, title: str = "") -> ConversationRow:
        title = _title(title)
        now = _now_ms()
        return await self._repo.add_conversation(
            ConversationRow(str(new_id()), bot.app.id, caller.visitor_id, title, False, None, now, now)
        )

    async def conversations(
        self, caller: Caller, bot: Bot, is_default: bool | None, offset: int, limit: int
    ) -> tuple[list[ConversationRow], int]:
        if is_default:
            await self._default_conversation(caller, bot)  # asking for it makes it
        return await self._repo.list_conversations(bot.app.id, caller.visitor_id, is_default, offset, limit)

    async def rename_conversation(self, caller: Caller, bot: Bot, conversation_id: str, title: str) -> ConversationRow:
        row = await self.conversation(caller, bot, conversation_id)
        await self._repo.update_conversation(row.conversation_id, _now_ms(), _title(title))
        updated = await self._repo.get_conversation(row.conversation_id)
        assert updated is not None
        return updated

    async def delete_conversation(self, caller: Caller, bot: Bot, conversation_id: str) -> None:
        row = await self.conversation(caller, bot, conversation_id)
        await self._repo.delete_conversation(row.conversation_id)

    # --- messages --------------------------------------------------------------------

    def turn_request(
        self,
        caller: Caller,
        bot: Bot,
        conversation: ConversationRow,
        message: str,
        files: Sequence[str] = (),
        request_id: str = "",
        history: Sequence[HistoryItem] = (),
        search: bool | None = None,
    ) -> TurnRequest:
        """The engine's request for a message in a conversation.

        The conversation's stored records are its context, unless the client sends a
        `history`: that is the conversation so far as the client keeps it, and the model sees
        it instead of the stored turns (never both, so nothing is counted twice).
        """
        return TurnRequest(
            app_key=bot.app.app_key,
            visitor_id=caller.visitor_id,
            session_id=conversation.conversation_id,
            face=Face.CLOUDBASE,
            content=message,
            request_id=request_id,
            file_infos=[_file_info(url) for url in files],
            history=history_pairs(history),
            search=search,
        )

    async def message_accepted(self, conversation: ConversationRow, message: str) -> None:
        """Marks the conversation active; an untitled one is titled by its first message."""
        title = None if conversation.title else _title(message[:DEFAULT_TITLE_LENGTH]) or None
        await self._repo.update_conversation(conversation.conversation_id, _now_ms(), title)

    async def records(
        self, caller: Caller, bot: Bot, conversation_id: str | None, newest_first: bool, page_size: int, page_number: int
    ) -> tuple[list[RecordRow], int, str]:
        """A page of a conversation's messages, their total and the conversation id."""
        conversation = await self.conversation(caller, bot, conversation_id)
        rows, total = await self._repo.record_page(
            bot.app.id, Face.CLOUDBASE, conversation.conversation_id, (page_number - 1) * page_size, page_size, newest_first
        )
        return rows, total, conversation.conversation_id

    # --- feedback --------------------------------------------------------------------

    async def submit_feedback(self, caller: Caller, bot: Bot, feedback: FeedbackInput) -> None:
        found = await self._repo.record_with_session(feedback.record_id)
        if found is None:
            raise ChannelError(Problem.NOT_FOUND, f"record {feedback.record_id} does not exist")
        record, _session_id, owner, face = found
        if record.app_id != bot.app.id or face != Face.CLOUDBASE or (owner != caller.visitor_id and not caller.is_operator):
            raise ChannelError(Problem.NOT_FOUND, f"record {feedback.record_id} does not exist")
        if record.is_from_self:
            raise ChannelError(Problem.INVALID, "feedback is given on the bot's answers, not on user messages")
        now = _now_ms()
        await self._repo.save_feedback(
            FeedbackRow(
                id=new_id(), app_id=bot.app.id, record_id=record.id, sender=caller.visitor_id, type=feedback.type,
                rating=feedback.rating, comment=feedback.comment, input=feedback.input,
                ai_answer=feedback.ai_answer or record.content, created_at=now, updated_at=now, tags=list(feedback.tags),
            )
        )
        extra = dict(record.extra or {})
        extra["cloudbase_feedback"] = {"type": feedback.type, "rating": feedback.rating, "comment": feedback.comment,
                                       "tags": list(feedback.tags)}
        await self._conversations.set_score(record.id, SCORES[feedback.type], extra)

    async def feedback(
        self, caller: Caller, bot: Bot, query: FeedbackQuery, page_size: int, page_number: int
    ) -> tuple[list[FeedbackRow], int]:
        if not caller.is_operator:
            raise ChannelError(Problem.FORBIDDEN, "reading feedback needs an API key, not a publishable key")
        return await self._repo.list_feedback(bot.app.id, query, (page_number - 1) * page_size, page_size)

    # --- recommended questions -------------------------------------------------------

    async def recommend_questions(
        self, bot: Bot, message: str, history: Sequence[HistoryItem], count: int = 3
    ) -> AsyncIterator[str]:
        """Streams follow-up questions, one per line, from the bot's model.

        Raises ModelError (or TimeoutError) when the model fails.
        """
        config = bot.config
        model_name = config.model or self._models.default_name
        model_config = self._models.config(model_name)
        if model_config is None:
            raise ChannelError(Problem.INVALID, f"the bot's model {model_name!r} is not available")
        system = RECOMMEND_PROMPT.format(count=count, name=config.name, introduction=config.description)
        messages = [ChatMessage("system", system)]
        for item in list(history)[-10:]:
            messages.append(ChatMessage("assistant" if item.role == "assistant" else "user", item.content))
        if message:
            messages.append(ChatMessage("user", message))
        messages.append(ChatMessage("user", f"Suggest {count} follow-up questions."))
        loop = asyncio.get_running_loop()
        stream = self._models.get(model_name).stream(messages)
        try:
            async with asyncio.timeout(model_config.first_token_timeout) as deadline:
                async for chunk in stream:
                    deadline.reschedule(loop.time() + model_config.idle_timeout)
                    if chunk.text:
                        yield chunk.text
        finally:
            await stream.aclose()


def _setting(value: Any, current: BotRow | None, name: str, default: Any) -> Any:
    """The given value, else the bot's current one, else the default."""
    if value is not None:
        return value
    return getattr(current, name) if current is not None else default


def _title(title: str) -> str:
    title = " ".join(title.split())
    if len(title) > TITLE_LIMIT:
        raise ChannelError(Problem.INVALID, f"title must be at most {TITLE_LIMIT} characters")
    return title


def history_pairs(items: Sequence[HistoryItem]) -> list[tuple[str, str]]:
    """(question, answer) pairs from a client's history: each user message with the reply after it."""
    pairs, question = [], None
    for item in items:
        if item.role == "user":
            question = item.content
        elif item.role == "assistant" and question is not None:
            pairs.append((question, item.content))
            question = None
    return pairs


def _file_info(url: str) -> dict[str, Any]:
    """A file the client names by URL or cloud id, in the shape records keep for every face."""
    name = url.rstrip("/").rsplit("/", 1)[-1] or url
    kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"file_name": name, "file_size": "", "file_url": url, "file_type": kind, "doc_id": ""}
