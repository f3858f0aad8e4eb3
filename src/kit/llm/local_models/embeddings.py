"""The shipped embedding model, all-MiniLM-L6-v2: text in, a 384-dimensional unit vector out.

Runs in-process on CPU with sentence-transformers (about 130-400 sentences/s on 2 cores).
Vectors are L2-normalised, so a dot product is the cosine similarity. Nothing is loaded on
import; `load_embedder(settings)` loads the model (~1-3 s).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kit.core.logging import get_logger
from kit.core.settings import KitSettings
from kit.llm.local_models.checkpoint import offline_hub
from kit.llm.local_models.paths import MINILM

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = get_logger(__name__)


class LocalEmbedder:
    name = MINILM.name  # the name the index records (see kit.llm.embedders)

    def __init__(self, settings: KitSettings) -> None:
        from sentence_transformers import SentenceTransformer

        started = time.perf_counter()
        with offline_hub():
            self._model = SentenceTransformer(str(MINILM.path()), device="cpu")
        self.batch_size = settings.embed_batch_size
        self.dimension = int(self._model.get_embedding_dimension() or 0)
        self.load_seconds = time.perf_counter() - started

    @property
    def max_tokens(self) -> int:
        """The model's window: word pieces it reads; the rest of a longer text is cut off."""
        return int(self._model.max_seq_length or 256)

    def fits(self, text: str) -> bool:
        """Whether all of `text` is read: its word pieces (with [CLS] and [SEP]) fit the window.

        A longer text is embedded from its first 256 word pieces only, so two texts that share
        a beginning get the same vector whatever follows (see the gateway's semantic cache)."""
        pieces = self._model.tokenizer(text, truncation=False, verbose=False)["input_ids"]
        return len(pieces) <= self.max_tokens

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed `texts` in batches: (len(texts), 384) float32, each row of unit length."""
        vectors: npt.NDArray[np.float32] = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors


def load_embedder(settings: KitSettings) -> LocalEmbedder:
    embedder = LocalEmbedder(settings)
    log.info("embedder_loaded", model=embedder.name, seconds=round(embedder.load_seconds, 2))
    return embedder
