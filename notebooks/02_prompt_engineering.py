# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Prompt engineering: templates, examples, reasoning, structure, tools, measurement
#
# A prompt is code: it has versions, inputs, an output format, failure modes and a test set. In
# this notebook you will:
#
# 1. render a **versioned template** (system message + user turn with named variables);
# 2. add **few-shot** examples, fixed or chosen by embedding similarity;
# 3. ask for **chain-of-thought** reasoning and parse the final answer line;
# 4. get **structured output**: JSON validated against a JSON Schema, retried with the error;
# 5. run a **ReAct** loop: the model picks a tool, the loop runs it and reports back;
# 6. **compare prompt variants** on a labelled test set, each variant an MLflow run.
#
# | what | where |
# |---|---|
# | the chat callable every pattern uses; which cloud alias a key enables | `src/kit/prompting/chat.py` |
# | versioned templates and the prompt files | `src/kit/prompting/templates.py`, `src/kit/prompting/prompts/` |
# | few-shot messages, nearest examples | `src/kit/prompting/fewshot.py` |
# | the final-answer parser | `src/kit/prompting/cot.py` |
# | JSON + schema + retry (also used by the LLM judge) | `src/kit/prompting/structured.py`, `src/kit/evaluate/judge.py` |
# | the ReAct loop, the calculator and docs-search tools | `src/kit/prompting/react.py`, `src/kit/prompting/tools.py` |
# | the test set and the variants; scoring and MLflow | `src/kit/prompting/intents.py`, `src/kit/prompting/compare.py` |
# | the scripted model (a test double) | `src/kit/llm/scripted.py` |
#
# **An honest note.** The local model, SmolLM2-135M-Instruct, follows a short template and copies
# few-shot examples well. It mostly fails at writing JSON and at ReAct's multi-line format, and
# you will see its numbers. Where it cannot show a pattern, the notebook shows the loop's mechanics
# with a **scripted model** (replies written by hand, labelled as such every time) and runs the real
# thing on a cloud model when a provider key (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, ...) is set.
#
# About two minutes on a laptop CPU, most of it in section 6.

# %% [markdown]
# ## Setup
#
# Work from the repository root, keep state (the MLflow store) in a folder of its own, and start
# the gateway client. `GATEWAY_URL` is not set, so the gateway runs inside this process with the
# local models; every call below goes through its OpenAI-compatible API, as in notebook 01.

# %%
from pathlib import Path

from kit.notebook import start_notebook

print(start_notebook("02"))

# %%
from kit.core.settings import KitSettings, load_settings
from kit.llm.embedders import GatewayEmbedder
from kit.prompting.chat import bind, cloud_alias
from kit.runtime import connect_gateway

settings = load_settings(KitSettings)
client = connect_gateway(settings)  # GATEWAY_URL, or the gateway in this process
embedder = GatewayEmbedder(client, "all-minilm-l6-v2")  # the gateway's MiniLM, for few-shot
CLOUD = cloud_alias()  # "gpt-4o-mini" when OPENAI_API_KEY is set, ...; None offline
print("cloud model:", CLOUD or "none (no provider key set): cloud cells will say they skip")

# %% [markdown]
# ## 1. Templates and system messages
#
# A template is a YAML file with a **system message** (the standing instructions) and a **user**
# template (this request). Variables are Jinja2 (`{{ query }}`, a loop over `labels`). The file
# name carries the version: a new wording is `-v2`, so numbers logged under `-v1` stay meaningful.
# The task throughout: route a banking customer's message to one of five BANKING77 intents.

# %%
from kit.prompting.intents import LABELS
from kit.prompting.templates import TemplateError, available_templates, load_template

print(available_templates())
zero_shot = load_template("intent-zero-shot")  # the highest version
QUERY = "I ordered my card two weeks ago and it still has not come."
messages = zero_shot.render(labels=list(LABELS), query=QUERY)
print(zero_shot.id, "reads", sorted(zero_shot.variables))
for message in messages:
    print(f"--- {message['role']}\n{message['content']}")

# %% [markdown]
# `bind` fixes the model alias and the generation settings, and returns the **chat callable** every
# pattern takes. A label is a few tokens, so `max_tokens=12` keeps the model from rambling (and
# keeps this notebook fast).

# %%
local = bind(client, "local", max_tokens=12)
result = local(messages)
print(repr(result.text))
print("answered by", result.model, "| tokens in", result.usage.prompt_tokens, "out", result.usage.completion_tokens)

# %% [markdown]
# A variable the template needs but the caller forgot is an error that names it, never an empty
# hole in the prompt that the model then guesses around:

# %%
try:
    zero_shot.render(query=QUERY)
except TemplateError as error:
    print(error)

# %% [markdown]
# ## 2. Few-shot: show, don't only tell
#
# Examples go in as earlier turns of the conversation (user: a query, assistant: its label), each
# rendered with the same user template as the real query. Which examples? **Fixed** ones (one per
# label) or the **nearest** ones: embed the example pool once with MiniLM and pick the k most
# similar to the query. The pool comes from BANKING77's train split; the test cases in section 6
# come from its test split.

# %%
from kit.prompting.fewshot import NearestExamples, few_shot
from kit.prompting.intents import intent_examples

pool = intent_examples(per_label=6)  # 30 labelled train queries
nearest = NearestExamples(pool, embedder)
chosen = nearest.select(QUERY, k=3)
for example in chosen:
    print(f"{example.output:22} <- {example.inputs['query']}")
result = local(few_shot(zero_shot, chosen, labels=list(LABELS), query=QUERY))
print("\nreply:", repr(result.text), "| tokens in", result.usage.prompt_tokens)

# %% [markdown]
# ## 3. Chain of thought
#
# Asking for reasoning before the answer helps capable models on multi-step problems: the answer
# is conditioned on the reasoning they just wrote. The prompt asks for one sentence, then a line
# `Answer: <label>`; `cot.final_answer` reads the **last** such line and refuses a reply without
# one (never guessing).

# %%
from kit.prompting.cot import NoFinalAnswer, split_reasoning
from kit.prompting.intents import COT_EXAMPLES

cot = load_template("intent-cot")
reasoning_chat = bind(client, "local", max_tokens=40)
for title, prompt in [
    ("instructions only", cot.render(labels=list(LABELS), query=QUERY)),
    ("with 5 worked examples", few_shot(cot, COT_EXAMPLES, labels=list(LABELS), query=QUERY)),
]:
    reply = reasoning_chat(prompt).text
    print(f"--- {title}\n{reply}")
    try:
        print("=> parsed:", split_reasoning(reply))
    except NoFinalAnswer as error:
        print("=> not parsed:", error)

# %% [markdown]
# The 135M model does not follow the written instruction; shown the format done five times, it
# often does, though the label it ends on may not be one of the five: following a format is not
# knowing the answer, which is why every reply goes through a reader that refuses unknown labels.
# Chain of thought by examples is how the technique was first published (Wei et al., 2022).
# Section 6 measures both on 20 queries.
#
# ## 4. Structured output: JSON, a schema, a retry
#
# When code reads the reply, ask for JSON and **check it**: `structured.ask_json` finds the first
# JSON object in the reply (models wrap it in prose or fences), validates it against a JSON Schema
# (`jsonschema`), and if it fails, sends the reply back with the exact error and asks again, up to
# `retries` times. If every try fails it raises `StructuredOutputError` with all the attempts: a
# bad reply is an error, never a silent default. The template carries its schema:

# %%
import json

from kit.prompting.structured import StructuredOutputError, ask_json

payment = load_template("extract-payment")
print(json.dumps(payment.output_schema))
PAYMENTS = [
    "Please send 20 euros to Anna.",
    "Transfer 150 USD to my landlord, Mr Smith.",
    "I want to pay 12.50 GBP to Tom for the tickets.",
    "Pay 45 CHF now.",
]

# %% [markdown]
# The local model, up to three tries each:

# %%
json_chat = bind(client, "local", max_tokens=40)
outcomes = []
for text in PAYMENTS:
    try:
        extracted = ask_json(json_chat, payment.render(text=text), payment.output_schema, retries=2)
        outcomes.append(len(extracted.attempts))
        print(f"valid after {len(extracted.attempts)} attempt(s): {extracted.value}")
    except StructuredOutputError as error:
        outcomes.append(None)
        print(f"failed: {error}")
print(f"\nSmolLM2: {sum(o is not None for o in outcomes)}/{len(PAYMENTS)} valid, attempts {outcomes}")

# %% [markdown]
# **Scripted, not a model.** To see the retry's mechanics, here is a `ScriptedModel`
# (`src/kit/llm/scripted.py`): it replays three replies written by hand, a common failure
# sequence (prose, then JSON with wrong types, then valid JSON). Watch what the "model" is sent on
# its third call: its own wrong reply, then the validation error.

# %%
from kit.llm.scripted import ScriptedModel

scripted = ScriptedModel([
    "Sure! The amount is 20 euros and it goes to Anna.",
    '{"amount": "20", "currency": "eur", "recipient": "Anna"}',
    '{"amount": 20, "currency": "EUR", "recipient": "Anna"}',
])
extracted = ask_json(scripted, payment.render(text=PAYMENTS[0]), payment.output_schema, retries=2)
for number, attempt in enumerate(extracted.attempts, 1):
    print(f"attempt {number}: {attempt.reply!r}\n   error: {attempt.error}")
print("value:", extracted.value)
print("\nthe last two turns of the third request:")
for message in scripted.calls[2][-2:]:
    print(f"  {message['role']}: {message['content']}")

# %% [markdown]
# The real thing, when a cloud key is set:

# %%
if CLOUD:
    cloud_json = bind(client, CLOUD, max_tokens=100)
    for text in PAYMENTS:
        try:
            extracted = ask_json(cloud_json, payment.render(text=text), payment.output_schema)
            print(f"{CLOUD}: valid after {len(extracted.attempts)} attempt(s): {extracted.value}")
        except StructuredOutputError as error:
            print(f"{CLOUD}: failed: {error}")
else:
    print("Skipping the cloud run: no provider key is set (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...).")

# %% [markdown]
# ## 5. A ReAct loop: reason, act, observe
#
# A tool is a name, a description the model reads, and a function. The model writes
# `Thought / Action / Action Input`; the loop parses it, runs the tool and replies with
# `Observation: ...`; this repeats until `Final Answer:` or `max_steps`. Nothing the model writes is
# trusted: an unknown tool, a malformed step or a tool's error becomes an observation that tells
# the model what went wrong. The calculator walks Python's syntax tree and accepts arithmetic
# only, never `eval`:

# %%
from kit.prompting.tools import UnsafeExpression, calculate, calculator, docs_search

print(calculate("17 * 23 + 4"))
try:
    calculate("__import__('os').system('rm -rf /')")
except UnsafeExpression as error:
    print("refused:", error)

# %% [markdown]
# The second tool searches the FastAPI documentation with the kit's hybrid retrieval
# (`src/kit/rag/retrieval.py`). We index eight tutorial pages into an in-memory Qdrant (seconds;
# notebook 03 indexes them all).

# %%
from qdrant_client import QdrantClient

from kit.rag.ingest import IngestOptions, ingest
from kit.rag.qdrant_store import QdrantStore
from kit.rag.retrieval import Retriever

PAGES = ["background-tasks", "body", "cookie-params", "handling-errors", "path-params", "query-params", "request-files", "response-model"]
store = QdrantStore(QdrantClient(":memory:"), "docs")
paths = [Path(f"data/fastapi-docs/docs/tutorial/{page}.md") for page in PAGES]
ingest(paths, store, embedder, IngestOptions(), root=settings.docs_root)  # KIT_DOCS_ROOT
tools = [calculator(), docs_search(Retriever(store, embedder.embed), k=2)]
print(store.count(), "chunks indexed;", "tools:", [tool.name for tool in tools])
print(tools[1].run("run a task after returning a response")[:300])

# %% [markdown]
# The local model, given three steps:

# %%
from kit.prompting.react import run_react

QUESTION = "What is 17 * 23 + 4?"
trace = run_react(bind(client, "local", max_tokens=64), QUESTION, tools, max_steps=3)
print(trace)

# %% [markdown]
# In our runs SmolLM2 does the arithmetic itself, wrongly (17 × 23 + 4 is 395), and never writes
# an `Action:` line, even after the format reminder comes back as its observation. The loop does
# its job (every step answered, stopped at `max_steps`, no crash, no made-up answer accepted); the
# model cannot do its part.
#
# **Scripted, not a model.** The replies below are written by hand to show a complete run; the
# observations are real: the loop runs the real tools, including a mistake the "model" makes
# (an unknown tool), which comes back as an observation it can recover from.

# %%
scripted = ScriptedModel([
    "Thought: I should look this up.\nAction: search\nAction Input: background tasks",
    "Thought: The tool is called docs_search.\nAction: docs_search\nAction Input: run a task after returning a response",
    "Thought: I know the answer\nFinal Answer: Add a BackgroundTasks parameter and call background_tasks.add_task(...).",
])
print(run_react(scripted, "How do I run a task after returning a response in FastAPI?", tools, max_steps=5))

# %% [markdown]
# The real thing, when a cloud key is set:

# %%
if CLOUD:
    for question in (QUESTION, "How do I run a task after returning a response in FastAPI?"):
        print(run_react(bind(client, CLOUD, max_tokens=256), question, tools, max_steps=5), "\n")
else:
    print("Skipping the cloud ReAct run: no provider key is set (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...).")

# %% [markdown]
# ## 6. Compare prompt variants on a test set, in MLflow
#
# One example proves nothing. `compare_variants` runs each variant over the same 20 test queries
# (4 per intent, seeded) and measures **accuracy**, the **valid** rate (replies the reader could
# read: a label, an `Answer:` line, schema-valid JSON), **latency** and **tokens**. Each variant
# is one MLflow run in the `prompt-variants` experiment, with the template id, the model and a
# hash of the cases as params, the per-case table and the first prompt as artifacts.

# %%
from kit.core import tracking
from kit.prompting.compare import EXPERIMENT, compare_variants, results_table
from kit.prompting.intents import intent_cases, intent_variants

cases = intent_cases(per_label=4)
variants = intent_variants(pool, embedder)
mlflow = tracking.start(settings, EXPERIMENT)
results = compare_variants(client, "local", variants, cases, mlflow=mlflow, progress=print)
print()
print(results_table(results))

# %% [markdown]
# Where did the JSON variant go wrong? The per-case rows (also in MLflow as `per_case.json`):

# %%
json_result = next(r for r in results if r.variant == "JSON")
for row in json_result.rows[:5]:
    print(f"{row['expected']:20} valid={row['valid']!s:5} {row['error'][:60]:60} | {row['reply'][:50]!r}")

# %%
runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
runs[["tags.mlflow.runName", "params.template", "params.shots", "metrics.accuracy", "metrics.valid_rate"]]

# %% [markdown]
# The same comparison on a cloud model, when a key is set:

# %%
if CLOUD:
    print(results_table(compare_variants(client, CLOUD, variants, cases, mlflow=mlflow)))
else:
    print("Skipping the cloud comparison: no provider key is set (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...).")

# %%
client.close()

# %% [markdown]
# ## What you saw
#
# - A prompt is a versioned file with named inputs; a missing input is an error, not a blank.
# - Few-shot examples chosen by similarity were the biggest win for the small model; fixed examples
#   mostly taught it the output format.
# - Chain of thought by instruction failed on 135M parameters; worked examples taught the format.
# - Structured output needs a validator, a retry that quotes the error, and a failure count; the
#   small model rarely produced valid JSON, which is what those are for.
# - A ReAct loop is a parser, a tool table and a step limit; the model's mistakes become
#   observations. It needs a capable model to be useful.
# - Prompt changes are measured on a fixed test set, one MLflow run per variant.
#
# ## Exercises
#
# 1. **A template version.** Copy `src/kit/prompting/prompts/intent-zero-shot-v1.yaml` to
#    `-v2.yaml` (set `version: 2`), describe each label in a few words in the system message, and
#    rerun section 6. Did zero-shot accuracy move? Which template id does MLflow record now?
# 2. **How many shots?** Run the nearest-examples variant with `shots=1`, `3` and `5`
#    (`intent_variants(pool, embedder, shots=...)`) and plot accuracy against prompt tokens. Where
#    does adding examples stop paying for its tokens?
# 3. **Stricter JSON.** Change the `intent` property of `intent-json-v1.yaml`'s schema to
#    `enum:` the five labels (in a `-v2` file). What happens to the valid rate, and what does the
#    error sent back to the model now say?
# 4. **A new tool.** Write a `convert_currency` tool in `src/kit/prompting/tools.py` (a fixed
#    rate table is fine), add a unit test beside the calculator's in `tests/unit/test_prompting.py`,
#    and run the scripted model through a question that needs it.
# 5. **Retries are not free.** With a cloud key, run section 4 with `retries=0` and `retries=2`
#    and count valid replies and tokens. Without a key, write the scripted replies that make
#    `retries=1` fail and `retries=2` succeed, as a unit test.
