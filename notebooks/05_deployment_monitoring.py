# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Deployment and monitoring: metrics, alerts, dashboards, drift
#
# A model in production fails quietly: a provider slows down, users start asking about things
# your documents do not cover, refusals creep up. Monitoring turns that into numbers, and
# numbers into alerts. You will:
#
# 1. run the gateway and the RAG service as they are deployed (RAG calls the gateway over HTTP),
#    send traffic, and read what each exports on **`/metrics`**;
# 2. read the **alert rules** and run their unit tests with `promtool`;
# 3. list the **Grafana dashboards'** panels and the PromQL behind each;
# 4. write a query log with off-topic traffic and run the **drift** job: scores, Prometheus
#    gauges and an HTML report;
# 5. follow **one request through its trace**: the RAG service's steps and the gateway's, with
#    their models, tokens, chunk ids and scores, then score traced answers with MLflow.
#
# | what | where |
# |---|---|
# | metrics of each service | `src/kit/web/metrics.py`, `src/kit/gateway/metrics.py`, `src/kit/rag_service/metrics.py` |
# | scrape config, alert rules, their tests | `deploy/prometheus/` |
# | dashboards | `deploy/grafana/dashboards/` |
# | drift: query log, scores, export, report | `src/kit/drift/`, `kit drift` |
# | traces: set-up, exporters, GenAI attributes | `src/kit/core/tracing.py`, `src/kit/web/tracing.py` |
# | scoring traced answers | `src/kit/evaluate/traces.py`, `kit eval answers --from-traces` |
# | images, compose, Kubernetes | `deploy/docker/`, `docker-compose.yml`, `deploy/k8s/` (see `deploy/README.md`) |
#
# Here the two services run inside this notebook's process, each on its own 127.0.0.1 port; in
# production they are `kit serve gateway` and `kit serve rag` in containers, scraped by Prometheus.
# About two minutes on a laptop CPU.

# %% [markdown]
# ## Setup

# %%
import os
from pathlib import Path

from kit.core.settings import KitSettings, load_settings
from kit.notebook import start_notebook

DATA_DIR = start_notebook("05").data_dir
# Traces go to this notebook's MLflow store (the default with no collector), with the prompts and
# answers recorded: content capture is off unless asked for, as it is here (section 5).
os.environ |= {"KIT_TRACE_EXPORTER": "mlflow", "KIT_TRACE_CONTENT": "true"}
print("state:", DATA_DIR)

# %% [markdown]
# ## 1. Two services, some traffic, their metrics
#
# An index to answer from: the tutorial part of the FastAPI docs (notebook 03 covers ingestion).

# %%
# !kit ingest data/fastapi-docs/docs/tutorial

# %% [markdown]
# The gateway first, then the RAG service pointed at it with `GATEWAY_URL` and `GATEWAY_API_KEY`,
# exactly as in `docker-compose.yml`. `EmbeddedServer` serves an app on a free local port from a
# background thread; the app is the same object `kit serve rag` hands to uvicorn (`rag_app`). The RAG service
# wants a key of its own from every caller: `add_key` is what `kit rag keys create` runs.

# %%
from kit.gateway.embedded import start_in_process
from kit.rag_service.auth import add_key
from kit.rag_service.settings import RagSettings
from kit.runtime import rag_app
from kit.web.embedded import EmbeddedServer

gateway, gateway_key = start_in_process(load_settings(KitSettings))
os.environ |= {"GATEWAY_URL": gateway.url, "GATEWAY_API_KEY": gateway_key, "RAG_MAX_TOKENS": "96"}
rag_settings = load_settings(RagSettings)
rag_key = add_key(rag_settings.resolved_keys_file, "notebook-05")  # may ask, not ingest
rag = EmbeddedServer(rag_app(rag_settings)).start()
print("gateway:", gateway.url, " rag:", rag.url)

# %% [markdown]
# Traffic: two questions about the documents, then forty banking questions (from BANKING77), as if
# the service had been linked from the wrong page. Those are refused: no chunk is similar enough.
# Every `/ask` question also goes to the query log (`RAG_QUERY_LOG`, default
# `KIT_DATA_DIR/rag-queries.jsonl`), which the drift job reads in section 4.

# %%
import httpx

from kit.finetune.data import read_csv

on_topic = ["How do I declare a path parameter?", "How do I return an error to the client?"]
off_topic = [example.text for example in read_csv(Path("data/banking77/test.csv"))[::77][:40]]
auth = {"authorization": f"Bearer {rag_key}"}
with httpx.Client(base_url=rag.url, timeout=120, headers=auth) as http:
    for question in on_topic + off_topic:
        reply = http.post("/ask", json={"question": question}).json()
        if question in on_topic:
            print(
                f"{question}\n  -> {reply['answer'][:100]!r} ({len(reply['citations'])} citations)"
            )
print(f"sent {len(on_topic) + len(off_topic)} questions")

# %% [markdown]
# Now scrape both services as Prometheus would. Counters only go up (`_total`); histograms come
# as `_bucket`, `_sum` and `_count` series, from which PromQL computes rates and percentiles.

# %%
rag_metrics = httpx.get(f"{rag.url}/metrics").text
gateway_metrics = httpx.get(f"{gateway.url}/metrics").text
RAG_SERIES = (
    "rag_answers_total",
    "rag_stage_duration_seconds_count",
    "rag_citations_per_answer_sum",
    "http_requests_total",
)
GATEWAY_SERIES = (
    "gateway_requests_total",
    "gateway_tokens_total",
    "gateway_request_duration_seconds_count",
)
print("\n".join(line for line in rag_metrics.splitlines() if line.startswith(RAG_SERIES)))
print()
print("\n".join(line for line in gateway_metrics.splitlines() if line.startswith(GATEWAY_SERIES)))

# %% [markdown]
# The numbers an alert rule would compute. `RagRefusalRateHigh` (below) fires when more than 30%
# of answers are refusals for 15 minutes; this traffic would trip it.

# %%
from prometheus_client.parser import text_string_to_metric_families

answers = {
    sample.labels["outcome"]: sample.value
    for family in text_string_to_metric_families(rag_metrics)
    if family.name == "rag_answers"
    for sample in family.samples
    if sample.name == "rag_answers_total"
}
print(answers, f"-> refusal share {answers.get('refused', 0) / sum(answers.values()):.0%}")

# %%
rag.stop()
gateway.stop()
for name in ("GATEWAY_URL", "GATEWAY_API_KEY", "RAG_MAX_TOKENS"):
    del os.environ[name]

# %% [markdown]
# ## 2. Alert rules
#
# `deploy/prometheus/alerts.yml` holds the rules Prometheus evaluates: error rate, latency,
# fallbacks, rejected requests, refusals, drift, and a service that stopped answering scrapes.
# Each has a severity (`page` wakes someone, `warn` waits for the morning) and a `for:` that keeps
# a short blip from paging.

# %%
import yaml

rules = yaml.safe_load(Path("deploy/prometheus/alerts.yml").read_text())
for group in rules["groups"]:
    for rule in group["rules"]:
        expression = " ".join(rule["expr"].split())
        print(
            f"{group['name']:8} {rule['alert']:28} {rule['labels']['severity']:5} "
            f"for {rule.get('for', '-'):4} {expression[:70]}"
        )

# %% [markdown]
# Alert rules are code, so they have tests: `deploy/prometheus/alerts_test.yml` feeds each rule a
# series of bad traffic (it must fire) and good traffic (it must stay quiet). `promtool` runs them
# offline; it comes with Prometheus (`apt-get install prometheus`, `brew install prometheus`).

# %%
# !promtool check rules deploy/prometheus/alerts.yml || echo "(needs promtool: apt-get install prometheus)"
# !promtool test rules deploy/prometheus/alerts_test.yml || echo "(needs promtool: apt-get install prometheus)"

# %% [markdown]
# ## 3. Dashboards
#
# Grafana dashboards are JSON files in the repository, provisioned at start-up
# (`deploy/grafana/provisioning/`). Each panel is a PromQL query over the series you scraped above.

# %%
import json

for path in sorted(Path("deploy/grafana/dashboards").glob("*.json")):
    dashboard = json.loads(path.read_text())
    print(f"== {dashboard['title']} ({path.name}): {len(dashboard['panels'])} panels")
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            print(f"   {panel['title'][:34]:34} {' '.join(target['expr'].split())[:80]}")

# %% [markdown]
# ## 4. Drift
#
# Latency and errors do not tell you that users now ask about something else. The drift job
# compares the recent questions of the query log with a reference (the shipped question set), on
# four checks: **embedding MMD²** (do the two sets of MiniLM vectors come from one distribution?),
# **length PSI**, the share of questions **far from every document**, and the **refusal rate**.
# It exports the scores as Prometheus gauges (here a textfile, as node_exporter reads; or a
# Pushgateway), logs an MLflow run, and writes an HTML report. Scheduled daily, `DriftScoreHigh`
# alerts on it.

# %%
# !head -n 3 {DATA_DIR}/rag-queries.jsonl

# %%
# !kit drift --window 1d --metrics-file {DATA_DIR}/drift.prom

# %% [markdown]
# The gauges Prometheus would read; `DriftScoreHigh` is simply `drift_score > drift_threshold`:

# %%
print((DATA_DIR / "drift.prom").read_text())

# %% [markdown]
# The report: open the HTML file in a browser for the plots (lengths, similarity to the
# documents, a 2-D map of both windows) and the current questions farthest from the documents.
# The scores also sit beside it as JSON, and in the MLflow run (experiment `drift`).

# %%
report = sorted((DATA_DIR / "reports" / "drift").glob("*.html"))[-1]
summary = json.loads(report.with_suffix(".json").read_text())
print("open in a browser:", report.as_uri())
for check in summary["checks"]:
    print(
        f"{check['name']:22} {check['score']:7.3f} > {check['threshold']:<5}: "
        f"{check['drifted']!s:5} {check['meaning']}"
    )

# %% [markdown]
# ## 5. One request, followed through its trace
#
# Metrics count; a trace tells one story. Every request in section 1 made OpenTelemetry spans: the
# RAG service's (`rag ask`, the retrieval and its embedding, the model call), then, because the
# gateway client's HTTP call carried a W3C `traceparent` header, the gateway's (its server span,
# the alias with its deployment and cost, one span per try). With no collector configured they
# went to MLflow, experiment `kit-traces`. `flush` exports what is still queued.

# %%
from collections import defaultdict

from mlflow import MlflowClient

from kit.core.tracing import flush
from kit.core.tracking import tracking_uri

flush()
store = MlflowClient(tracking_uri(load_settings(KitSettings)))
experiment = store.get_experiment_by_name("kit-traces")
traces = store.search_traces(locations=[experiment.experiment_id], max_results=200)


def asked(trace, question):
    """Whether `trace` is the /ask of `question` (recorded: content capture is on here)."""
    return any(
        s.name == "rag ask" and s.get_attribute("kit.rag.question") == question
        for s in trace.data.spans
    )


trace = next(t for t in traces if asked(t, on_topic[0]))
print(f"{trace.info.trace_id}: {len(trace.data.spans)} spans, {trace.info.execution_duration} ms")

# %% [markdown]
# The tree, with what each step recorded. `gen_ai.*` names come from OpenTelemetry's GenAI
# semantic conventions (MLflow shows a `chat` span as a model call with its tokens); `kit.*` are
# the kit's own: retrieval mode and chunk ids, the deployment that answered, fallbacks, cost.

# %%
SHOWN = (
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.prompt.name",
    "kit.retrieval.mode",
    "kit.retrieval.chunk_ids",
    "kit.gateway.deployment",
    "kit.gateway.fallbacks",
    "kit.gateway.cost_usd",
    "kit.rag.citations",
)
children = defaultdict(list)
for span in trace.data.spans:
    children[span.parent_id].append(span)


def show(span, depth=0):
    milliseconds = (span.end_time_ns - span.start_time_ns) / 1e6
    recorded = {
        name.split(".", 1)[1]: span.get_attribute(name)
        for name in SHOWN
        if span.get_attribute(name) is not None
    }
    print(f"{'  ' * depth}{span.name:<{40 - 2 * depth}} {milliseconds:8.1f} ms  {recorded}")
    for child in sorted(children[span.span_id], key=lambda s: s.start_time_ns):
        show(child, depth + 1)


for root in children[None]:
    show(root)

# %% [markdown]
# With content capture on, the model call holds the prompt and the answer (scrubbed of secrets,
# e-mail addresses, phone and card numbers, like a log line). Off, the default, it holds none:
# only sizes, ids, scores, models and tokens.

# %%
ask = next(span for span in trace.data.spans if span.name == "rag ask")
chat = next(span for span in children[ask.span_id] if span.name.startswith("chat "))  # RAG's call
prompt = chat.get_attribute("gen_ai.input.messages")  # MLflow gives back the JSON it stored
answer = chat.get_attribute("gen_ai.output.messages")[0]["parts"][0]["content"]
print("prompt:", [message["role"] for message in prompt])
print("answer:", answer[:200])

# %% [markdown]
# Traced answers can be scored after the fact, without asking again: `kit eval answers
# --from-traces` hands them to MLflow's evaluator (`mlflow.genai.evaluate`) with the kit's scorers
# (refused, citations valid, support; faithfulness too with `--judge ALIAS`, a capable model).
# The scored traces and their assessments appear in the run's Traces tab (experiment `rag-answers`).

# %%
# !kit eval answers --from-traces --limit 10

# %% [markdown]
# `kit mlflow ui` shows all of this: experiment `kit-traces`, tab *Traces*, a click on a trace for
# its tree. In production, point `OTEL_EXPORTER_OTLP_ENDPOINT` at a collector (Jaeger, Tempo, an
# MLflow server's `/v1/traces`), and sample with `OTEL_TRACES_SAMPLER_ARG`.

# %% [markdown]
# ## What you saw
#
# - Each service exports request counts and latency histograms, and its own domain metrics
#   (deployments, tokens, cost, cache; answers, refusals, citations, time per stage).
# - Alert rules and dashboards are files in the repository, tested like code (`promtool`).
# - Off-topic traffic showed up three ways: as refusals on `/metrics`, as drift scores over their
#   thresholds, and as a report that names the questions far from the documents.
# - One question was one trace across both services: each step, the chunks retrieved with their
#   scores, the deployment that answered and its tokens and cost; and traced answers were scored
#   later with MLflow's evaluator.
#
# To run the real stack: `make up` (containers: the services, Qdrant, Redis, MLflow, Prometheus,
# Pushgateway, Grafana), or `kit serve gateway`, `kit serve rag` and `prometheus
# --config.file=deploy/prometheus/prometheus.yml` as processes; `deploy/README.md` has the steps.
#
# ## Exercises
#
# 1. **Break a rule's test.** In `deploy/prometheus/alerts.yml`, change `RagRefusalRateHigh`'s
#    threshold from 0.3 to 0.9 and run `promtool test rules deploy/prometheus/alerts_test.yml`.
#    Which test fails, and what does it tell you? (Change it back.)
# 2. **A new alert.** Write a rule for "the gateway's cache hit ratio fell below 10% for 30 minutes"
#    from `gateway_cache_total`, with a firing and a quiet test case in `alerts_test.yml`.
# 3. **No drift.** Send forty on-topic questions instead (e.g. from
#    `data/rag/fastapi-docs-questions.jsonl`) and run `kit drift` again. Which scores stay under
#    their thresholds? Why can MMD² still be non-zero?
# 4. **Drift between windows.** Run `kit drift --reference-window 14d..7d --window 7d` on a log
#    that spans two weeks. When is the log itself a better reference than the question set?
# 5. **A dashboard panel.** Add a panel to `deploy/grafana/dashboards/rag.json` for the p95 of
#    `rag_stage_duration_seconds` by stage, and check its PromQL with the test
#    `tests/integration/test_grafana_dashboards.py`.
# 6. **The whole loop.** With Docker, `make up`, send traffic, and find the same numbers in Grafana
#    (http://127.0.0.1:3000), the alert states in Prometheus (http://127.0.0.1:9090/alerts), and
#    the gateway's half of a question's trace in MLflow (http://127.0.0.1:5000, `kit-traces`).
#    Why is the RAG service's half missing there (`deploy/README.md`), and how would you keep it?
