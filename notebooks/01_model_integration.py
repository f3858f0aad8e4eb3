# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Model integration: one gateway in front of every model
#
# Applications should not talk to model providers directly. They talk to a **gateway**: one
# OpenAI-compatible API that picks the deployment, falls back when a provider fails, caches,
# enforces keys and budgets, and counts everything for monitoring. In this notebook you will:
#
# 1. read the models file, where aliases map to fallback chains of deployments;
# 2. start the gateway and call it with the official **OpenAI SDK** (only `base_url` changes);
# 3. swap providers by configuration, and watch a **fallback** happen when one is down;
# 4. see the response **cache** answer a repeated request;
# 5. read the gateway's **Prometheus metrics**.
#
# Everything runs offline on the model shipped with the kit (SmolLM2-135M-Instruct, on the CPU).
# With `OPENAI_API_KEY` (or `ANTHROPIC_API_KEY`) set, the same cells reach the real provider.
#
# | what | where |
# |---|---|
# | the app factory, routes | `src/kit/gateway/app.py`, `src/kit/gateway/routes/` |
# | models file: aliases, deployments, fallback | `src/kit/gateway/models.yaml`, `src/kit/gateway/config.py` |
# | fallback, retries, cool-down | `src/kit/gateway/router.py` |
# | cache, keys, limits, budgets | `src/kit/gateway/cache.py`, `auth.py`, `limits.py` |
# | metrics | `src/kit/gateway/metrics.py`, `src/kit/web/metrics.py` |
# | the kit's own client, the in-process server | `src/kit/llm/gateway_client.py`, `src/kit/web/embedded.py` |
#
# About a minute on a laptop CPU.

# %% [markdown]
# ## Setup
#
# Every notebook starts the same way, with one call (`src/kit/notebook.py`): work from the
# repository root (so paths read as in the README), keep state in a folder of its own
# (`KIT_DATA_DIR`; a temporary one unless you set it), find the `kit` command next to this kernel's
# Python, and keep the services' log lines quiet (`KIT_LOG_LEVEL`, WARNING unless you set it).

# %%
import os
import time
from pathlib import Path

from kit.core.settings import KitSettings, load_settings
from kit.notebook import start_notebook

print(start_notebook("01"))

# %% [markdown]
# ## 1. The models file: aliases and fallback chains
#
# Clients ask for an **alias** (`gpt-4o-mini`, `local`). The models file maps each alias to an
# ordered chain of **deployments** (one model at one provider). A deployment is switched on only
# when the environment variables it names are set, so one file serves a laptop with no keys and
# production with all of them. `kit gateway models` shows what is on, and why the rest is off:

# %%
# !kit gateway models

# %% [markdown]
# To swap providers you change configuration, not code. This notebook ships a second models file,
# `notebooks/models-fallback.yaml`, with a deployment whose server is down (`dead-upstream`,
# pointing at a port where nothing listens) placed in front of the local model:

# %%
print(Path("notebooks/models-fallback.yaml").read_text())

# %%
# !GATEWAY_MODELS_FILE=notebooks/models-fallback.yaml kit gateway models

# %% [markdown]
# ## 2. Start the gateway and call it with the OpenAI SDK
#
# `start_in_process` runs the real gateway app (the one `kit serve gateway` runs) inside
# this process, on a free port of 127.0.0.1, with a fresh API key, and waits until the local
# models are loaded. It reads its settings from the environment like every other part of the
# kit, so `GATEWAY_MODELS_FILE` selects the models file.
#
# In production you would run `kit serve gateway` (or the container) and create keys with
# `kit gateway keys create --id my-app --rpm 60 --budget 5`; the client code below is the same.

# %%
from kit.gateway.embedded import start_in_process

os.environ["GATEWAY_MODELS_FILE"] = "notebooks/models-fallback.yaml"
started = time.perf_counter()
server, api_key = start_in_process(load_settings(KitSettings))
print(f"gateway at {server.url}, ready in {time.perf_counter() - started:.1f}s")

# %% [markdown]
# Any OpenAI SDK works: only `base_url` and the key change. `with_raw_response` also gives us the
# HTTP headers, where the gateway says which deployment answered (`x-kit-deployment`), whether
# the cache was used (`x-kit-cache`) and how many fallbacks it took (`x-kit-fallbacks`).

# %%
from openai import OpenAI

client = OpenAI(base_url=f"{server.url}/v1", api_key=api_key)
QUESTION = [{"role": "user", "content": "In one sentence, what does an API gateway do?"}]

raw = client.chat.completions.with_raw_response.create(
    model="local", messages=QUESTION, max_tokens=48, temperature=0
)
reply = raw.parse()
print(reply.choices[0].message.content)
print(
    "usage:",
    reply.usage.prompt_tokens,
    "prompt +",
    reply.usage.completion_tokens,
    "completion tokens",
)
for header in ("x-kit-deployment", "x-kit-cache", "x-kit-fallbacks", "server-timing"):
    print(f"{header}: {raw.headers.get(header)}")

# %% [markdown]
# Streaming is the same API with `stream=True`: tokens arrive as server-sent events, so a user
# sees the answer start before it is finished.

# %%
stream = client.chat.completions.create(
    model="local",
    messages=[{"role": "user", "content": "Name three primary colours."}],
    max_tokens=32,
    temperature=0,
    stream=True,
)
for chunk in stream:
    print(chunk.choices[0].delta.content or "", end="", flush=True)
print()

# %% [markdown]
# Embeddings go through the same gateway. Vectors of different models live in different
# spaces, which is why embedding aliases never fall back to another model.

# %%
# encoding_format="float": the SDK asks for base64 by default, which this gateway does not speak.
vectors = client.embeddings.create(
    model="all-minilm-l6-v2", input=["cat", "kitten", "tax return"], encoding_format="float"
)
print(len(vectors.data), "vectors of", len(vectors.data[0].embedding), "dimensions")

# %% [markdown]
# ## 3. Fallback: a provider is down, the request still succeeds
#
# `flaky-cloud` lists `dead-upstream` first. Its connection is refused, the router records why,
# and the local model answers instead. The client sees a normal answer; the headers and the
# metrics tell operators what happened.

# %%
started = time.perf_counter()
raw = client.chat.completions.with_raw_response.create(
    model="flaky-cloud", messages=QUESTION, max_tokens=48, temperature=0
)
print(raw.parse().choices[0].message.content)
print(f"answered in {time.perf_counter() - started:.2f}s")
print("x-kit-deployment:", raw.headers["x-kit-deployment"])
print("x-kit-fallbacks: ", raw.headers["x-kit-fallbacks"])

# %% [markdown]
# The alias `gpt-4o-mini` is the same idea with real providers: OpenAI, then Anthropic, then the
# local model. Without keys only the last is on, so SmolLM2 answers. Set `OPENAI_API_KEY` and
# re-run from the start: the same line is answered by OpenAI, with no change to the code.

# %%
raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", messages=QUESTION, max_tokens=48, temperature=0
)
print(raw.parse().choices[0].message.content)
print("x-kit-deployment:", raw.headers["x-kit-deployment"])
print(
    "cloud key set:   ",
    bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("ANTHROPIC_API_KEY")),
)

# %% [markdown]
# Errors are OpenAI-shaped JSON, so the SDK raises its usual exceptions, with a message that says
# what to do. An alias that is not in the models file:

# %%
import openai

try:
    client.chat.completions.create(model="no-such-model", messages=QUESTION, max_tokens=8)
except openai.APIStatusError as error:
    print(error.status_code, error.body)

# %% [markdown]
# ## 4. Caching: the same deterministic request twice
#
# A request with `temperature=0` has one right answer, so the gateway caches it (in memory, or in
# Redis when `REDIS_URL` is set, shared by replicas). The second call never reaches the model.
# `Cache-Control: no-cache` skips the cache for one request.

# %%
CACHED = [{"role": "user", "content": "Why cache LLM responses? One sentence."}]
for attempt in ("first", "second"):
    started = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(
        model="local", messages=CACHED, max_tokens=48, temperature=0
    )
    ms = 1000 * (time.perf_counter() - started)
    print(f"{attempt:8}: {ms:7.1f} ms  x-kit-cache={raw.headers['x-kit-cache']}")

started = time.perf_counter()
raw = client.chat.completions.with_raw_response.create(
    model="local",
    messages=CACHED,
    max_tokens=48,
    temperature=0,
    extra_headers={"Cache-Control": "no-cache"},
)
ms = 1000 * (time.perf_counter() - started)
print(f"no-cache: {ms:7.1f} ms  x-kit-cache={raw.headers['x-kit-cache']}")

# %% [markdown]
# ## 5. Metrics: what Prometheus scrapes
#
# `GET /metrics` is the Prometheus text format. Every request so far is counted there: by alias,
# by the deployment that answered, by cache result, and each fallback with its reason. Alert rules
# and dashboards (notebook 05) are built on exactly these series.

# %%
import httpx

metrics = httpx.get(f"{server.url}/metrics").text
WANTED = (
    "gateway_requests_total",
    "gateway_fallbacks_total",
    "gateway_cache_total",
    "gateway_tokens_total",
)
print("\n".join(line for line in metrics.splitlines() if line.startswith(WANTED)))

# %% [markdown]
# The kit's own code does not use the OpenAI SDK: it uses `GatewayClient`, which talks to
# `GATEWAY_URL` when set, or starts this same gateway in-process when not. RAG, the fine-tuning
# baselines and the evaluation judges all call models through it.

# %%
from kit.llm.gateway_client import GatewayClient

with GatewayClient(server.url, api_key=api_key) as kit_client:
    result = kit_client.chat(
        [{"role": "user", "content": "Say hello."}], model="local", max_tokens=16
    )
print(repr(result.text), "from", result.model, result.usage)

# %%
server.stop()
del os.environ["GATEWAY_MODELS_FILE"]

# %% [markdown]
# ## What you saw
#
# - One API, many models: the OpenAI SDK talked to a local model through the gateway; a cloud key
#   switches on a provider without a code change.
# - Fallback kept the request alive when a provider was down; `x-kit-deployment` and
#   `gateway_fallbacks_total` made it visible.
# - A repeated deterministic request was served from the cache, in a fraction of the time.
#
# A 135M model writes weak answers: the gateway's behaviour (routing, fallback, caching, limits,
# metrics) is the lesson here, and it is the same in front of any model.
#
# ## Exercises
#
# 1. **A second fallback.** Copy `notebooks/models-fallback.yaml`, add another dead deployment
#    (port 10) in front of `flaky-cloud`'s chain, and start the gateway on your copy. What do
#    `x-kit-fallbacks` and `gateway_fallbacks_total` say now?
# 2. **Cool-down.** Call `flaky-cloud` four times in a row and time each call. After
#    `failures_to_cooldown` failures the router rests `dead-upstream` for `cooldown_s`: which
#    calls get faster, and what `reason` label do the later fallbacks carry?
# 3. **Keys and limits.** In a terminal: `kit gateway keys create --id me --rpm 2`, then
#    `kit serve gateway`, and send three requests in a minute with the printed key. Read the
#    429's body and its `Retry-After` header, then `gateway_rejected_total` on `/metrics`.
# 4. **Temperature and the cache.** Send the cached request with `temperature=0.7`. Is it cached?
#    Find the setting in `src/kit/gateway/settings.py` that changes this, and say why it is off
#    by default.
# 5. **A real provider.** With `OPENAI_API_KEY` set, re-run the notebook. Compare latency,
#    `gateway_tokens_total` and `gateway_cost_usd_total` for `gpt-4o-mini` with the local model.
# 6. **Your own server.** Run any OpenAI-compatible server (Ollama, llama.cpp's server, vLLM),
#    set `OLLAMA_API_BASE` (or `VLLM_API_BASE`) and call the `ollama` alias of the default
#    models file. Which file did you change? (None.)
