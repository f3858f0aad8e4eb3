"""The baselines, scored by the same harness as the fine-tunes: frozen-embedding classifiers on
a stratified sample, and a prompt baseline over HTTP (the fake upstream as the model)."""

from __future__ import annotations

import pytest

from kit.finetune.baselines import PromptBaseline, prompt_baseline, run_baselines, to_label
from kit.finetune.config import DataSpec
from kit.finetune.data import load_splits
from kit.llm.gateway_client import GatewayClient
from kit.llm.local_client import LocalClient
from tests.support.fake_openai import FakeUpstream, ok

# Slow tier, run by `make test-all` only: trains and scores the baselines.
pytestmark = pytest.mark.slow


def test_embedding_baselines_learn_the_intents(local_client: LocalClient) -> None:
    splits = load_splits(DataSpec(train_limit=1540, test_limit=385), seed=0)

    results = run_baselines(splits, local_client.embedder, client=None)

    by_name = {r.name: r for r in results}
    assert set(by_name) == {"logreg (frozen MiniLM)", "kNN k=5 (frozen MiniLM)"}
    for result in results:
        assert result.scores.rows == 385 and result.cost_per_1k == 0.0
        assert result.scores.accuracy > 0.6  # chance is 1/77
        assert 0 < result.scores.macro_f1 <= 1 and result.train_seconds > 0


def test_a_prompt_baseline_maps_replies_to_labels_and_prices_its_tokens(
    upstream: FakeUpstream, local_client: LocalClient
) -> None:
    splits = load_splits(DataSpec(train_limit=770, test_limit=77), seed=0)
    vectors = local_client.embedder.embed([r.text for r in splits.train])
    gold = [r.label for r in splits.test]  # one query per label
    # The fake model answers right, then with prose around the label, then nonsense.
    replies = [ok(gold[0]), ok(f"The intent is `{gold[1]}`.")] + [ok("no idea")] * 75
    upstream.script(*replies)
    with GatewayClient(upstream.base_url.removesuffix("/v1")) as client:
        baseline = PromptBaseline(
            client,
            "fake-model",
            splits.labels,
            shots=5,
            train=splits.train,
            train_vectors=vectors,
            embedder=local_client.embedder,
        )
        result = prompt_baseline("fake few-shot", baseline, splits.test, 77, 0, (1e-6, 2e-6))

    assert result.scores.predictions[:2] == gold[:2]
    assert set(result.scores.predictions) <= set(splits.labels)
    assert result.scores.accuracy >= 2 / 77
    first = upstream.requests[0].body["messages"]
    assert first[0]["role"] == "system" and "card_arrival" in first[0]["content"]
    assert len(first) == 1 + 2 * 5 + 1  # system, five example pairs, the query
    assert first[-1]["content"] == splits.test[0].text
    # 12 prompt tokens per call (the fake's count) and 1-3 completion words, per 1,000 queries
    assert result.cost_per_1k == pytest.approx(
        1000 * (12e-6 + baseline.completion_tokens / 77 * 2e-6)
    )


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("card_arrival", "card_arrival"),
        ("  Card Arrival.\n", "card_arrival"),
        ("I think it's lost_or_stolen_card here", "lost_or_stolen_card"),
        ("card arival", "card_arrival"),
    ],
)
def test_replies_are_mapped_onto_a_valid_label(reply: str, label: str) -> None:
    labels = ["card_arrival", "lost_or_stolen_card", "card_linking"]

    assert to_label(reply, labels) == label
