"""BM25 keyword vectors for Qdrant's sparse index: exact words, which dense embeddings blur.

A dense embedding knows "path parameter" is close to "route variable", but may miss an exact
identifier like `Annotated` or `HTTPException`; keyword search catches those. We write the BM25
term-frequency part into each chunk's sparse vector, and Qdrant multiplies in the inverse
document frequency at query time (the collection's `Modifier.IDF`), so the IDF is always that
of the collection as it is now, with no corpus statistics to keep up to date here. The pgvector
store keeps the same weights in a term table and applies the same IDF in SQL (pgvector_store.py).

    text -> lower case -> words (letters, digits, "_") -> drop stop words -> Snowball stem
         -> index = crc32(stem), value = tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from functools import cache

import snowballstemmer

_WORD = re.compile(r"[a-z0-9_]+")
K1 = 1.2  # how fast repeated words stop adding weight
B = 0.75  # how much a long chunk is penalised
AVG_LEN = 120.0  # typical chunk length in words (chunks are ~200 word pieces)

# Words too common to tell chunks apart (a short list: BM25's IDF already discounts the rest).
STOP_WORDS = frozenset(
    "a an and are as at be but by can do does for from how i if in into is it its me my not of "  # noqa: SIM905
    "on or so that the their then there these this to was what when where which who why will "
    "with you your".split()
)


@cache
def _stemmer() -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer("english")


def terms(text: str) -> list[str]:
    """Stemmed words without stop words: "Declaring Path Parameters" -> [declar, path, paramet]."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS and len(w) > 1]
    return list(_stemmer().stemWords(words))


def _index(term: str) -> int:
    return zlib.crc32(term.encode()) & 0x7FFFFFFF  # a stable hash, the same in every process


def document_vector(text: str) -> tuple[list[int], list[float]]:
    """Sparse BM25 weights (without IDF) for a chunk: (indices, values)."""
    counts = Counter(terms(text))
    length = sum(counts.values())
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        weight = tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / AVG_LEN))
        index = _index(term)
        weights[index] = weights.get(index, 0.0) + weight  # two terms sharing a hash: add up
    return list(weights), list(weights.values())


def query_vector(text: str) -> tuple[list[int], list[float]]:
    """A query's terms, each weight 1: the score is then the sum of matched terms' BM25 x IDF."""
    indices = sorted({_index(term) for term in terms(text)})
    return indices, [1.0] * len(indices)
