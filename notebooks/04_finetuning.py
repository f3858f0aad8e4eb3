# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Fine-tuning: baselines, a tracked run, the registry and its gate
#
# Fine-tuning is worth its cost only if it beats what is cheaper: a classifier on frozen
# embeddings, or a prompt. So the job is not "train a model" but "train, compare on the same test
# rows, and promote only if it wins". The task: route a banking customer's message to one of
# BANKING77's 77 intents. You will:
#
# 1. load a validated **config** and the **data splits** (the test rows are never trained on);
# 2. score **baselines**: logistic regression and kNN on frozen MiniLM, zero- and few-shot
#    prompts to SmolLM2 through the gateway;
# 3. **fine-tune** MiniLM as a classifier, tracked as an **MLflow** run;
# 4. see the **registry**: the version, the `champion` alias, and the **promotion gate** refusing
#    a weaker model;
# 5. use the champion, from Python, the CLI and the gateway.
#
# | what | where |
# |---|---|
# | configs (validated YAML) | `pipelines/finetune/configs/`, `src/kit/finetune/config.py` |
# | data and splits | `data/banking77/`, `src/kit/finetune/data.py` |
# | baselines | `src/kit/finetune/baselines.py` |
# | training | `src/kit/finetune/classifier.py` (MiniLM), `lora.py` (SmolLM2 + LoRA) |
# | one tracked job | `src/kit/finetune/run.py` |
# | registry and gate | `src/kit/finetune/registry.py`, `src/kit/finetune/packaging.py` |
# | serving the champion | `src/kit/gateway/providers/registry.py` (alias `intent-router`) |
#
# This notebook uses the `quick` config (10 queries per intent, 40 steps) so it runs in about
# three minutes on a laptop CPU: its accuracy says little. `kit finetune` with `default.yaml`
# trains on everything (about 10 minutes, 0.94 accuracy; see `docs/benchmarks.md`).

# %% [markdown]
# ## Setup

# %%
from pathlib import Path

from kit.core.settings import KitSettings, load_settings
from kit.notebook import start_notebook

print(start_notebook("04"))

# %% [markdown]
# ## 1. The config and the data
#
# A config is checked-in YAML validated by pydantic: a misspelt key fails at load, before any
# model loads, with the key's path in the message.

# %%
from kit.finetune.config import load_config
from kit.finetune.data import load_splits

CONFIG = Path("pipelines/finetune/configs/quick.yaml")
config = load_config(CONFIG)
settings = load_settings(KitSettings)
print(CONFIG.read_text())

# %% [markdown]
# Train and validation are split from the train file (stratified, seeded); the test file is only
# ever scored. `test_id` is a hash of the exact test rows: models are compared only on the same ones.

# %%
splits = load_splits(config.data, config.seed)
print(
    f"{len(splits.train)} train, {len(splits.validation)} validation, "
    f"{len(splits.test)} test rows; "
    f"{len(splits.labels)} intents; test_id {splits.test_id}"
)
for example in splits.test[:5]:
    print(f"  {example.label:32} {example.text}")

# %% [markdown]
# ## 2. Baselines
#
# **Frozen embeddings**: embed each training query with MiniLM once, fit logistic regression
# (or look up the 5 nearest neighbours). Seconds to train, milliseconds to predict.

# %%
from kit.finetune.baselines import embedding_baselines
from kit.llm.local_models import load_embedder

embedder = load_embedder(settings)
baselines, train_vectors = embedding_baselines(splits, embedder, splits.test)
for baseline in baselines:
    s = baseline.scores
    print(
        f"{baseline.name:26} accuracy {s.accuracy:.3f}  macro-F1 {s.macro_f1:.3f}  "
        f"{s.latency_ms:.1f} ms/query  trained in {baseline.train_seconds:.1f}s"
    )

# %% [markdown]
# **Prompts**: give a chat model the 77 labels and the query (zero-shot), or also the 5 most
# similar training queries with their labels (few-shot). One generation per query, so on a CPU
# we score a handful of rows only: a glimpse, not a measurement (`kit eval intents` runs 200).
# The model is reached through the gateway, so with `OPENAI_API_KEY` set the `gpt-4o-mini` row is
# a real cloud model; without it that alias falls back to the local one (see `answered by`).

# %%
from kit.finetune.baselines import BaselineResult, PromptBaseline
from kit.finetune.evaluate import score
from kit.runtime import connect_gateway

gateway = connect_gateway(settings)  # GATEWAY_URL, or the gateway in this process
few_rows = splits.test[:12]
prompted = []
for name, model, shots in [
    ("zero-shot", "local", 0),
    ("few-shot", "local", 5),
    ("few-shot", "gpt-4o-mini", 5),
]:
    baseline = PromptBaseline(
        gateway,
        model,
        splits.labels,
        shots=shots,
        train=splits.train,
        train_vectors=train_vectors,
        embedder=embedder,
    )
    scores = score(baseline, few_rows)
    note = f"{len(few_rows)} rows; answered by {', '.join(sorted(baseline.answered_by))}"
    prompted.append(BaselineResult(f"{model} {name}", scores, 0.0, 0.0, note))
    print(
        f"{model + ' ' + name:26} accuracy {scores.accuracy:.3f}  "
        f"{scores.latency_ms:6.0f} ms/query  ({note})"
    )

# %% [markdown]
# Each baseline becomes an MLflow run in the same experiment as the fine-tunes, with the same
# metric names, so the MLflow UI compares them side by side.

# %%
from kit.core import tracking
from kit.finetune.baselines import log_baselines
from kit.finetune.run import EXPERIMENT

log_baselines(tracking.start(settings, EXPERIMENT), baselines + prompted, splits)
print("logged", len(baselines + prompted), "baseline runs to experiment", EXPERIMENT)

# %% [markdown]
# ## 3. Fine-tune, as one tracked run
#
# `run_finetune` is what `kit finetune --config pipelines/finetune/configs/quick.yaml` runs:
# train MiniLM with a classification head, score the untouched test split with the same harness
# as the baselines, log everything to MLflow (config, dataset version, git commit, loss per step,
# metrics, the model, a confusion matrix, sample predictions), register the model and apply the
# gate. A crash leaves a FAILED run with the error, never a silently missing one.

# %%
from kit.finetune.run import run_finetune

first = run_finetune(config, settings, config_path=CONFIG, progress=print)
print(
    f"\ntest accuracy {first.test.accuracy:.3f} (macro-F1 {first.test.macro_f1:.3f}), "
    f"{first.test.latency_ms:.2f} ms/query, trained in {first.train_seconds:.0f}s"
)
print(f"registered v{first.decision.version} as {first.decision.alias}: {first.decision.reason}")

# %% [markdown]
# ## 4. The registry and the promotion gate
#
# The first model became `champion` because there was none. Serving follows that alias
# (`models:/intent-router@champion`), so **promotion is deployment** and moving the alias back
# is a rollback. A new version must beat the champion on the same test rows by
# `registry.promote_margin`, or it only becomes `challenger`.
#
# To see the gate say no, train a deliberately weaker model: the same config stopped after 10
# steps instead of 40 (a config change, not a code change).

# %%
weaker = config.model_copy(
    update={"name": "quick-10-steps", "train": config.train.model_copy(update={"max_steps": 10})}
)
second = run_finetune(weaker, settings, progress=print)
print(
    f"\nregistered v{second.decision.version} as {second.decision.alias}: {second.decision.reason}"
)

# %% [markdown]
# What the registry now holds, and why: each version carries its test accuracy, the `test_id` it
# was scored on, and the gate's reason as tags.

# %%
from mlflow import MlflowClient

registry = MlflowClient(tracking.tracking_uri(settings))
print("aliases:", registry.get_registered_model("intent-router").aliases)
for version in sorted(
    registry.search_model_versions("name='intent-router'"), key=lambda v: int(v.version)
):
    print(
        f"v{version.version} test accuracy {version.tags['test_accuracy']},",
        f"gate: {version.tags['gate']}",
    )

# %% [markdown]
# And the runs of the experiment, baselines and fine-tunes together, best first. This is the table
# the MLflow UI shows; open it on this notebook's store with the command printed below (in a
# terminal; it serves http://127.0.0.1:5000 until you stop it).

# %%
mlflow = tracking.start(settings, EXPERIMENT)
runs = mlflow.search_runs(experiment_names=[EXPERIMENT], order_by=["metrics.test_accuracy DESC"])
print(f"open the UI with:  KIT_DATA_DIR={settings.data_dir} kit mlflow ui")
runs[
    [
        "tags.mlflow.runName",
        "status",
        "metrics.test_accuracy",
        "metrics.test_macro_f1",
        "metrics.test_latency_ms_per_query",
    ]
]

# %% [markdown]
# ## 5. Use the champion
#
# The same model answers three ways: in Python, with `kit predict`, and through the gateway's
# `intent-router` alias (which follows the champion alias; no redeploy on promotion).
#
# All three load it with `kit.finetune.trusted`, not `mlflow.pyfunc.load_model`: MLflow's
# loader runs code stored with the model, so whoever can write to the registry could run code
# wherever a model is loaded. The kit's loader checks the version is packaged as `kit finetune`
# packages it, that its files match the digest the run recorded, and builds the model from
# safetensors with the kit's own classes; it refuses anything else, saying why.

# %%
from kit.finetune.trusted import load_uri

QUERIES = ["I still have not received my new card", "Why was I charged twice for the same thing?"]
version, champion = load_uri("models:/intent-router@champion", tracking.tracking_uri(settings))
print(f"champion is version {version}:", list(zip(QUERIES, champion.predict(QUERIES))))

# %%
# !kit predict "I still have not received my new card" "How do I top up by bank transfer?"

# %%
answer = gateway.chat([{"role": "user", "content": QUERIES[0]}], model="intent-router")
print(repr(answer.text), "from", answer.model)
gateway.close()

# %% [markdown]
# ## What you saw
#
# - The fine-tune and every baseline were scored by one harness on the same test rows, and each
#   is an MLflow run you can compare.
# - Frozen embeddings + logistic regression is a strong, cheap baseline; a prompt to a 135M model
#   is a weak one. With the full data (`default.yaml`) the fine-tune beats them all (0.94 vs
#   0.93 for logistic regression; `docs/benchmarks.md`), at the cost of ten minutes of CPU.
# - The registry's `champion` alias is the deployment; the gate refused a weaker model.
#
# ## Exercises
#
# 1. **A typo in a config.** Copy `quick.yaml`, misspell `learning_rate`, and run
#    `kit finetune --config` on your copy. Where does it fail, and what does the message say?
# 2. **Beat the champion.** Write a config that should beat the quick model (more steps, more
#    data with `train_limit`), run it, and check that the gate promotes it. Then roll back:
#    `MlflowClient().set_registered_model_alias("intent-router", "champion", "1")`, and ask the
#    gateway's `intent-router` alias again.
# 3. **The margin.** Set `registry.promote_margin: 0.05` and re-run a config that wins by less.
#    Why would a team want a margin above zero?
# 4. **Where it fails.** Open the fine-tuned run in `kit mlflow ui`: read
#    `evaluation/per_class_report.json` and the confusion matrix. Which intents are confused with
#    each other, and would more data or a better label set fix it?
# 5. **A cloud baseline.** With `OPENAI_API_KEY` set, run
#    `kit eval intents --cloud-model gpt-4o-mini --prompt-sample 200`. Compare accuracy, latency
#    and cost per 1,000 queries with the fine-tune: which would you ship, and why?
# 6. **LoRA.** Read `pipelines/finetune/configs/lora-quick.yaml` and run it. What changes when
#    the model writes the label instead of classifying it (accuracy, latency, size)?
