"""Drift scores: how far the current window of questions moved from the reference, as numbers.

Pure functions on numpy arrays; nothing here reads files, embeds text or talks to Qdrant.
Each check is a score with a threshold, higher meaning more drift, so one rule ("score above
threshold") serves the report, `kit drift --fail-on-drift` and the Prometheus alert alike:

    embedding_mmd          MMD^2 between the windows' embeddings (RBF kernel)   > 0.02
    length_psi             PSI of question length in words, 5 reference bins    > 0.25
    far_from_corpus_share  share of questions whose best chunk similarity < 0.40 > 0.20
    refusal_rate           share of logged questions the service refused         > 0.30

Thresholds were measured on the shipped data with MiniLM (see `Thresholds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Thresholds:
    """Where each score starts to mean drift. Measured with MiniLM against the whole FastAPI docs
    index; reference = the 181 shipped questions; "in-domain" = 42 other hand-written FastAPI
    questions, "banking" = BANKING77 queries (the data of tests/integration/test_drift.py):

                                   MMD^2   length PSI   far share
        half of the shipped set   <= 0.003      <= 0.18        0.00   (20 random halves: noise)
        in-domain                    0.007         0.09        0.07   (3 terse questions)
        in-domain + 20% banking      0.012         0.12        0.26
        in-domain + 30% banking      0.021         0.23        0.38
        banking (42 or 200)          0.10       1.6-1.7   0.95-0.99

    - mmd 0.02: about a third of the traffic on another topic. The in-domain set differs from
      the shipped one "significantly" (p = 0.002) yet by little (0.007): with enough questions
      every difference is significant, so the threshold is on the size, not the p-value.
    - psi 0.25: the usual reading of PSI (< 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted).
    - far_share 0.20 below similarity 0.40, the RAG service's own refusal bar
      (RAG_MIN_RELEVANCE): no shipped question is below it, one in five off-topic fires it.
    - refusal_rate 0.30: the same bar as the RagRefusalRateHigh alert on live traffic.
    """

    mmd: float = 0.02
    psi: float = 0.25
    far_share: float = 0.20
    refusal_rate: float = 0.30
    similarity: float = 0.40  # a question is "far from the corpus" below this best similarity


@dataclass(frozen=True)
class Check:
    name: str
    score: float
    threshold: float
    meaning: str  # one line for people: what a high score says

    @property
    def drifted(self) -> bool:
        return self.score > self.threshold


@dataclass(frozen=True)
class MMDResult:
    mmd2: float  # unbiased estimate: about 0 (can be slightly negative) for the same distribution
    p_value: float  # chance of a score this high if both windows came from one distribution
    bandwidth: float  # the RBF kernel's sigma
    permutations: int


@dataclass(frozen=True)
class Scores:
    checks: list[Check]
    details: dict[str, float] = field(default_factory=dict)  # context: p-value, bandwidth, ...

    @property
    def drifted(self) -> list[Check]:
        return [check for check in self.checks if check.drifted]

    def by_name(self) -> dict[str, Check]:
        return {check.name: check for check in self.checks}


# --- Population stability index on lengths -----------------------------------------------------


def word_counts(texts: Sequence[str]) -> npt.NDArray[np.int64]:
    """Words per text. Words, not tokens: independent of any tokenizer, and what people read."""
    return np.array([len(text.split()) for text in texts], dtype=np.int64)


def reference_bins(reference: npt.ArrayLike, bins: int = 5) -> Floats:
    """Inner bin edges at the reference's quantiles, fixed for every later window.

    5 bins, not the customary 10: windows hold tens to hundreds of questions, and with 10 bins
    a random 40-question sample of the shipped set scores PSI up to 0.5 against the whole set
    (0.28 with 5). Repeated edges (many questions of one length) are merged.
    >>> reference_bins([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], bins=2)
    array([5.5])
    """
    values = _finite(reference, "reference")
    inner = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    edges: Floats = np.unique(inner)
    return edges


def proportions(values: npt.ArrayLike, edges: Floats, smoothing: float = 0.5) -> Floats:
    """Share of values per bin (bins: below edges[0], ..., from edges[-1] up), each count
    plus `smoothing` so that an empty bin costs a finite amount instead of log(0)."""
    array = _finite(values, "window")
    counts = np.bincount(np.searchsorted(edges, array, side="right"), minlength=len(edges) + 1)
    smoothed = (counts + smoothing) / (len(array) + smoothing * (len(edges) + 1))
    return smoothed.astype(np.float64)


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Population stability index of two distributions over the same bins:
    sum((actual - expected) * ln(actual / expected)).

    >>> round(psi([0.5, 0.5], [0.25, 0.75]), 4)      # 0.25*ln 2 + 0.25*ln 1.5
    0.2747
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1 or not len(e):
        raise ValueError(
            f"psi needs two proportion vectors of one length, got {e.shape}, {a.shape}"
        )
    if (e <= 0).any() or (a <= 0).any():
        raise ValueError("psi needs positive proportions; smooth empty bins first (proportions())")
    return float(np.sum((a - e) * np.log(a / e)))


def length_psi(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = 5) -> float:
    edges = reference_bins(reference, bins)
    return psi(proportions(reference, edges), proportions(current, edges))


# --- Maximum mean discrepancy between embedding sets -------------------------------------------
#
# Why MMD rather than the distance between the two windows' centroids: the centroid only sees a
# shift of the mean. A new cluster of questions (users start asking about billing) moves the mean
# a little while the distribution changes a lot; MMD with an RBF kernel compares every pair of
# questions, so it sees a change of shape, not only of the mean. It needs no binning in 384
# dimensions and comes with a permutation test.


def _squared_distances(a: Floats, b: Floats) -> Floats:
    """(len(a), len(b)) squared Euclidean distances, clipped at 0 against rounding."""
    d: Floats = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def median_bandwidth(x: npt.ArrayLike) -> float:
    """The median pairwise distance within `x`: the usual choice of RBF sigma ("median heuristic").

    Taken from the reference alone, not from both windows, so that the kernel, and with it the
    scale of every score, stays the same from one run to the next whatever the current window.
    """
    rows = _matrix(x, "reference")
    if len(rows) < 2:
        raise ValueError("the median bandwidth needs at least 2 reference vectors")
    d = np.sqrt(_squared_distances(rows, rows)[np.triu_indices(len(rows), 1)])
    median = float(np.median(d))
    return median if median > 0 else 1.0  # identical vectors: any sigma gives the same answer


def mmd_rbf(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    bandwidth: float | None = None,
    permutations: int = 500,
    seed: int = 0,
    max_samples: int = 1000,
) -> MMDResult:
    """Unbiased MMD^2 between samples x (n, d) and y (m, d), with a permutation p-value.

    MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y), with k(a, b) = exp(-|a-b|^2 / 2s^2),
    the within-window means leaving out each point's kernel with itself (so the estimate is
    unbiased: about 0 for one distribution, at any window size). The p-value shuffles the
    window labels `permutations` times: (1 + #{shuffled >= observed}) / (1 + permutations).

    A small p-value says the windows differ; it does not say by how much (with enough questions
    any difference is "significant"). That is why the check thresholds the MMD^2 itself, and
    the p-value is reported beside it. Windows above `max_samples` are subsampled (seeded):
    the kernel matrix is (n+m)^2 floats, 32 MB at 1000 + 1000.
    """
    rng = np.random.default_rng(seed)
    a, b = (
        _subsample(_matrix(x, "reference"), max_samples, rng),
        _subsample(_matrix(y, "current"), max_samples, rng),
    )
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the windows' vectors differ in size: {a.shape[1]} and {b.shape[1]}")
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        raise ValueError(f"MMD needs at least 2 vectors per window, got {n} and {m}")
    sigma = bandwidth if bandwidth is not None else median_bandwidth(a)
    if sigma <= 0:
        raise ValueError(f"bandwidth must be positive, got {sigma}")
    pooled = np.vstack([a, b])
    kernel = np.exp(-_squared_distances(pooled, pooled) / (2.0 * sigma**2))  # (n+m, n+m)

    # Each column of `labels` marks which pooled rows form window x: column 0 the real split,
    # the others random splits. Sums over blocks then come from one matrix product for all:
    # x'Kx = sum(labels * K @ labels), and K's diagonal is 1 (exp 0), so leaving the self-pairs
    # out subtracts n (or m).
    labels = np.zeros((n + m, permutations + 1))
    labels[:n, 0] = 1.0
    for column in range(1, permutations + 1):
        labels[rng.permutation(n + m)[:n], column] = 1.0
    k_labels = kernel @ labels  # (n+m, P+1)
    k_total = kernel.sum(axis=1, keepdims=True)  # K @ 1
    xx = (labels * k_labels).sum(0)
    xy = ((1.0 - labels) * k_labels).sum(0)
    yy = ((1.0 - labels) * (k_total - k_labels)).sum(0)
    stats = (xx - n) / (n * (n - 1)) + (yy - m) / (m * (m - 1)) - 2.0 * xy / (n * m)
    observed = float(stats[0])
    p_value = (1.0 + float(np.sum(stats[1:] >= observed))) / (1.0 + permutations)
    return MMDResult(observed, p_value, float(sigma), permutations)


# --- Shares ------------------------------------------------------------------------------------


def share_below(values: npt.ArrayLike, cutoff: float) -> float:
    """Share of values strictly below `cutoff`: here, questions farther from the corpus than the
    service's refusal bar."""
    array = _finite(values, "window")
    return float(np.mean(array < cutoff))


def rate(flags: Sequence[bool]) -> float:
    if not len(flags):
        raise ValueError("a rate of no observations is undefined")
    return float(np.mean(np.asarray(flags, dtype=bool)))


# --- Every check at once -----------------------------------------------------------------------


def score_windows(
    *,
    reference_vectors: npt.ArrayLike,
    current_vectors: npt.ArrayLike,
    reference_texts: Sequence[str],
    current_texts: Sequence[str],
    reference_similarity: npt.ArrayLike,
    current_similarity: npt.ArrayLike,
    current_refused: Sequence[bool] | None,
    thresholds: Thresholds = Thresholds(),
    permutations: int = 500,
    seed: int = 0,
) -> Scores:
    """The four checks (three when refusals are unknown, as for a window not from the log)."""
    if not reference_texts or not current_texts:
        which = "reference" if not reference_texts else "current"
        raise ValueError(f"the {which} window is empty: there is nothing to compare")
    mmd = mmd_rbf(reference_vectors, current_vectors, permutations=permutations, seed=seed)
    ref_lengths, cur_lengths = word_counts(reference_texts), word_counts(current_texts)
    checks = [
        Check(
            "embedding_mmd",
            mmd.mmd2,
            thresholds.mmd,
            "what questions are about moved (MMD^2 of the embeddings)",
        ),
        Check(
            "length_psi",
            length_psi(ref_lengths, cur_lengths),
            thresholds.psi,
            "how long questions are changed (PSI of words per question)",
        ),
        Check(
            "far_from_corpus_share",
            share_below(current_similarity, thresholds.similarity),
            thresholds.far_share,
            f"questions the documents do not cover (best chunk similarity < "
            f"{thresholds.similarity:.2f})",
        ),
    ]
    if current_refused:
        checks.append(
            Check(
                "refusal_rate",
                rate(current_refused),
                thresholds.refusal_rate,
                "questions the service answered with 'I don't know.'",
            )
        )
    details = {
        "embedding_mmd_p_value": mmd.p_value,
        "embedding_bandwidth": mmd.bandwidth,
        "reference_far_from_corpus_share": share_below(reference_similarity, thresholds.similarity),
        "reference_mean_similarity": float(np.mean(_finite(reference_similarity, "reference"))),
        "current_mean_similarity": float(np.mean(_finite(current_similarity, "current"))),
        "reference_mean_words": float(ref_lengths.mean()),
        "current_mean_words": float(cur_lengths.mean()),
    }
    return Scores(checks, details)


# --- Input checks ------------------------------------------------------------------------------


def _finite(values: npt.ArrayLike, name: str) -> Floats:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not len(array):
        raise ValueError(f"the {name} window is empty: there is nothing to compare")
    if not np.isfinite(array).all():
        raise ValueError(f"the {name} window holds NaN or infinite values")
    return array


def _matrix(values: npt.ArrayLike, name: str) -> Floats:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or not array.shape[0]:
        raise ValueError(f"the {name} window needs a non-empty (n, dim) matrix, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"the {name} window holds NaN or infinite values")
    return array


def _subsample(rows: Floats, limit: int, rng: np.random.Generator) -> Floats:
    if len(rows) <= limit:
        return rows
    picked: Floats = rows[rng.choice(len(rows), size=limit, replace=False)]
    return picked
