# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Data pipelines and RAG: documents in, cited answers out
#
# Retrieval-augmented generation answers from *your* documents: find the passages that hold the
# answer, show them to a model, and check that what it says is backed by them. Most of the work,
# and most of the quality, is in the data pipeline and the retrieval, not in the prompt. You will:
#
# 1. **ingest** part of the FastAPI documentation: load, clean, chunk, embed, index (and re-run
#    it to see that unchanged files cost nothing);
# 2. compare **chunking** choices on the same documents;
# 3. compare **dense**, **keyword** (BM25) and **hybrid** search on a few questions;
# 4. **evaluate** retrieval on labelled questions: hit rate@5 and MRR, logged to MLflow;
# 5. get a **cited answer**, a refusal, and measure answers (citations, support, refusals);
# 6. see how an **LLM judge** works, and why the local model cannot be one.
#
# | what | where |
# |---|---|
# | ingestion: loaders, cleaning, chunking, index | `src/kit/rag/` (`ingest.py` is the pipeline, `store.py` the index) |
# | dense, keyword and hybrid retrieval | `src/kit/rag/retrieval.py`, `src/kit/rag/sparse.py` |
# | evaluation: retrieval metrics, answers, judge | `src/kit/evaluate/` |
# | answers: prompt, citations, refusals | `src/kit/rag_service/service.py`, `src/kit/rag/answer.py`, `src/kit/rag/prompts/` |
# | the question set (181 questions, 10 unanswerable) | `data/rag/fastapi-docs-questions.jsonl` |
#
# To stay within a few minutes on a laptop CPU it indexes one part of the documentation (the
# "advanced" guide, 34 pages) and evaluates on the questions about it; the commands are the same
# for the whole corpus (`kit ingest data/fastapi-docs/docs`, about a minute more).

# %% [markdown]
# ## Setup

# %%
import os
from pathlib import Path

from kit.core.settings import KitSettings, load_settings
from kit.notebook import start_notebook

DATA_DIR = start_notebook("03").data_dir
print("state:", DATA_DIR)

# %% [markdown]
# ## 1. Ingest: load, clean, chunk, embed, index
#
# `kit ingest` walks the folder, cleans each page (the shipped docs carry HTML fragments,
# admonitions and include directives), splits it into chunks that follow its headings, embeds
# each chunk with MiniLM and stores it in Qdrant (local mode, under `KIT_DATA_DIR`) with a dense
# vector and a BM25 sparse vector. Chunk ids are hashes of their content.
#
# A document's id is its path below the docs root, `KIT_DOCS_ROOT` (default `data`), whichever
# folder you name: `data/fastapi-docs/docs/advanced/custom-response.md` is
# `fastapi-docs/docs/advanced/custom-response.md` whether you ingest `advanced/` or the whole
# corpus. The question set labels answers with those ids, so ingesting part of the corpus keeps
# them matching; and ingesting a subfolder can never overwrite (or `--prune`) a page outside it.
# Files outside the root are refused, and a symlink leading out of it is skipped with the reason.

# %%
# !kit ingest data/fastapi-docs/docs/advanced

# %% [markdown]
# Run it again. Every chunk id is already stored, so nothing is embedded: this is what makes
# re-ingestion cheap and a crashed run safe to repeat.

# %%
# !kit ingest data/fastapi-docs/docs/advanced

# %% [markdown]
# ## 2. Chunking choices
#
# A chunk is what retrieval returns and what the model reads. Big chunks keep context together
# but dilute the match (one vector for many ideas) and cost prompt tokens; small chunks match
# sharply but can cut an answer in half. The budget is counted in MiniLM's word pieces, because
# MiniLM reads at most 256 of them and silently drops the rest. Chunking alone is fast, so here we
# chunk the whole documentation, all 125 pages, under two budgets:

# %%
from statistics import median

from kit.rag.chunk import ChunkingConfig, chunk_document, count_tokens
from kit.rag.documents import Document
from kit.rag.loaders import load_file
from kit.rag.paths import DocsRoot, discover

docs_root = DocsRoot.at(load_settings(KitSettings).docs_root)  # KIT_DOCS_ROOT
documents = [
    item
    for file in discover([Path("data/fastapi-docs/docs")], docs_root)
    if isinstance(file, Path)  # not a Skipped (a symlink out of the root, say)
    for item in load_file(file, docs_root.path)
    if isinstance(item, Document)
]
BUDGETS = [
    ChunkingConfig(max_tokens=200, overlap_tokens=32),
    ChunkingConfig(max_tokens=64, overlap_tokens=8),
]
for config in BUDGETS:
    sizes = [count_tokens(c.text) for d in documents for c in chunk_document(d, config)]
    print(
        f"{config.fingerprint():18} {len(sizes):5} chunks from {len(documents)} pages, "
        f"median {median(sizes):.0f} word pieces, largest {max(sizes)}"
    )

# %% [markdown]
# The same page under both budgets. Each chunk keeps its heading path, which is embedded with it
# (`Chunk.embedding_text`): a paragraph alone often does not say what it is about.

# %%
page = next(d for d in documents if d.id == "fastapi-docs/docs/advanced/custom-response.md")
for config in BUDGETS:
    chunks = chunk_document(page, config)
    print(f"--- {config.fingerprint()}: {len(chunks)} chunks")
    for chunk in chunks[:4]:
        print(f"  {' > '.join(chunk.heading_path)[:60]:60} | {' '.join(chunk.text.split())[:70]}")

# %% [markdown]
# ## 3. Dense, keyword and hybrid search
#
# - **dense**: the question's MiniLM vector against every chunk's (cosine). Finds paraphrases.
# - **keyword**: BM25 over stemmed words. Finds exact names (`HTTPException`, `Depends`).
# - **hybrid**: both lists fused by reciprocal rank fusion (each chunk scores `1 / (60 + rank)`
#   in each list), computed by Qdrant itself. No score calibration needed.
#
# We open the same store `kit ingest` filled. Qdrant's local mode lets one process at a time
# open the folder, so we close it again before the next step.

# %%
from kit.llm.local_models import load_embedder
from kit.rag.retrieval import Retriever
from kit.rag.store import open_store

settings = load_settings(KitSettings)
embedder = load_embedder(settings)
store = open_store(settings)  # KIT_STORE, RAG_COLLECTION: Qdrant in KIT_DATA_DIR by default
retriever = Retriever(store, embedder.embed)
print(store.count(), "chunks, embedded with", embedder.name)

# %%
QUESTIONS = [
    "GZipMiddleware",
    "How do I find out which address the request came from?",
    "How can I stream a large file to the client without loading it into memory?",
]
for question in QUESTIONS:
    print(question)
    for mode in ("dense", "keyword", "hybrid"):
        hits = retriever.search(question, k=3, mode=mode)
        print(f"  {mode:8}", "  ".join(f"{hit.doc_id} ({hit.score:.2f})" for hit in hits))

# %% [markdown]
# ## 4. Evaluate retrieval
#
# Looking at three questions is an anecdote. The question set labels each question with the
# documents that answer it, so retrieval can be measured: **hit rate@5** (is a relevant document
# in the top 5?) and **MRR** (1 / the rank of the first relevant one). Each mode's evaluation is
# an MLflow run, so a change to chunking or to the embedder is compared, not guessed. We keep the
# questions about the pages we indexed (`kit eval rag` runs all 171 on the whole corpus).

# %%
from kit.core import tracking
from kit.evaluate.rag import evaluate_retrieval, load_questions, log_to_mlflow

questions = load_questions(Path("data/rag/fastapi-docs-questions.jsonl"))
ADVANCED = "fastapi-docs/docs/advanced/"
about_advanced = [
    q for q in questions if q.relevant and all(d.startswith(ADVANCED) for d in q.relevant)
]
print(f"{len(about_advanced)} of {len(questions)} questions are about {ADVANCED}")
mlflow = tracking.start(settings, "rag-retrieval")
evaluations = {}
for mode in ("dense", "keyword", "hybrid"):
    evaluations[mode] = result = evaluate_retrieval(retriever, about_advanced, k=5, mode=mode)
    run_id = log_to_mlflow(mlflow, result, {"collection": "docs", "embedder": embedder.name})
    scores = ", ".join(f"{name} {value:.3f}" for name, value in result.metrics.items())
    print(
        f"{mode:8} ({len(result.rows)} questions, {result.seconds:.1f}s, run {run_id[:8]}):",
        scores,
    )

# %% [markdown]
# The failures are where to look next: a question hybrid search misses is a labelling mistake,
# a chunking problem, or a real gap of the embedder.

# %%
for row in evaluations["hybrid"].rows:
    if row["hit_rate_at_5"] == 0:
        print(
            f"{row['id']} {row['question'][:60]}",
            f"| wanted {row['relevant']}, got {row['retrieved'][:3]}",
        )

# %%
runs = mlflow.search_runs(experiment_names=["rag-retrieval"])
runs[
    [
        "tags.mlflow.runName",
        "params.mode",
        "metrics.hit_rate_at_5",
        "metrics.mrr",
        "metrics.latency_p50_ms",
    ]
]

# %%
store.close()  # let the RAG service open the store

# %% [markdown]
# ## 5. A cited answer
#
# The RAG service retrieves (hybrid, k=5), **refuses** without calling the model when no chunk is
# similar enough to the question (`RAG_MIN_RELEVANCE`), shows the model numbered sources with a
# versioned prompt (`src/kit/rag/prompts/answer-v2.yaml`), then **checks the citations**: a
# number that matches no source is removed, and when the model cites nothing each sentence is
# attributed to the source it overlaps most, marked `inferred`. An answer whose every citation is
# invalid gets none (a model that obeyed a planted "cite [9]" is not credited to any page), and
# `citation_status` says which case it was. Every answer carries its timings.
#
# `kit.runtime.rag_service` is what `kit ask` uses (and `kit serve rag` the same wiring): the
# model is reached through the gateway (started in this process, since `GATEWAY_URL` is not
# set), and the service itself only sees two ports, a chat model and an embedder. `max_tokens=96` (the
# variable `RAG_MAX_TOKENS`) keeps a 135M model on a CPU from rambling for seconds.
#
# Called in-process, as here, the result holds the retrieved chunks (`contexts`). Over HTTP,
# `kit serve rag` wants a key from `kit rag keys create` (`--admin` also allows `POST /ingest`),
# and returns the chunks' text only when the request sets `"include_contexts": true`: by
# default an answer carries its citations' snippets, and a refusal no document text at all.

# %%
from contextlib import AsyncExitStack

from kit.rag_service.settings import RagSettings
from kit.runtime import rag_service

stack = AsyncExitStack()
rag_settings = load_settings(RagSettings, max_tokens=96)
service = await stack.enter_async_context(rag_service(rag_settings))

# %%
QUESTION = "How do I return an HTML page instead of JSON?"
result = await service.ask(QUESTION)
print(result.answer.text, "\n")
print("sources the model was shown:")
for number, hit in enumerate(result.contexts, 1):
    print(f"  [{number}] {hit.doc_id} > {' > '.join(hit.heading_path)[:50]}")
print("citations kept:")
for citation in result.answer.citations:
    print(f"  [{citation.number}] {citation.doc_id}{' (inferred)' if citation.inferred else ''}")
print("removed (no such source):", result.answer.invalid_citations)
print(f"support {result.answer.support:.2f}, latency ms {result.latency_ms}")

# %% [markdown]
# A question the documents cannot answer is refused before any model call, which is both
# cheaper and safer than hoping the model admits it does not know:

# %%
off_topic = await service.ask("What is a good recipe for sourdough bread?")
print(off_topic.answer.text)
print("refused:", off_topic.answer.refused, "-", off_topic.refusal_reason)
print(f"best similarity {off_topic.relevance:.2f}, latency ms {off_topic.latency_ms}")

# %% [markdown]
# ## 6. Evaluate answers
#
# `evaluate_answers` asks the service each question as production would, then measures
# **citation validity**, lexical **support** (the share of answer sentences whose words appear in
# a cited source), and **refusal rates** on answerable and on unanswerable questions. Here a few
# of each, to stay quick; `kit eval answers --limit 20` runs more and logs an MLflow run.

# %%
from kit.evaluate.answers import evaluate_answers

sample = [q for q in questions if not q.relevant][:2] + about_advanced[:3]
answers = await evaluate_answers(service.ask, sample)
for name, value in answers.metrics.items():
    print(f"{name:28} {value:8.3f}")
for row in answers.rows:
    print(
        f"{row['id']} answerable={row['answerable']!s:5} refused={row['refused']!s:5} "
        f"citations={row['citations']} support={row['support']:.2f} | {row['answer'][:60]!r}"
    )

# %% [markdown]
# ### An LLM judge: the mechanics offline, the real thing with a key
#
# Lexical support cannot tell a paraphrase from a contradiction that reuses the source's words.
# An **LLM judge** reads the answer and the sources and returns a verdict per sentence, as JSON
# validated by pydantic; an invalid reply is sent back once with the error, then counted as a
# failure, never as a pass (`src/kit/evaluate/judge.py`). The prompt:

# %%
from kit.evaluate.judge import Judge, load_judge_prompt, parse_judgement

judge_prompt = load_judge_prompt()
print(judge_prompt.system)

# %% [markdown]
# Parsing and validation, on a reply written by hand, and on one a weak model might give:

# %%
good = (
    '{"verdicts": [{"sentence": "Use HTMLResponse.", "supported": true, "reason": "[4] says so"}]}'
)
print("faithfulness:", parse_judgement(good).faithfulness)
try:
    parse_judgement("The answer looks correct to me!")
except ValueError as error:
    print("rejected:", error)

# %% [markdown]
# **A 135M model is not a judge**: its verdicts would be noise, and it rarely even writes the JSON.
# We show that once, with the local model judging the answer above. With `OPENAI_API_KEY` set,
# the same code runs `gpt-4o-mini` as the judge, over the sample (as `kit eval answers --judge
# gpt-4o-mini` does).

# %%
JUDGE_MODEL = "gpt-4o-mini" if os.environ.get("OPENAI_API_KEY") else "local"


async def judge_chat(messages):
    return (await service.llm.achat(messages, model=JUDGE_MODEL, max_tokens=200)).text


judge = Judge(judge_chat, judge_prompt, JUDGE_MODEL)
verdict = await judge.judge(
    QUESTION,
    result.answer.text,
    [hit.text for hit in result.contexts],
)
print(
    f"judge {JUDGE_MODEL}:",
    verdict if verdict else "no valid verdict in two tries (counted as a failure)",
)
if JUDGE_MODEL != "local":
    judged = await evaluate_answers(service.ask, sample, judge)
    print(
        "judge_faithfulness",
        judged.metrics["judge_faithfulness"],
        "failures",
        judged.metrics["judge_failures"],
    )

# %%
await stack.aclose()

# %% [markdown]
# ## What you saw
#
# - Ingestion is a pipeline of small stages; content-hash ids make it incremental and safe.
# - Chunk size is a trade-off you can count; the heading path travels with every chunk.
# - Keyword search wins on exact names, dense on paraphrases, hybrid (RRF) on the whole set.
# - Retrieval is measured on a labelled set, each run in MLflow. On the whole corpus (171
#   questions, `docs/benchmarks.md`) hybrid leads: hit rate@5 0.99 and MRR 0.97, against 0.99 /
#   0.91 for dense and 0.98 / 0.92 for keyword.
# - Answers cite numbered sources, citations are checked, and irrelevant questions are refused
#   before the model is called. The 135M model writes weak answers: point `RAG_MODEL` at a cloud
#   alias of the gateway (`RAG_MODEL=gpt-4o-mini` with `OPENAI_API_KEY`) for real ones; the
#   pipeline and its checks stay the same.
#
# ## Exercises
#
# 1. **Chunk budget.** Ingest the whole corpus twice, into two collections
#    (`kit ingest data/fastapi-docs/docs`, then again with `--collection small --max-tokens 64
#    --overlap 8`) and evaluate both (`kit eval rag --mode hybrid`, then with
#    `--collection small`). Does hit rate@5 or MRR move, and what happens to the prompt's length?
# 2. **Incremental ingestion.** Copy three pages to a folder under `data/` (the docs root), ingest
#    it, edit one paragraph of one page, delete another page, and ingest again with `--prune`.
#    Read the report: what was added, removed, unchanged?
# 3. **Metadata filters.** Each chunk carries its page's metadata (`format`, `path`). On the
#    whole corpus (exercise 1), run `kit search "HTTPException" --filter
#    path=fastapi-docs/docs/tutorial/handling-errors.md`, then with `--filter
#    path=fastapi-docs/docs/advanced/custom-response.md`.
#    What does a wrong filter cost? Read `to_filter` in
#    `src/kit/rag/retrieval.py` and `_file_document` in `src/kit/rag/loaders.py`: what would
#    you add so users can filter by top-level folder (`tutorial`, `advanced`)?
# 4. **Refusal threshold.** Lower `RAG_MIN_RELEVANCE` to 0.2 and re-run section 6. How do the two
#    refusal rates change, and what does the model say to the unanswerable questions now?
# 5. **A prompt version.** Copy `src/kit/rag/prompts/answer-v2.yaml` to `answer-v3.yaml`, change
#    the instructions, set `RAG_PROMPT=answer-v3` and compare `kit eval answers` for both.
# 6. **A real judge.** With `OPENAI_API_KEY` set, run `kit eval answers --limit 10 --judge
#    gpt-4o-mini`. Which answers does the judge fail that lexical support passed?
