"""The cloud API actions (service `lke`, 2023-11-30), each mapped onto Parley's services.

One implementation, two faces: application actions go through the same
ApplicationService as the admin API, history and ratings through the engine.
Field names and types follow the official SDK's models (`tencentcloud.lke.v20231130`).
Ids (`AppBizId`, `BotBizId`, `RecordId`, ...) are Parley's numeric ids as strings.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from parley.config import ModelConfig
from parley.engine.apps import App, AppConfig, AppConflict, AppError
from parley.engine.faces import Face
from parley.engine.ratings import RatingRefused, RecordNotFound
from parley.faces.adp import cloud_knowledge, cloud_labels
from parley.faces.adp.cloud_params import CloudApiError, Params, invalid_value
from parley.faces.adp.msg_records import msg_record
from parley.knowledge.realtime_docs import DocumentError, UploadGrant
from parley.services import Services

Action = Callable[[Params, Services], Awaitable[dict[str, Any]]]

WS_ACCESS_TYPE = 5
"""GetWsToken `Type`: 5 (API visitor) is the only one ADP supports."""
APP_TYPE = "knowledge_qa"
PATTERN = "standard"
SESSION_ID = re.compile(r"^[a-zA-Z0-9_-]{2,64}$")
APP_STATUS_OFFLINE, APP_STATUS_RUNNING = 1, 2
RELEASE_PENDING, RELEASE_SUCCESS = 1, 3


# -- helpers -----------------------------------------------------------------------------


async def _app_by_key(services: Services, app_key: str, *, published: bool) -> tuple[int, AppConfig | None]:
    """The application holding `app_key` (its id and latest release), or a Tencent-shaped error."""
    row, release = await services.apps.released_by_key(app_key)
    if row is None or row.deleted:
        raise CloudApiError("ResourceNotFound", "No application has this AppKey (APPKEY is invalid).")
    if published and release is None:
        raise CloudApiError("FailedOperation", "The application has not been published.")
    return row.id, AppConfig.model_validate(release.config) if release else None


async def _app_by_id(services: Services, params: Params, name: str) -> App:
    app_id = params.biz_id(name)
    app = await services.apps.get_by_id(app_id) if app_id is not None else None
    if app is None:
        raise CloudApiError("ResourceNotFound", f"No application has {name} {params.data.get(name)}.")
    return app


def _model_config(services: Services, config: AppConfig) -> ModelConfig | None:
    return services.models.config(config.model or services.models.default_name)


def _model_info(config: ModelConfig, default: str) -> dict[str, Any]:
    return {
        "ModelName": config.name,
        "AliasName": config.name,
        "ModelDesc": config.description,
        "InputLenLimit": config.input_len_limit,
        "RoleLenLimit": config.role_len_limit,
        "PromptWordsLimit": str(config.role_len_limit),
        "ModelCategory": "thought" if config.reasoning else "generate",
        "IsDeepThinking": config.reasoning,
        "IsDefault": config.name == default,
        "IsFree": True,
        "IsExclusive": False,
        "ResourceStatus": 1,
        "SupportWorkflowStatus": 0,
        "SupportAiCallStatus": 0,
        "Source": "parley",
        "ProviderName": config.provider,
        "ProviderAliasName": config.provider,
        "ProviderType": "Self",
        "Icon": "",
        "ModelTags": [],
        "ModelParams": [],
        "IsCloseModelParams": True,
    }


def _now() -> str:
    return str(int(time.time()))


def _app_error(exc: AppError) -> CloudApiError:
    return CloudApiError("InvalidParameterValue", str(exc))


# -- dialogue ---------------------------------------------------------------------------


async def get_ws_token(params: Params, services: Services) -> dict[str, Any]:
    access_type = params.integer("Type", required=True)
    if access_type != WS_ACCESS_TYPE:
        raise invalid_value("Type", "only 5 (API visitor) is supported")
    app_key = params.string("BotAppKey", required=True, max_len=128)
    visitor_id = params.string("VisitorBizId", required=True, max_len=64)
    labels = []
    for label in params.objects("VisitorLabels"):
        labels.append({"name": label.string("Name", required=True), "values": label.strings("Values")})
    _, config = await _app_by_key(services, app_key, published=True)
    assert config is not None
    model = _model_config(services, config)
    claims = {"app_key": app_key, "visitor_id": visitor_id, "visitor_labels": labels}
    token = await services.tokens.issue(claims, services.settings.cloud_api.ws_token_ttl)
    return {
        "Token": token,
        "Balance": 1.0,
        "InputLenLimit": model.input_len_limit if model else 0,
        "Pattern": PATTERN,
        "SingleWorkflow": None,
        "VisionModelInputLimit": 0,
    }


async def list_model(params: Params, services: Services) -> dict[str, Any]:
    params.string("AppType", max_len=64)
    params.string("Pattern", max_len=64)
    category = params.string("ModelCategory", max_len=64)
    default = services.models.default_name
    models = [_model_info(c, default) for c in services.models.configs()]
    if category:
        models = [m for m in models if m["ModelCategory"] == category]
    return {"List": models}


async def describe_robot_biz_id_by_app_key(params: Params, services: Services) -> dict[str, Any]:
    app_id, _ = await _app_by_key(services, params.string("AppKey", required=True, max_len=128), published=False)
    return {"BotBizId": str(app_id)}


async def describe_app(params: Params, services: Services) -> dict[str, Any]:
    app = await _app_by_id(services, params, "AppBizId")
    params.string("AppType", max_len=64)
    if params.boolean("IsRelease"):
        if app.release is None:
            raise CloudApiError("ResourceNotFound", "The application has not been published.")
        config = app.release
    else:
        config = app.draft
    model = _model_config(services, config)
    return {
        "AppBizId": str(app.id),
        "AppType": APP_TYPE,
        "AppTypeDesc": "知识问答",
        "BaseConfig": {"Name": config.name, "Avatar": config.avatar, "Desc": config.description},
        "AppConfig": {
            "KnowledgeQa": {
                "Greeting": config.greeting,
                "RoleDescription": config.system_role,
                "OpeningQuestions": list(config.opening_questions),
                "Pattern": PATTERN,
                "Model": {
                    "Name": config.model or services.models.default_name,
                    "AliasName": config.model or services.models.default_name,
                    "Desc": model.description if model else "",
                    "ContextLimit": model.context_window if model else 0,
                    "HistoryLimit": config.history_depth,
                    "IsUseContext": config.history_depth > 0,
                    "ResourceStatus": 1,
                },
                "Search": [],
                "SingleWorkflow": None,
                "Plugins": [],
            }
        },
        "AvatarInAppeal": False,
        "RoleInAppeal": False,
        "NameInAppeal": False,
        "GreetingInAppeal": False,
        "BareAnswerInAppeal": False,
        "AppKey": app.app_key,
        "AppStatus": APP_STATUS_RUNNING if app.published else APP_STATUS_OFFLINE,
        "AppStatusDesc": "运行中" if app.published else "待上线",
        "IsCopying": False,
        "AgentType": "",
    }


async def get_msg_record(params: Params, services: Services) -> dict[str, Any]:
    access_type = params.integer("Type", required=True)
    if access_type != WS_ACCESS_TYPE:
        raise invalid_value("Type", "only 5 (API visitor) is supported")
    count = params.integer("Count", required=True, minimum=1, maximum=1000)
    session_id = params.string("SessionId", required=True, max_len=64)
    if not SESSION_ID.match(session_id):
        raise invalid_value("SessionId", "must match ^[a-zA-Z0-9_-]{2,64}$")
    app_key = params.string("BotAppKey", required=True, max_len=128)
    params.integer("Scene", minimum=1, maximum=2)
    before = params.biz_id("LastRecordId", required=False)
    if params.has("MidRecordId"):
        raise CloudApiError("UnsupportedOperation", "MidRecordId is not supported; page backwards with LastRecordId.")
    app_id, config = await _app_by_key(services, app_key, published=False)
    records = await services.engine.session_records(app_id, session_id, count or 1, before, face=Face.ADP)
    name, avatar = (config.name, config.avatar) if config else ("", "")
    return {
        "Records": [msg_record(r, session_id, name, avatar) for r in records],
        "SessionDisassociatedTimestamp": "",
    }


async def rate_msg_record(params: Params, services: Services) -> dict[str, Any]:
    app_key = params.string("BotAppKey", required=True, max_len=128)
    record_id = params.biz_id("RecordId")
    score = params.integer("Score", required=True)
    if score not in (0, 1, 2):
        raise invalid_value("Score", "must be 0 (withdraw), 1 (like) or 2 (dislike)")
    reasons = params.strings("Reasons", max_items=20)
    feedback = params.string("FeedbackContent", max_len=1000)
    app_id, _ = await _app_by_key(services, app_key, published=False)
    try:
        await services.engine.rate_record(app_id, record_id, score, reasons, feedback, face=Face.ADP)  # type: ignore[arg-type]
    except RecordNotFound:
        raise CloudApiError("ResourceNotFound", "No such record in this application.") from None
    except RatingRefused as exc:
        raise CloudApiError("FailedOperation", f"The record cannot be rated: {exc}.") from None
    return {}


# -- application management ----------------------------------------------------------------


def _check_app_type(params: Params, *, required: bool) -> None:
    app_type = params.string("AppType", required=required, max_len=64)
    if app_type and app_type != APP_TYPE:
        raise invalid_value("AppType", f"only {APP_TYPE} is supported")


async def create_app(params: Params, services: Services) -> dict[str, Any]:
    _check_app_type(params, required=True)
    base = params.object("BaseConfig", required=True)
    name = base.string("Name", required=True, max_len=128)
    pattern = params.string("Pattern", max_len=64)
    if pattern and pattern != PATTERN:
        raise invalid_value("Pattern", f"only {PATTERN} is supported")
    params.string("AgentType", max_len=64)
    if await services.apps.get(name) is not None:
        raise invalid_value("BaseConfig.Name", f"an application named {name!r} already exists")
    data = {"name": name, "avatar": base.string("Avatar"), "description": base.string("Desc")}
    try:
        app, _ = await services.apps.apply(data)
    except AppError as exc:
        raise _app_error(exc) from None
    return {"AppBizId": str(app.id), "IsCustomList": False}


async def modify_app(params: Params, services: Services) -> dict[str, Any]:
    app = await _app_by_id(services, params, "AppBizId")
    _check_app_type(params, required=False)
    data = app.draft.model_dump()
    base = params.object("BaseConfig")
    if base.has("Name") and base.string("Name") != app.name:
        raise invalid_value("BaseConfig.Name", "renaming an application is not supported")
    if base.has("Avatar"):
        data["avatar"] = base.string("Avatar")
    if base.has("Desc"):
        data["description"] = base.string("Desc")
    qa = params.object("AppConfig").object("KnowledgeQa")
    if qa.has("Greeting"):
        data["greeting"] = qa.string("Greeting")
    if qa.has("RoleDescription"):
        data["system_role"] = qa.string("RoleDescription")
    if qa.has("OpeningQuestions"):
        data["opening_questions"] = qa.strings("OpeningQuestions")
    model = qa.object("Model")
    if model.has("Name"):
        data["model"] = model.string("Name") or None
    if model.has("HistoryLimit"):
        data["history_depth"] = model.integer("HistoryLimit", minimum=0, maximum=100)
    try:
        await services.apps.apply(data)
    except AppError as exc:
        raise _app_error(exc) from None
    return {"AppBizId": str(app.id), "UpdateTime": _now()}


async def create_release(params: Params, services: Services) -> dict[str, Any]:
    app = await _app_by_id(services, params, "BotBizId")
    description = params.string("Desc", max_len=1024)
    params.strings("ChannelBizIds")
    try:
        app = await services.apps.publish(app.name, description)
    except AppConflict as exc:
        raise CloudApiError("FailedOperation", f"The release could not be made: {exc}.") from None
    return {"ReleaseBizId": str(app.release_id)}


async def describe_release_info(params: Params, services: Services) -> dict[str, Any]:
    app = await _app_by_id(services, params, "BotBizId")
    _, release = await services.apps.released_by_key(app.app_key)
    return {
        "LastTime": str(release.created_at // 1000) if release else "",
        "Status": RELEASE_SUCCESS if release else RELEASE_PENDING,
        "IsUpdated": app.has_unpublished_changes,
        "Msg": "",
    }


# -- real-time documents ---------------------------------------------------------------------


def grant_upload(params: Params, services: Services, app_id: int) -> UploadGrant:
    """Where to upload the file `FileType`, `IsPublic`, `TypeKey` describe (lke's and adp's
    DescribeStorageCredential)."""
    file_type = params.string("FileType", required=True, max_len=128)  # an extension or a MIME (sub)type
    public = params.boolean("IsPublic", default=True)
    type_key = params.string("TypeKey", max_len=32) or "offline"  # Tencent's default
    if type_key not in ("realtime", "offline"):
        raise invalid_value("TypeKey", "must be realtime (dialogue uploads) or offline (knowledge base files)")
    documents = services.documents
    if documents is None:
        raise CloudApiError("UnsupportedOperation", "Uploads are not enabled on this server.")
    try:
        return documents.grant_upload(app_id, file_type, public, type_key)
    except DocumentError as exc:
        raise invalid_value("FileType", str(exc)) from None


async def describe_storage_credential(params: Params, services: Services) -> dict[str, Any]:
    app = await _app_by_id(services, params, "BotBizId")
    grant = grant_upload(params, services, app.id)
    settings = services.settings.cloud_api
    url = f"{params.origin}/{settings.storage_bucket}/{grant.key}"
    return {
        # Parley does not check the upload's own signature: the key is the capability.
        "Credentials": {"TmpSecretId": "parley-upload", "TmpSecretKey": "parley-upload", "Token": "", "AppId": 0},
        "ExpiredTime": grant.expires,
        "StartTime": grant.start,
        "Bucket": settings.storage_bucket,
        "Region": settings.storage_region,
        "FilePath": "/" + grant.key.rsplit("/", 1)[0],
        "Type": "cos",
        "CorpUin": "",
        "ImagePath": "/" + grant.key.rsplit("/", 1)[0],
        "UploadPath": "/" + grant.key,
        "UploadUrl": url,
        "FileUrl": url,
    }


ACTIONS: dict[str, Action] = {
    "DescribeStorageCredential": describe_storage_credential,
    "GetWsToken": get_ws_token,
    "ListModel": list_model,
    "DescribeRobotBizIDByAppKey": describe_robot_biz_id_by_app_key,
    "DescribeApp": describe_app,
    "GetMsgRecord": get_msg_record,
    "RateMsgRecord": rate_msg_record,
    "CreateApp": create_app,
    "ModifyApp": modify_app,
    "CreateRelease": create_release,
    "DescribeReleaseInfo": describe_release_info,
    **cloud_knowledge.ACTIONS,
    **cloud_labels.ACTIONS,
}
