"""The prompting patterns through the kit's gateway, in this process: the real SmolLM2 for
templates, few-shot and a ReAct run; the fake upstream where a test needs exact replies
(structured output's retry over HTTP, a comparison logged to MLflow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.core import tracking
from kit.core.settings import KitSettings
from kit.llm.embedders import GatewayEmbedder
from kit.llm.gateway_client import GatewayClient
from kit.llm.local_client import LocalClient
from kit.prompting.chat import bind
from kit.prompting.compare import EXPERIMENT, Case, compare_variants
from kit.prompting.fewshot import NearestExamples, few_shot
from kit.prompting.intents import (
    LABELS,
    intent_examples,
    intent_variants,
    match_label,
)
from kit.prompting.react import run_react
from kit.prompting.structured import StructuredOutputError, ask_json
from kit.prompting.templates import load_template
from kit.prompting.tools import calculator
from kit.web.embedded import EmbeddedServer
from tests.integration.gateway_helpers import KEY, gateway_app
from tests.support.fake_openai import FakeUpstream, ok

QUERY = "I ordered my card two weeks ago and it still has not come."


@pytest.fixture
def gateway(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> Iterator[GatewayClient]:
    """The gateway app served in this process: alias "local" is SmolLM2, "solo" the fake."""
    with (
        EmbeddedServer(gateway_app(tmp_path / "gateway", upstream, local_client)) as server,
        GatewayClient(server.url, api_key=KEY) as client,
    ):
        yield client


def test_a_template_and_few_shot_call_to_smollm2_return_text_and_usage(
    gateway: GatewayClient,
) -> None:
    template = load_template("intent-zero-shot")
    chat = bind(gateway, "local", max_tokens=12)
    embedder = GatewayEmbedder(gateway, "all-minilm-l6-v2")  # the gateway's MiniLM
    nearest = NearestExamples(intent_examples(per_label=4), embedder).select(QUERY, k=3)

    zero = chat(template.render(labels=list(LABELS), query=QUERY))
    shots = few_shot(template, nearest, labels=list(LABELS), query=QUERY)
    few = chat(shots)

    assert zero.model == few.model == "smollm2-135m-instruct"
    assert zero.text.strip() and few.text.strip()
    assert 0 < zero.usage.completion_tokens <= 12 and 0 < few.usage.completion_tokens <= 12
    assert few.usage.prompt_tokens > zero.usage.prompt_tokens + 20  # three example pairs
    assert len(shots) == 1 + 2 * 3 + 1 and shots[-2]["content"] == "card_arrival"
    # Shown three similar queries, the 135M model copies the pattern: a bare label.
    assert match_label(few.text, LABELS) == "card_arrival"


def test_structured_output_over_http_retries_invalid_json_with_the_error(
    gateway: GatewayClient, upstream: FakeUpstream
) -> None:
    template = load_template("extract-payment")
    assert template.output_schema is not None
    upstream.script(
        ok("Sure! The amount is 20 euros."),  # no JSON at all
        ok('{"amount": "20", "currency": "eur", "recipient": "Anna"}'),  # wrong types
        ok('```json\n{"amount": 20, "currency": "EUR", "recipient": "Anna"}\n```'),
    )

    result = ask_json(
        bind(gateway, "solo", max_tokens=64),
        template.render(text="Please send 20 euros to Anna."),
        template.output_schema,
        retries=2,
    )

    assert result.value == {"amount": 20, "currency": "EUR", "recipient": "Anna"}
    assert [a.error is None for a in result.attempts] == [False, False, True]
    assert result.attempts[0].error == "the reply holds no JSON object"
    last = upstream.requests[2].body["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert last[4]["content"].startswith('{"amount": "20"')
    assert "amount: '20' is not of type 'number'" in last[5]["content"]
    assert "currency: 'eur' does not match '^[A-Z]{3}$'" in last[5]["content"]


def test_structured_output_gives_up_with_an_error_after_the_retries(
    gateway: GatewayClient, upstream: FakeUpstream
) -> None:
    upstream.script(ok("no"), ok("still no"))

    with pytest.raises(StructuredOutputError, match="2 attempt"):
        ask_json(
            bind(gateway, "solo"),
            [{"role": "user", "content": "JSON please"}],
            {"type": "object", "required": ["a"]},
            retries=1,
        )
    assert upstream.calls() == 2


def test_a_comparison_logs_one_mlflow_run_per_variant(
    gateway: GatewayClient, upstream: FakeUpstream, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    settings = KitSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    cases = [
        Case({"query": "Where is my card?"}, "card_arrival"),
        Case({"query": "My PIN is blocked"}, "pin_blocked"),
    ]
    zero, json_ = (v for v in intent_variants([], None) if v.name in ("zero-shot", "JSON"))
    upstream.script(
        ok("card_arrival"),  # zero-shot: right
        ok("I cannot help with that."),  # zero-shot: unreadable
        ok('{"intent": "card_arrival"}'),  # JSON: right
        ok('{"intent": "card_arrival"}'),  # JSON: valid, wrong label
    )

    results = compare_variants(
        gateway, "solo", [zero, json_], cases, mlflow=tracking.start(settings, EXPERIMENT)
    )

    client = MlflowClient(tracking.tracking_uri(settings))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = {r.data.params["variant"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"zero-shot", "JSON"}
    assert {r.run_id for r in results} == {r.info.run_id for r in runs.values()}
    assert runs["zero-shot"].data.metrics["accuracy"] == 0.5
    assert runs["zero-shot"].data.metrics["valid_rate"] == 0.5
    assert runs["JSON"].data.metrics["accuracy"] == 0.5
    assert runs["JSON"].data.metrics["valid_rate"] == 1.0
    assert runs["JSON"].data.params["template"] == "intent-json-v1"
    assert runs["JSON"].data.params["model"] == "solo"
    assert runs["JSON"].data.params["answered_by"] == "fake-a"
    assert runs["JSON"].data.params["cases"] == "2"
    artifacts = {a.path for a in client.list_artifacts(runs["JSON"].info.run_id)}
    assert {"per_case.json", "first_prompt.json"} <= artifacts


def test_a_react_run_with_smollm2_ends_within_max_steps_with_every_step_answered(
    gateway: GatewayClient,
) -> None:
    trace = run_react(
        bind(gateway, "local", max_tokens=48), "What is 17 * 23?", [calculator()], max_steps=2
    )

    assert 1 <= len(trace.steps) <= 2 and trace.models == {"smollm2-135m-instruct"}
    assert trace.usage.prompt_tokens > 50 and trace.usage.completion_tokens > 0
    if trace.stopped == "max_steps":  # what a 135M model usually does: every step answered
        assert trace.answer is None
        assert all(step.observation for step in trace.steps)
    else:
        assert trace.answer and trace.steps[-1].parsed is not None
