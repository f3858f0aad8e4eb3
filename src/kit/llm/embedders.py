"""Which model turns text into vectors: the shipped MiniLM in-process, or any embedding model
behind the gateway. Ingestion, search, evaluation and the RAG service all use it.

    KIT_EMBEDDER=local                            all-MiniLM-L6-v2 in this process (the default)
    KIT_EMBEDDER=gateway:text-embedding-3-small   a gateway alias (GATEWAY_URL, else embedded)

`kit.runtime.open_embedder(settings)` opens the one the settings name.

Vectors from different models live in different spaces, so an index must be searched with the
model that built it: every embedder has a `name` (the model, not the route to it), the chunk
store records it when it creates a collection, and refuses to mix. `local` and
`gateway:all-minilm-l6-v2` are one model reached two ways, so they share a name and an index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from kit.core.errors import ConfigError

if TYPE_CHECKING:
    from kit.llm.gateway_client import GatewayClient

GATEWAY_PREFIX = "gateway:"


class GatewayEmbedder:
    """The `Embedder` port served by an embedding alias of the gateway, called in batches; rows
    are L2-normalised here, since not every provider returns unit vectors and the store compares
    by cosine."""

    def __init__(self, client: GatewayClient, model: str, batch_size: int = 64) -> None:
        self.client = client
        self.name = model
        self.batch_size = batch_size
        self.dimension = len(client.embed(["dimension probe"], model=model)[0])

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows += self.client.embed(texts[start : start + self.batch_size], model=self.name)
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimension)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalised: npt.NDArray[np.float32] = vectors / np.maximum(norms, 1e-12)
        return normalised


def gateway_model(spec: str) -> str | None:
    """ "gateway:ALIAS" -> ALIAS; "local" -> None; anything else is a configuration error."""
    if spec == "local":
        return None
    if spec.startswith(GATEWAY_PREFIX) and spec[len(GATEWAY_PREFIX) :].strip():
        return spec[len(GATEWAY_PREFIX) :].strip()
    raise ConfigError(
        f"KIT_EMBEDDER={spec!r}: use 'local' (the shipped MiniLM) or 'gateway:ALIAS' "
        "(an embedding alias in src/kit/gateway/models.yaml, e.g. "
        "gateway:text-embedding-3-small)."
    )
