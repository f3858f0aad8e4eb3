"""Retrieval metrics by document id, for one question and averaged over a set.

Retrieval returns chunks; a question is labelled with the documents that answer it. So a ranked
list of chunks is first turned into a ranked list of distinct documents (a document's rank is
that of its best chunk), then scored:

    hit@k     1 if any relevant document is in the top k, else 0
    recall@k  the share of the relevant documents found in the top k
    MRR       1 / rank of the first relevant document (0 if none is retrieved)
    nDCG@k    DCG of the ranking / DCG of the ideal ranking, binary relevance, log2 discount

Example: relevant {"a"}, ranked documents [b, a, c] -> hit@1 0, hit@3 1, MRR 0.5,
nDCG@3 = (1/log2(3)) / (1/log2(2)) = 0.631.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def distinct_documents(ranked_doc_ids: Iterable[str]) -> list[str]:
    """Chunk-level ranking -> document-level ranking, keeping each document's best position."""
    return list(dict.fromkeys(ranked_doc_ids))


def hit_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return 1.0 if relevant & set(ranked[:k]) else 0.0


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    for position, doc_id in enumerate(ranked, 1):
        if doc_id in relevant:
            return 1.0 / position
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, doc_id in enumerate(ranked[:k]) if doc_id in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def retrieval_scores(ranked: Sequence[str], relevant: set[str], k: int) -> dict[str, float]:
    """Every metric for one question (document-level `ranked`)."""
    return {
        f"hit_rate_at_{k}": hit_at_k(ranked, relevant, k),
        f"recall_at_{k}": recall_at_k(ranked, relevant, k),
        "mrr": reciprocal_rank(ranked, relevant),
        f"ndcg_at_{k}": ndcg_at_k(ranked, relevant, k),
    }


def mean(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else []
    return {key: sum(row[key] for row in rows) / len(rows) for key in keys}
