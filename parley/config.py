"""Settings: a TOML file, then environment variables, then command-line flags.

The file is `--config FILE`, else `$PARLEY_CONFIG`, else `parley.toml` in the data
directory when it exists. Every setting has a default, so `parley serve` runs with none.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

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
    log_level: str = "info"
    sensitive_word_files: list[Path] = Field(default_factory=list)
    """Global sensitive-word lists (one word per line), besides `sensitive_words.txt` in the data
    directory, which the admin API edits. Changed files are re-read within a second."""

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
