"""Chat models and embedders behind small interfaces, chosen by configuration."""

from parley.models.base import ChatChunk, ChatMessage, ChatModel, ModelError, Usage
from parley.models.registry import ModelRegistry, register_provider

__all__ = ["ChatChunk", "ChatMessage", "ChatModel", "ModelError", "ModelRegistry", "Usage", "register_provider"]
