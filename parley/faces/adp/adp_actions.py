"""The cloud API actions of service `adp`, version 2026-05-20, mapped onto Parley's services.

adp-chat-client v0.4.0 and later call these (besides lke 2023-11-30's DescribeRobotBizIDByAppKey,
GetMsgRecord, RateMsgRecord and DescribeRefer, in cloud_actions.py). Field names and types follow
the official SDK's models (`tencentcloud.adp.v20260520`); DescribeStorageCredential is not in that
SDK, so its fields follow what the client reads.

Parley has no per-user agents: an application is its own one agent, whose id is the application's
id. CopyAgentFromApp hands that id out, DescribeAgentDetail describes the application as an agent,
and CreateConversation mints a conversation id (a UUID) that the first turn then opens as a session.
"""

from __future__ import annotations

import uuid
from typing import Any

from parley.engine.apps import App, AppConfig
from parley.faces.adp.cloud_actions import Action, grant_upload
from parley.faces.adp.cloud_params import CloudApiError, Params, invalid_value
from parley.knowledge.realtime_docs import ObjectError, clean_key
from parley.services import Services

SERVICE = "adp"
VERSION = "2026-05-20"

APP_MODE_STANDARD = 1
APP_STATUS_OFFLINE, APP_STATUS_RUNNING = 1, 2
DOMAIN_DEV, DOMAIN_PROD = 1, 2
FIELD_MASK_PATHS = {
    "AppConfig", "SecretInfo", "ShareUrlInfo", "SpecialStatusInfo", "SearchResourceStatus",
    "SharedKbList", "CorpShareConfig", "FileVolumeMountList",
}
"""The FieldMask paths Tencent documents; Parley fills AppConfig and SecretInfo, the rest stay null."""
CONVERSATION_TYPES = {1: "visitor", 5: "API"}
"""CreateConversation / CreateWebSocketToken `Type`s Parley serves (2 evaluation, 10 workflow
debugging and 20 share links are console features)."""
INPUT_BOX_IMAGE, INPUT_BOX_DOCUMENT = 1, 2
REPLY_STREAMING, REPLY_WHOLE = 1, 2


# -- helpers -----------------------------------------------------------------------------


async def _app(services: Services, params: Params, *, by_key: bool = False) -> App:
    """The application named by `AppKey` (when `by_key` and given) or else by `AppId`."""
    app_key = params.string("AppKey", max_len=128) if by_key else ""
    if app_key:
        row, _ = await services.apps.released_by_key(app_key)
        app = await services.apps.get_by_id(row.id) if row is not None and not row.deleted else None
        if app is None:
            raise CloudApiError("ResourceNotFound", "No application has this AppKey.")
        return app
    app_id = params.biz_id("AppId")
    app = await services.apps.get_by_id(app_id) if app_id is not None else None
    if app is None:
        raise CloudApiError("ResourceNotFound", f"No application has AppId {params.data.get('AppId')}.")
    return app


def _config(app: App, domain: int | None) -> AppConfig:
    """The draft (development domain), the release (production), or with no domain the
    release when there is one: what visitors see."""
    if domain == DOMAIN_DEV:
        return app.draft
    if app.release is None:
        if domain == DOMAIN_PROD:
            raise CloudApiError("ResourceNotFound", "The application has not been published.")
        return app.draft
    return app.release


def _domain(params: Params) -> int | None:
    domain = params.integer("Domain")
    if domain not in (None, DOMAIN_DEV, DOMAIN_PROD):
        raise invalid_value("Domain", "must be 1 (development) or 2 (production)")
    return domain


def _agent_id(app: App) -> str:
    return str(app.id)


def _check_agent(app: App, agent_id: str) -> None:
    if agent_id and agent_id != _agent_id(app):
        raise CloudApiError("ResourceNotFound", f"No agent {agent_id} in this application.")


def _model_name(services: Services, config: AppConfig) -> str:
    return config.model or services.models.default_name


def _model_params(services: Services, config: AppConfig) -> dict[str, Any]:
    model = services.models.config(_model_name(services, config))
    return {
        "Temperature": model.temperature if model and model.temperature is not None else 0.0,
        "MaxTokens": model.max_output_tokens if model and model.max_output_tokens else 0,
        "DeepThinking": "enabled" if model and model.reasoning else "disabled",
        "ReplyFormat": "text",
        "StopSequenceList": [],
    }


def _seconds(milliseconds: int) -> str:
    return str(milliseconds // 1000)


# -- applications ----------------------------------------------------------------------


async def describe_app(params: Params, services: Services) -> dict[str, Any]:
    app = await _app(services, params)
    domain = _domain(params)
    paths = set(params.object("FieldMask").strings("Paths", max_items=20))
    unknown = paths - FIELD_MASK_PATHS
    if unknown:
        raise invalid_value("FieldMask.Paths", f"unknown path {sorted(unknown)[0]!r}")
    params.integer("StatusType")
    config = _config(app, domain)
    everything = not paths
    result: dict[str, Any] = {
        "Metadata": {
            "AppId": str(app.id),
            "AppMode": APP_MODE_STANDARD,
            "Avatar": config.avatar,
            "CreateTime": _seconds(app.created_at),
            "Description": config.description,
            "Name": config.name,
            "SpaceId": "default_space",
            "UpdateTime": _seconds(app.updated_at),
        },
        "Status": {
            "Status": APP_STATUS_RUNNING if app.published else APP_STATUS_OFFLINE,
            "StatusDescription": "运行中" if app.published else "未上线",
        },
        "Config": _app_config(services, config) if everything or "AppConfig" in paths else None,
        "SecretInfo": {"AppKey": app.app_key, "CreateTime": _seconds(app.created_at)}
        if everything or "SecretInfo" in paths else None,
    }
    return {"App": result}


def _app_config(services: Services, config: AppConfig) -> dict[str, Any]:
    name = _model_name(services, config)
    buttons = [INPUT_BOX_IMAGE, INPUT_BOX_DOCUMENT] if services.documents is not None else []
    return {
        "Greeting": {"Greeting": config.greeting, "OpeningQuestionList": list(config.opening_questions)},
        "Experience": {
            "Role": {"RoleDescription": config.system_role},
            "Conversation": {
                "EnableFallbackReply": bool(config.unknown_reply),
                "FallbackReply": config.unknown_reply,
                "EnableRecommended": False,
                "EnableWebSearch": False,
                "InputBoxConfig": {"InputBoxButtons": buttons},
                "Method": REPLY_STREAMING if config.streaming.enabled else REPLY_WHOLE,
                "EnableNewMessageInterrupt": False,
            },
        },
        "Model": {
            "GenerateModel": {
                "Model": {
                    "ModelId": name,
                    "Alias": name,
                    "HistoryLimit": config.history_depth,
                    "ModelParams": _model_params(services, config),
                }
            }
        },
        "WebSearch": {"Enabled": False},
    }


# -- agents and conversations ------------------------------------------------------------


async def copy_agent_from_app(params: Params, services: Services) -> dict[str, Any]:
    app = await _app(services, params)
    kind = params.integer("Kind", default=1)
    if kind not in (0, 1):
        raise invalid_value("Kind", "must be 0 (configuration agent) or 1 (user agent)")
    params.string("TargetAppId", max_len=64)
    return {"ParentAgentId": _agent_id(app)}


async def describe_agent_detail(params: Params, services: Services) -> dict[str, Any]:
    app = await _app(services, params)
    agent_id = params.string("AgentId", required=True, max_len=64)
    _check_agent(app, agent_id)
    config = _config(app, _domain(params))
    name = _model_name(services, config)
    model = services.models.config(name)
    return {
        "Agent": {
            "AgentId": agent_id,
            "Profile": {
                "Name": config.name,
                "IconUrl": config.avatar,
                "Role": 0,
                "Description": config.description,
                "AppName": config.name,
                "Developer": "",
                "ParentAgentId": agent_id,
            },
            "Instructions": config.system_role,
            "Model": {
                "ModelId": name,
                "Alias": name,
                "ContextWordsLimit": model.input_len_limit if model else 0,
                "InstructionsWordsLimit": model.role_len_limit if model else 0,
                "ModelParameters": _model_params(services, config),
            },
            "ToolList": [],
            "PluginList": [],
            "SkillList": [],
            "AdvancedConfig": {"MaxReasoningRound": 0},
            "ExternalToolList": [],
        }
    }


def _conversation_type(params: Params) -> int:
    kind = params.integer("Type", required=True)
    if kind not in CONVERSATION_TYPES:
        raise CloudApiError("UnsupportedOperation", "Type must be 1 (visitor) or 5 (API).")
    for name in ("LoginUin", "LoginSubAccountUin", "ShareCode"):
        params.string(name, max_len=128)
    return kind


async def create_conversation(params: Params, services: Services) -> dict[str, Any]:
    _conversation_type(params)
    app = await _app(services, params, by_key=True)
    params.string("UserId", max_len=64)
    _check_agent(app, params.string("AgentId", max_len=64))
    # Stateless: the first turn with this id opens the session, as with an id the client made.
    return {"ConversationId": str(uuid.uuid4())}


async def create_web_socket_token(params: Params, services: Services) -> dict[str, Any]:
    _conversation_type(params)
    app = await _app(services, params, by_key=True)
    if not app.published:
        raise CloudApiError("FailedOperation", "The application has not been published.")
    user_id = params.string("UserId", max_len=64) or f"visitor-{uuid.uuid4().hex}"
    claims = {"app_key": app.app_key, "visitor_id": user_id, "visitor_labels": []}
    token = await services.tokens.issue(claims, services.settings.cloud_api.ws_token_ttl)
    return {"AppId": str(app.id), "Token": token, "UserId": user_id}


# -- uploads -------------------------------------------------------------------------------


async def describe_storage_credential(params: Params, services: Services) -> dict[str, Any]:
    """An upload grant, as lke's DescribeStorageCredential gives (cloud_actions.py), in adp's shape:
    `StoragePath` is the upload path, `UploadUrl` takes a plain PUT, `FileUrl` reads it back."""
    app = await _app(services, params)
    grant = grant_upload(params, services, app.id)
    cos_url = params.string("CosUrl", max_len=1024)
    settings = services.settings.cloud_api
    base = f"{params.origin}/{settings.storage_bucket}"
    url = f"{base}/{grant.key}"
    folder = "/" + grant.key.rsplit("/", 1)[0]
    return {
        # Parley does not check the upload's own signature: the key is the capability.
        "Credentials": {"TmpSecretId": "parley-upload", "TmpSecretKey": "parley-upload", "Token": ""},
        "ExpiredTime": grant.expires,
        "StartTime": grant.start,
        "Bucket": settings.storage_bucket,
        "Region": settings.storage_region,
        "Type": "cos",
        "StoragePath": "/" + grant.key,
        "UploadPath": "/" + grant.key,
        "FilePath": folder,
        "ImagePath": folder,
        "UploadUrl": url,
        "FileUrl": url,
        "DownloadUrl": f"{base}/{_uploaded_key(services, app, cos_url)}" if cos_url else url,
    }


def _uploaded_key(services: Services, app: App, cos_url: str) -> str:
    """The key of an earlier upload of this application, named by its UploadPath or FileUrl."""
    bucket = services.settings.cloud_api.storage_bucket
    path = cos_url.split(f"/{bucket}/", 1)[1] if f"/{bucket}/" in cos_url else cos_url
    try:
        key = clean_key(path.lstrip("/"))
        granted = services.documents.granted_app(key, for_writing=False)  # type: ignore[union-attr]
    except ObjectError:
        raise invalid_value("CosUrl", "not a path DescribeStorageCredential gave") from None
    if granted != app.id:
        raise invalid_value("CosUrl", "the file was uploaded for another application")
    return key


ACTIONS: dict[str, Action] = {
    "DescribeApp": describe_app,
    "DescribeStorageCredential": describe_storage_credential,
    "CopyAgentFromApp": copy_agent_from_app,
    "DescribeAgentDetail": describe_agent_detail,
    "CreateConversation": create_conversation,
    "CreateWebSocketToken": create_web_socket_token,
}
