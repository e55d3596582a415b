"""Which face a session belongs to.

A session is named by its client (ADP's `session_id`) or by the face itself (a CloudBase
conversation id, an IM robot conversation), and names are only unique within a face:
the store keys every session by (application, face, session id). A client of one face
therefore cannot reach another face's sessions by choosing a matching name, whatever it
types, and each face can read only its own sessions' history.
"""

from __future__ import annotations

from enum import StrEnum


class Face(StrEnum):
    ADP = "adp"
    """ADP's dialogue API: SSE, WebSocket and the cloud API (v1 and v2 share these sessions)."""
    CLOUDBASE = "cloudbase"
    """CloudBase AI bot conversations."""
    IM = "im"
    """Tencent Cloud Chat robots answered by Parley."""
