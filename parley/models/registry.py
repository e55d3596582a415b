"""Which provider serves which configured model.

Providers register a factory under a name (`openai`, `local`); a model's configuration
names its provider. Built-in providers register the same way a plugin package does,
through the `parley.models` entry-point group, so adding one never edits the engine.
"""

from __future__ import annotations

from collections.abc import Callable

from parley.config import LOCAL_MODEL_NAME, ModelConfig, Settings
from parley.models.base import ChatModel
from parley.plugins import load_plugins

ProviderFactory = Callable[[ModelConfig], ChatModel]
_providers: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    _providers[name] = factory


def _openai(config: ModelConfig) -> ChatModel:
    from parley.models.openai_compat import OpenAICompatibleModel

    return OpenAICompatibleModel(config)


def _local(config: ModelConfig) -> ChatModel:
    from parley.models.local import LocalLlamaModel

    return LocalLlamaModel(config)


register_provider("openai", _openai)
register_provider("local", _local)



def local_model_config() -> ModelConfig:
    """The embedded SmolLM2: English only and small, it proves the pipeline offline."""
    return ModelConfig(
        name=LOCAL_MODEL_NAME,
        provider="local",
        description="SmolLM2-135M-Instruct (embedded, runs on the CPU)",
        input_len_limit=4000,
        role_len_limit=2000,
        context_window=2048,
        max_output_tokens=256,
        first_token_timeout=120.0,
        idle_timeout=60.0,
    )


class ModelRegistry:
    """The configured models by name; each is built on first use."""

    def __init__(self, settings: Settings) -> None:
        load_plugins("parley.models")
        self._configs: dict[str, ModelConfig] = {}
        if settings.local_model:
            self._configs[LOCAL_MODEL_NAME] = local_model_config()
        for config in settings.models:
            if config.provider not in _providers:
                raise ValueError(f"model {config.name!r}: unknown provider {config.provider!r}")
            self._configs[config.name] = config
        self.default_name = settings.default_model
        self._models: dict[str, ChatModel] = {}

    def names(self) -> list[str]:
        return list(self._configs)

    def config(self, name: str) -> ModelConfig | None:
        return self._configs.get(name)

    def configs(self) -> list[ModelConfig]:
        return list(self._configs.values())

    def get(self, name: str) -> ChatModel:
        model = self._models.get(name)
        if model is None:
            config = self._configs[name]
            model = self._models[name] = _providers[config.provider](config)
        return model

    async def aclose(self) -> None:
        for model in self._models.values():
            await model.aclose()
        self._models.clear()
