"""The models that ship with the kit, run in-process: SmolLM2 for chat, MiniLM for embeddings.

Importing this package loads nothing; `load_chat_model` and `load_embedder` do, when called.
"""

from kit.llm.local_models.chat import (
    ChatDelta,
    ChatEngine,
    available_engines,
    load_chat_model,
)
from kit.llm.local_models.embeddings import LocalEmbedder, load_embedder
from kit.llm.local_models.paths import MINILM, SMOLLM2, ShippedModel

__all__ = [
    "MINILM",
    "SMOLLM2",
    "ChatDelta",
    "ChatEngine",
    "LocalEmbedder",
    "ShippedModel",
    "available_engines",
    "load_chat_model",
    "load_embedder",
]
