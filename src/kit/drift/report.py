"""The drift report: one self-contained HTML file a person can open, mail or attach to a ticket.

    verdict and scores table (score, threshold, pass/fail)
    plots, embedded as base64 PNG: words per question, similarity to the corpus, a 2-D PCA map
    the current questions farthest from the corpus, with their nearest document

No external CSS, scripts or images: the file opens offline and as an MLflow artifact. Plots use
matplotlib's object API (`Figure`), not pyplot, so nothing global changes in the process.
Questions are user input: every one is HTML-escaped before it is written.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from datetime import datetime

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from kit.drift.run import DriftResult

COLOURS = {"reference": "#4C72B0", "current": "#DD8452"}
EXAMPLES = 10


def render(result: DriftResult) -> str:
    """The report of one drift run, as an HTML document."""
    scores = result.scores
    verdict = (
        f"<p class='bad'>Drift: {', '.join(c.name for c in scores.drifted)} over threshold.</p>"
        if scores.drifted
        else "<p class='good'>No drift: every score is within its threshold.</p>"
    )
    rows = "".join(
        f"<tr><td>{c.name}</td><td>{c.score:.4f}</td><td>{c.threshold:g}</td>"
        f"<td class='{'bad' if c.drifted else 'good'}'>{'FAIL' if c.drifted else 'pass'}</td>"
        f"<td>{html.escape(c.meaning)}</td></tr>"
        for c in scores.checks
    )
    details = "".join(
        f"<tr><td>{name}</td><td>{value:.4f}</td></tr>" for name, value in scores.details.items()
    )
    windows = "".join(
        f"<tr><td>{w.name}</td><td>{len(w)}</td><td>{html.escape(w.source)}</td>"
        f"<td>{_span(w.start, w.end)}</td></tr>"
        for w in (result.reference, result.current)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drift report {result.started:%Y-%m-%d %H:%M} UTC</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }}
.good {{ color: #1a7f37; font-weight: 600; }} .bad {{ color: #cf222e; font-weight: 600; }}
img {{ max-width: 100%; }} .muted {{ color: #666; }}
</style></head><body>
<h1>Drift report</h1>
<p class="muted">{result.started:%Y-%m-%d %H:%M:%S} UTC, {result.seconds:.1f} s &middot;
embedder {html.escape(result.embedder)} &middot; collection {html.escape(result.collection)}
{f"&middot; MLflow run {result.run_id}" if result.run_id else ""}</p>
{verdict}
<h2>Scores</h2>
<table><tr><th>check</th><th>score</th><th>threshold</th><th></th><th>what it means</th></tr>
{rows}</table>
<h2>Windows</h2>
<table><tr><th>window</th><th>questions</th><th>source</th><th>span (UTC)</th></tr>
{windows}</table>
<h2>Words per question</h2>
{_img(_lengths_plot(result))}
<h2>Similarity to the corpus</h2>
<p>Each question's best cosine similarity to any chunk of the collection; below the dashed line
the RAG service refuses without asking the model.</p>
{_img(_similarity_plot(result))}
<h2>Where the questions lie (PCA of the embeddings)</h2>
<p>The two directions along which both windows' embeddings vary most. A separate cloud of
current questions is a new topic.</p>
{_img(_pca_plot(result))}
<h2>Current questions farthest from the corpus</h2>
{_examples(result)}
<h2>Details</h2>
<table>{details}</table>
</body></html>
"""


def pca_2d(
    reference: npt.NDArray[np.floating], current: npt.NDArray[np.floating]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Both windows projected on the first two principal components of the pooled vectors
    (n, d) -> (n, 2), computed with an SVD of the centred matrix."""
    pooled = np.vstack([reference, current]).astype(np.float64)
    centred = pooled - pooled.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)  # rows: directions
    projected = centred @ components[:2].T
    return projected[: len(reference)], projected[len(reference) :]


# --- Plots -------------------------------------------------------------------------------------


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.6), dpi=100, layout="tight")
    return figure, figure.subplots()


def _lengths_plot(result: DriftResult) -> Figure:
    from kit.drift.score import reference_bins, word_counts

    figure, ax = _figure()
    lengths = {w.name: word_counts(w.questions) for w in (result.reference, result.current)}
    top = int(max(values.max() for values in lengths.values()))
    bins = [count - 0.5 for count in range(top + 2)]  # one bar per word count
    for name, values in lengths.items():
        ax.hist(values, bins=bins, density=True, alpha=0.55, label=name, color=COLOURS[name])
    for n, edge in enumerate(reference_bins(lengths["reference"])):  # the bins PSI compares
        ax.axvline(edge, color="#888", linestyle=":", label="PSI bin edges" if n == 0 else None)
    ax.set_xlabel("words per question")
    ax.set_ylabel("share of questions")
    ax.legend()
    return figure


def _similarity_plot(result: DriftResult) -> Figure:
    figure, ax = _figure()
    bins = [step / 40 for step in range(41)]
    for name, values in (
        ("reference", result.reference_nearest.similarity),
        ("current", result.current_nearest.similarity),
    ):
        ax.hist(values, bins=bins, density=True, alpha=0.55, label=name, color=COLOURS[name])
    cutoff = result.thresholds.similarity
    ax.axvline(cutoff, color="#cf222e", linestyle="--", label=f"far from the corpus < {cutoff:g}")
    ax.set_xlabel("best cosine similarity to a chunk")
    ax.set_ylabel("density")
    ax.legend()
    return figure


def _pca_plot(result: DriftResult) -> Figure:
    figure, ax = _figure()
    reference, current = pca_2d(result.reference_vectors, result.current_vectors)
    for name, points in (("reference", reference), ("current", current)):
        ax.scatter(points[:, 0], points[:, 1], s=12, alpha=0.6, label=name, color=COLOURS[name])
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.legend()
    return figure


def _img(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'


# --- Tables ------------------------------------------------------------------------------------


def _examples(result: DriftResult) -> str:
    nearest = result.current_nearest
    order = np.argsort(nearest.similarity)[:EXAMPLES]  # least similar first
    rows = "".join(
        f"<tr><td>{nearest.similarity[i]:.3f}</td>"
        f"<td>{html.escape(result.current.questions[i])}</td>"
        f"<td>{html.escape(nearest.doc_id[i])}</td></tr>"
        for i in order
    )
    return (
        "<table><tr><th>similarity</th><th>question</th><th>nearest document</th></tr>"
        f"{rows}</table>"
    )


def _span(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}"
