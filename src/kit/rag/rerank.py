"""The optional second retrieval stage: a cross-encoder rescores the first stage's candidates.

    first stage  hybrid search returns the top `depth` candidates (20 by default), cheaply
    rerank       a cross-encoder reads the question and each candidate together and scores the
                 pair; the best k, in that order, are what the model sees

An embedder (a bi-encoder) encodes question and chunk separately, so it can index millions of
chunks ahead of time; a cross-encoder attends across both texts and judges relevance better,
but costs one model call per pair, which is why it only sees a few dozen candidates.

No reranker ships with the kit: no cross-encoder is published as a PyPI package, and weights
cannot be fetched at run time here. Set RAG_RERANK_MODEL to a folder holding one (for example
cross-encoder/ms-marco-MiniLM-L6-v2, saved with `CrossEncoder(...).save(path)` on a machine
with a network) or to a Hugging Face name where the hub is reachable. Measure before you keep
it: `kit eval rag --rerank-model PATH` logs the same metrics with and without it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from kit.core.errors import ConfigError
from kit.core.logging import get_logger
from kit.rag.retrieval import Hit

log = get_logger(__name__)


class Reranker(Protocol):
    name: str

    def rerank(self, query: str, hits: Sequence[Hit], k: int) -> list[Hit]:
        """The best `k` of `hits` for `query`, best first, each scored by the reranker."""
        ...


class CrossEncoderReranker:
    def __init__(self, model: str, *, batch_size: int = 32, max_length: int = 512) -> None:
        from sentence_transformers import CrossEncoder

        from kit.llm.local_models.checkpoint import offline_hub

        started = time.perf_counter()
        local = Path(model).expanduser()
        try:
            if local.exists():
                with offline_hub():
                    self._model = CrossEncoder(str(local), device="cpu", max_length=max_length)
            else:
                self._model = CrossEncoder(model, device="cpu", max_length=max_length)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"RAG_RERANK_MODEL={model!r} could not be loaded ({type(exc).__name__}: {exc}). "
                "Point it at a folder holding a sentence-transformers CrossEncoder, or at a "
                "Hugging Face model name on a machine that can reach the hub; unset it to "
                "search without reranking."
            ) from exc
        self.name = local.name if local.exists() else model
        self.batch_size = batch_size
        log.info(
            "reranker_loaded", model=self.name, seconds=round(time.perf_counter() - started, 2)
        )

    def rerank(self, query: str, hits: Sequence[Hit], k: int) -> list[Hit]:
        if not hits:
            return []
        scores = self._model.predict(
            [(query, hit.text) for hit in hits],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        ranked = sorted(zip(hits, scores, strict=True), key=lambda pair: -float(pair[1]))
        return [replace(hit, score=float(score)) for hit, score in ranked[:k]]


def load_reranker(model: str | None) -> Reranker | None:
    """The reranker that RAG_RERANK_MODEL (or --rerank-model) names; None when unset."""
    return CrossEncoderReranker(model) if model else None
