"""Real-time documents: a visitor uploads a file into a chat, Parley parses it, the chat uses it.

ADP's flow is DescribeStorageCredential (where to upload) -> upload -> docParse (parse,
get a `doc_id`) -> chat with `file_infos: [{doc_id, ...}]`. Parley serves the upload
itself. An upload grant is a capability in the object key: the key carries its visibility,
kind, application and expiry and an HMAC of all of them and the file name, so a write is
accepted only under a key Parley handed out, unchanged, and only until it expires, with no
state to keep. Reading a document
back goes by its unguessable key. The same grants (kind `offline`) serve files uploaded for
the knowledge base, which SaveDoc then hands to the knowledge service (`uploaded`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parley.ids import new_id, parse_id
from parley.knowledge.parse import ParseError, attachment_text, extension_for_type
from parley.store.objects import ObjectError, ObjectStore, clean_key, etag_of
from parley.store.realtime_docs import RealtimeDocRepository, RealtimeDocRow

_KEY = re.compile(
    r"^(?P<visibility>public|private)/(?P<kind>realtime|offline)/(?P<app>\d{1,20})/(?P<expires>\d{1,12})/(?P<sig>[0-9a-f]{32})/"
    r"(?P<name>[0-9a-f]{32}(?:\.[A-Za-z0-9]{1,16})?)$"
)
FILE_TYPE = re.compile(r"^[A-Za-z0-9]{1,16}$")


class DocumentError(ValueError):
    """A real-time document request that cannot be served; the message says why."""


class UploadMismatch(DocumentError):
    """The uploaded object is not the one described (`field` names what differs)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class UploadGrant:
    key: str
    """The object key, without a leading slash (ADP's UploadPath is "/" + key)."""
    start: int
    expires: int


@dataclass(frozen=True, slots=True)
class TurnDocument:
    """A parsed document as a turn uses it."""

    doc_id: int
    file_name: str
    text: str


class RealtimeDocuments:
    def __init__(
        self,
        repository: RealtimeDocRepository,
        objects: ObjectStore,
        secret: Callable[[], str],
        *,
        upload_ttl: float = 1800.0,
        max_chars: int = 20000,
    ) -> None:
        self._repo = repository
        self.objects = objects
        self._secret = secret
        self.upload_ttl = upload_ttl
        self.max_chars = max_chars

    def _sign(self, visibility: str, kind: str, app_id: int, expires: int, name: str) -> str:
        """The MAC of every part of a grant's key but the MAC itself."""
        key = hashlib.sha256(("parley-upload:" + self._secret()).encode()).digest()
        granted = f"{visibility}/{kind}/{app_id}/{expires}/{name}"
        return hmac.new(key, granted.encode(), hashlib.sha256).hexdigest()[:32]

    def grant_upload(self, app_id: int, file_type: str, public: bool = True, kind: str = "realtime") -> UploadGrant:
        """Where to upload a file: `realtime` for a chat (docParse), `offline` for the
        knowledge base (SaveDoc)."""
        if kind not in ("realtime", "offline"):
            raise DocumentError("the storage type must be realtime or offline")
        file_type = extension_for_type(file_type)  # "svg+xml" (a MIME subtype) -> "svg"
        if not FILE_TYPE.match(file_type):
            raise DocumentError("FileType must be a file extension of 1-16 letters or digits, or a MIME type")
        now = int(time.time())
        expires = now + int(self.upload_ttl)
        name = f"{secrets.token_hex(16)}.{file_type.lower()}"
        visibility = "public" if public else "private"
        key = f"{visibility}/{kind}/{app_id}/{expires}/{self._sign(visibility, kind, app_id, expires, name)}/{name}"
        return UploadGrant(key, now, expires)

    def granted_app(self, key: str, *, for_writing: bool) -> int:
        """The application a key was granted to; raises ObjectError(AccessDenied) otherwise."""
        match = _KEY.match(clean_key(key))
        if match is None:
            raise ObjectError("AccessDenied", "this key was not issued by DescribeStorageCredential")
        app_id, expires = int(match["app"]), int(match["expires"])
        expected = self._sign(match["visibility"], match["kind"], app_id, expires, match["name"])
        if not hmac.compare_digest(expected, match["sig"]):
            raise ObjectError("AccessDenied", "this key was not issued by DescribeStorageCredential")
        if for_writing and expires < time.time():
            raise ObjectError("AccessDenied", "the upload grant has expired")
        return app_id

    async def uploaded(self, app_id: int, key: str, etag: str = "", size: int | None = None) -> bytes:
        """The bytes uploaded under a key granted to this application (SaveDoc).

        Raises DocumentError when the key was not granted to it or nothing was uploaded, and
        UploadMismatch when a given ETag or size is not the stored object's.
        """
        try:
            if self.granted_app(key, for_writing=False) != app_id:
                raise DocumentError("the file was uploaded for another application")
            data = await self.objects.get(key)
        except ObjectError as exc:
            raise DocumentError(exc.message) from None
        if data is None:
            raise DocumentError("nothing has been uploaded at this path")
        if etag and etag != etag_of(data):
            raise UploadMismatch("ETag", "does not match the uploaded file")
        if size is not None and size != len(data):
            raise UploadMismatch("Size", f"does not match the uploaded file ({len(data)} bytes)")
        return data

    async def parse(
        self, app_id: int, session_id: str, key: str, file_name: str, file_type: str, file_url: str
    ) -> RealtimeDocRow:
        """Parses an uploaded file for a session and keeps its text; a failure is kept too.

        Raises DocumentError when the key is not this application's or nothing was uploaded.
        """
        try:
            if self.granted_app(key, for_writing=False) != app_id:
                raise DocumentError("the file was uploaded for another application")
        except ObjectError as exc:
            raise DocumentError(exc.message) from None
        data = await self.objects.get(key)
        if data is None:
            raise DocumentError("nothing has been uploaded at cos_url")
        file_type = extension_for_type(file_type)
        name = file_name if "." in file_name else f"{file_name}.{file_type}"
        row = RealtimeDocRow(
            id=new_id(), app_id=app_id, session_id=session_id, file_name=file_name, file_type=file_type,
            size=len(data), object_key=clean_key(key), file_url=file_url, status="success", text="",
            created_at=int(time.time() * 1000),
        )
        try:
            row.text = (await asyncio.to_thread(attachment_text, name, data))[: self.max_chars]
        except ParseError as exc:
            row.status, row.error_message = "failed", str(exc)[:1024]
        await self._repo.add(row)
        return row

    async def for_turn(self, app_id: int, session_id: str, file_infos: list[dict[str, Any]]) -> list[TurnDocument]:
        """The parsed documents a chat request names in `file_infos`, checked against its session.

        Raises DocumentError for an unknown doc_id, a document of another application or
        session (ADP: the docParse session_id must equal the chat's), or one that failed.
        A document parsed without a session (adp-chat-client parses before its conversation
        exists) goes to the first session that names it together with its file URL, which
        carries the upload's unguessable key.
        """
        documents = []
        for info in file_infos:
            doc_id = str(info.get("doc_id", ""))
            found = parse_id(doc_id)
            row = await self._repo.get(found) if found is not None else None
            if row is None or row.app_id != app_id:
                raise DocumentError(f"no real-time document {doc_id!r}")
            if not row.session_id and str(info.get("file_url", "")).endswith("/" + row.object_key):
                await self._repo.bind_session(row.id, session_id)
                row = await self._repo.get(row.id) or row
            if row.session_id != session_id:
                raise DocumentError(f"document {doc_id} was parsed for another session")
            if row.status != "success":
                raise DocumentError(f"document {doc_id} could not be parsed: {row.error_message}")
            documents.append(TurnDocument(row.id, row.file_name, row.text))
        return documents
