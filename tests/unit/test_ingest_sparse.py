"""BM25 sparse vectors: stemmed terms, saturating term frequency, stable indices."""

from __future__ import annotations

from kit.rag import sparse


def test_terms_are_stemmed_lower_case_and_free_of_stop_words() -> None:
    assert sparse.terms("How do I declare Path Parameters?") == ["declar", "path", "paramet"]
    assert sparse.terms("Use HTTPException and status_code") == ["use", "httpexcept", "status_cod"]


def test_repeating_a_word_adds_weight_with_diminishing_returns() -> None:
    weight = {}
    for repeats in (1, 2, 8):
        indices, values = sparse.document_vector("cookie " * repeats + "session")
        weight[repeats] = dict(zip(indices, values, strict=True))[
            sparse.query_vector("cookie")[0][0]
        ]

    assert weight[1] < weight[2] < weight[8] < (sparse.K1 + 1)
    assert weight[8] - weight[2] < 4 * (weight[2] - weight[1])


def test_query_terms_map_to_the_same_indices_as_documents() -> None:
    doc_indices, _ = sparse.document_vector("Declaring path parameters in FastAPI")
    query_indices, query_values = sparse.query_vector("declare a path parameter")

    assert set(query_indices) <= set(doc_indices)
    assert query_values == [1.0] * len(query_indices)
