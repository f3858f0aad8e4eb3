"""Retrieval metrics on hand-computed examples."""

from __future__ import annotations

import math

import pytest

from kit.evaluate.metrics import (
    distinct_documents,
    hit_at_k,
    mean,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
    retrieval_scores,
)


def test_chunk_rankings_become_document_rankings_keeping_the_best_position() -> None:
    assert distinct_documents(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_the_docstring_example() -> None:
    ranked, relevant = ["b", "a", "c"], {"a"}

    assert (hit_at_k(ranked, relevant, 1), hit_at_k(ranked, relevant, 3)) == (0.0, 1.0)
    assert reciprocal_rank(ranked, relevant) == 0.5
    assert ndcg_at_k(ranked, relevant, 3) == pytest.approx(1 / math.log2(3))


def test_recall_counts_each_relevant_document() -> None:
    assert recall_at_k(["a", "x", "b"], {"a", "b", "c"}, 3) == pytest.approx(2 / 3)
    assert recall_at_k(["a", "x", "b"], {"a", "b", "c"}, 1) == pytest.approx(1 / 3)


def test_perfect_and_missing_rankings() -> None:
    assert retrieval_scores(["a", "b"], {"a", "b"}, 2) == {
        "hit_rate_at_2": 1.0,
        "recall_at_2": 1.0,
        "mrr": 1.0,
        "ndcg_at_2": 1.0,
    }
    assert retrieval_scores(["x", "y"], {"a"}, 2) == {
        "hit_rate_at_2": 0.0,
        "recall_at_2": 0.0,
        "mrr": 0.0,
        "ndcg_at_2": 0.0,
    }


def test_mean_averages_each_metric() -> None:
    assert mean([{"mrr": 1.0}, {"mrr": 0.5}, {"mrr": 0.0}]) == {"mrr": 0.5}
