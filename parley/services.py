"""The services a running server shares with its faces (kept on `app.state.services`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from parley.bus.signatures import LocalSignatureLedger, SignatureLedger
from parley.bus.tokens import LocalTokenStore, TokenStore
from parley.channels.cloudbase import CloudBaseChannel
from parley.config import Settings
from parley.engine.apps import ApplicationService
from parley.engine.engine import Engine
from parley.models.registry import ModelRegistry

if TYPE_CHECKING:
    from parley.knowledge.realtime_docs import RealtimeDocuments
    from parley.knowledge.service import KnowledgeService
    from parley.messaging.runtime import Messaging


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: Engine
    apps: ApplicationService
    models: ModelRegistry
    tokens: TokenStore = field(default_factory=LocalTokenStore, kw_only=True)
    """One-time tokens (ADP GetWsToken); in-process unless a bus-backed store is given."""
    signatures: SignatureLedger = field(default_factory=LocalSignatureLedger, kw_only=True)
    """The call each cloud API signature was accepted for, within its age (replays as another call are refused)."""
    cloudbase: CloudBaseChannel | None = field(default=None, kw_only=True)
    """The CloudBase AI bot channel: bots, API keys, conversations, feedback."""
    knowledge: "KnowledgeService | None" = field(default=None, kw_only=True)
    """Knowledge bases: documents, Q&A pairs, retrieval (parley.knowledge.service)."""
    documents: "RealtimeDocuments | None" = field(default=None, kw_only=True)
    """Real-time documents: uploads and docParse for chat sessions (parley.knowledge.realtime_docs)."""
    messaging: "Messaging | None" = field(default=None, kw_only=True)
    """The Tencent Cloud Chat (IM) domain: accounts, robots, messages, delivery (parley.messaging)."""
