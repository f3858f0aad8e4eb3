"""The prompting patterns without a model: templates, few-shot selection, answer and JSON
parsing, the retry loop, the ReAct loop and its calculator, and variant scoring, all driven by
the scripted model (src/kit/llm/scripted.py). Real models: tests/integration."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from kit.core.errors import ConfigError
from kit.core.ports import ChatMessage, ChatResult, Usage
from kit.llm.scripted import ScriptedModel, ScriptExhausted
from kit.prompting.chat import bind, cloud_alias
from kit.prompting.compare import Case, Variant, cases_id, compare_variants, results_table
from kit.prompting.cot import NoFinalAnswer, final_answer, split_reasoning
from kit.prompting.fewshot import Example, FixedExamples, NearestExamples, few_shot
from kit.prompting.intents import (
    LABELS,
    intent_cases,
    intent_examples,
    intent_variants,
    label_reader,
    match_label,
)
from kit.prompting.react import StepFormatError, parse_step, run_react
from kit.prompting.structured import (
    InvalidOutput,
    StructuredOutputError,
    ask_json,
    ask_structured_async,
    check_schema,
    extract_json,
    parse_json,
)
from kit.prompting.templates import (
    TemplateError,
    available_templates,
    load_template,
)
from kit.prompting.tools import Tool, UnsafeExpression, calculate, calculator

PAYMENT = load_template("extract-payment").output_schema or {}
VALID_PAYMENT = '{"amount": 20, "currency": "EUR", "recipient": "Anna"}'


# --- Templates ---------------------------------------------------------------------------------


def test_a_template_renders_its_system_message_and_user_turn() -> None:
    template = load_template("intent-zero-shot")

    messages = template.render(labels=["card_arrival", "pin_blocked"], query="Where is my card?")

    assert template.id == "intent-zero-shot-v1" and template.variables == {"labels", "query"}
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"].endswith("card_arrival\npin_blocked")
    assert messages[1]["content"] == "Where is my card?"


def test_values_are_inserted_as_text_never_run_as_template_code() -> None:
    messages = load_template("intent-zero-shot").render(labels=["a"], query="{{ 7 * 7 }} {% if %}")

    assert messages[1]["content"] == "{{ 7 * 7 }} {% if %}"


def test_a_missing_variable_is_an_error_naming_it_and_extras_are_ignored() -> None:
    template = load_template("intent-cot-v1")

    with pytest.raises(TemplateError, match=r"intent-cot-v1 needs the variable\(s\) \['labels'\]"):
        template.render(query="Where is my card?")
    rendered = template.render(labels=["a"], query="q", unused="ignored")
    assert "ignored" not in str(rendered)


def test_every_shipped_template_loads_and_a_name_picks_the_highest_version(
    tmp_path: Path,
) -> None:
    assert {"intent-zero-shot-v1", "intent-cot-v1", "intent-json-v1", "react-v1"} <= set(
        available_templates()
    )
    for template_id in available_templates():
        template = load_template(template_id)
        if template.output_schema is not None:
            check_schema(template.output_schema)  # raises on a broken schema
    text = (Path(__file__).parents[2] / "src/kit/prompting/prompts/react-v1.yaml").read_text()
    (tmp_path / "react-v1.yaml").write_text(text)
    (tmp_path / "react-v2.yaml").write_text(text.replace("version: 1", "version: 2"))
    (tmp_path / "react-v10.yaml").write_text(text.replace("version: 1", "version: 10"))

    assert load_template("react", tmp_path).version == 10  # 10 > 2: numbers, not strings
    assert load_template("react-v2", tmp_path).version == 2


HEAD = "name: x\nversion: 1\n"


@pytest.mark.parametrize(
    ("file_name", "content", "error"),
    [
        ("other-v1.yaml", HEAD + "description: d\nsystem: s\nuser: u\n", "x-v1.yaml"),
        ("x-v1.yaml", HEAD + "system: s\nuser: u\n", "description"),
        ("x-v1.yaml", HEAD + "description: d\nsystem: s\nuser: u\nextra: 1\n", "extra"),
        ("x-v1.yaml", HEAD + "description: d\nsystem: '{% if %}'\nuser: u\n", "syntax"),
        ("x-v1.yaml", HEAD + "description: a: b\n", "not valid YAML"),
    ],
)
def test_a_broken_template_file_fails_at_load_naming_the_problem(
    tmp_path: Path, file_name: str, content: str, error: str
) -> None:
    (tmp_path / file_name).write_text(content)

    with pytest.raises(ConfigError, match=error):
        load_template(Path(file_name).stem, tmp_path)


def test_an_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"intent-zero-shot-v1"):
        load_template("intent-zero-shot-v9")


# --- Few-shot ----------------------------------------------------------------------------------


class WordEmbedder:
    """Bag-of-words vectors over a fixed vocabulary: similar words, similar vectors."""

    name = "words"
    vocabulary = ("card", "arrive", "rate", "exchange", "pin", "stolen")
    dimension = len(vocabulary)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = [[float(word in text.lower()) for word in self.vocabulary] for text in texts]
        vectors = np.asarray(rows, dtype=np.float32) + 1e-3
        normalised: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1)[:, None]
        return normalised


POOL = [
    Example({"query": "my card did not arrive"}, "card_arrival"),
    Example({"query": "what exchange rate do you use"}, "exchange_rate"),
    Example({"query": "my pin is blocked"}, "pin_blocked"),
    Example({"query": "card stolen"}, "lost_or_stolen_card"),
]


def test_nearest_examples_are_the_most_similar_with_the_closest_last() -> None:
    chosen = NearestExamples(POOL, WordEmbedder()).select("When will my card arrive?", k=2)

    assert [e.output for e in chosen] == ["lost_or_stolen_card", "card_arrival"]
    assert FixedExamples(POOL).select("anything", k=2) == POOL[:2]


def test_few_shot_messages_are_example_turns_rendered_like_the_query() -> None:
    template = load_template("intent-zero-shot")

    messages = few_shot(template, POOL[:2], labels=["card_arrival"], query="Where is it?")

    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == "my card did not arrive"
    assert messages[2]["content"] == "card_arrival"
    assert messages[-1]["content"] == "Where is it?"


# --- Chain of thought --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ("They wait for a card.\nAnswer: card_arrival", "card_arrival"),
        ("Thinking...\n**Final answer:** `pin_blocked`.", "pin_blocked"),
        ("Answer: draft\nOn reflection it is the rate.\nanswer: exchange_rate", "exchange_rate"),
    ],
)
def test_the_last_answer_line_is_the_final_answer(reply: str, answer: str) -> None:
    assert final_answer(reply) == answer


def test_a_reply_without_an_answer_line_is_an_error_and_reasoning_is_kept() -> None:
    assert split_reasoning("Step one.\nStep two.\nAnswer: 42") == ("Step one.\nStep two.", "42")
    for reply in ("The customer wants a card.", "Answer:", "The answer is card_arrival"):
        with pytest.raises(NoFinalAnswer, match="Answer: <answer>"):
            final_answer(reply)


# --- Structured output -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        '{"a": 1}',
        'Sure! Here it is:\n```json\n{"a": 1}\n```\nAnything else?',
        'The object {"a": 1} and then {"b": 2}',
    ],
)
def test_the_first_json_object_is_found_in_prose_or_fences(reply: str) -> None:
    assert extract_json(reply) == {"a": 1}


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("no json here", "no JSON object"),
        ('{"amount": 20,', "invalid JSON"),
        ('{"amount": "20", "currency": "eur"}', "amount: '20' is not of type 'number'"),
        ('{"amount": 20, "currency": "eur", "recipient": null}', "currency: 'eur' does not match"),
        ('{"amount": 20, "currency": "EUR"}', "'recipient' is a required property"),
    ],
)
def test_an_invalid_reply_is_an_error_that_says_what_is_wrong(reply: str, error: str) -> None:
    with pytest.raises(InvalidOutput, match=error):
        parse_json(reply, PAYMENT)


def test_an_invalid_reply_is_sent_back_with_its_error_and_the_retry_is_used() -> None:
    model = ScriptedModel(['{"amount": "20", "currency": "EUR", "recipient": null}', VALID_PAYMENT])
    messages: list[ChatMessage] = [{"role": "user", "content": "Send Anna 20 euros"}]

    result = ask_json(model, messages, PAYMENT, retries=2)

    assert result.value == {"amount": 20, "currency": "EUR", "recipient": "Anna"}
    assert [a.error is None for a in result.attempts] == [False, True]
    retry = model.calls[1]
    assert retry[:1] == messages and retry[1]["role"] == "assistant"
    assert retry[1]["content"].startswith('{"amount": "20"')
    assert "not valid (amount: '20' is not of type 'number')" in retry[2]["content"]


def test_no_valid_reply_within_the_retries_raises_with_every_attempt() -> None:
    model = ScriptedModel(["nope", '{"amount": 0}', "still nope", VALID_PAYMENT])

    with pytest.raises(StructuredOutputError, match="3 attempt") as failed:
        ask_json(model, [{"role": "user", "content": "pay"}], PAYMENT, retries=2)

    assert [a.reply for a in failed.value.attempts] == ["nope", '{"amount": 0}', "still nope"]
    assert all(a.error for a in failed.value.attempts)
    assert len(model.calls) == 3  # the valid fourth reply was never asked for


def test_a_broken_schema_fails_before_any_model_call() -> None:
    model = ScriptedModel([VALID_PAYMENT])

    with pytest.raises(ConfigError, match="invalid JSON Schema"):
        ask_json(model, [{"role": "user", "content": "pay"}], {"type": "no-such-type"})
    assert model.calls == []


def test_the_async_driver_shares_the_loop() -> None:
    replies = iter(["not json", VALID_PAYMENT])

    async def chat(messages: list[ChatMessage]) -> str:
        return next(replies)

    result = asyncio.run(
        ask_structured_async(chat, [], lambda reply: parse_json(reply, PAYMENT), retries=1)
    )

    assert result.value["recipient"] == "Anna" and len(result.attempts) == 2


# --- ReAct -------------------------------------------------------------------------------------


def test_a_step_is_parsed_and_cut_at_an_observation_the_model_made_up() -> None:
    reply = (
        "Thought: I need to multiply.\nAction: calculator\nAction Input: 17 * 23\n"
        "Observation: 400\nFinal Answer: 400"
    )

    cut, step = parse_step(reply)

    assert (step.action, step.action_input, step.final_answer) == ("calculator", "17 * 23", None)
    assert "Observation" not in cut and step.thought == "I need to multiply."
    assert parse_step("Thought: done\nFinal Answer: 391")[1].final_answer == "391"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("I think the answer is 4.", 'No "Action:" or "Final Answer:"'),
        ("Thought: x\nAction: calculator", 'needs an "Action Input:"'),
        ("Action: calculator\nAction Input: 1\nFinal Answer: 1", "not both"),
        ("Final Answer:", "is empty"),
    ],
)
def test_a_reply_that_is_not_a_step_is_a_format_error(reply: str, error: str) -> None:
    with pytest.raises(StepFormatError, match=error):
        parse_step(reply)


def test_the_loop_runs_a_tool_feeds_the_observation_and_stops_at_the_final_answer() -> None:
    model = ScriptedModel(
        [
            "Thought: multiply\nAction: calculator\nAction Input: 17 * 23",
            "Thought: I know the answer\nFinal Answer: 391",
        ]
    )

    trace = run_react(model, "What is 17 * 23?", [calculator()], max_steps=5)

    assert (trace.answer, trace.stopped, len(trace.steps)) == ("391", "final_answer", 2)
    assert trace.steps[0].observation == "391"
    assert model.calls[1][-1] == {"role": "user", "content": "Observation: 391"}
    assert "calculator" in model.calls[0][0]["content"]  # the tools are described to the model
    assert trace.usage.completion_tokens > 0 and trace.models == {"scripted"}
    assert "Observation: 391" in str(trace)


def test_unknown_tools_bad_steps_and_tool_errors_become_observations_until_max_steps() -> None:
    def broken(text: str) -> str:
        raise RuntimeError("index unavailable")

    model = ScriptedModel(
        [
            "Thought: search\nAction: web_search\nAction Input: weather",
            "The answer is probably 4",
            "Thought: compute\nAction: calculator\nAction Input: __import__('os')",
            "Thought: search\nAction: docs\nAction Input: cookies",
        ]
    )
    tools = [calculator(), Tool("docs", "searches docs", broken)]

    trace = run_react(model, "Q?", tools, max_steps=4)

    observations = [step.observation or "" for step in trace.steps]
    assert trace.stopped == "max_steps" and trace.answer is None and len(trace.steps) == 4
    assert observations[0] == "Unknown tool 'web_search'. Available tools: calculator, docs."
    assert observations[1].startswith('Invalid step: No "Action:"')
    assert trace.steps[1].parsed is None
    assert observations[2].startswith("Error from calculator:") and "not allowed" in observations[2]
    assert observations[3] == "Error from docs: index unavailable"
    assert len(model.calls) == 4  # max_steps model calls, no more


@pytest.mark.parametrize(
    ("expression", "value"),
    [("2 * (3 + 4) ** 2", 98), ("-7 // 2", -4), ("10 / 4", 2.5), ("`2 ** 10`", 1024)],
)
def test_the_calculator_does_arithmetic(expression: str, value: float) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("__import__('os').system('ls')", "not allowed"),
        ("open('/etc/passwd')", "not allowed"),
        ("(1).__class__", "not allowed"),
        ("x + 1", "not allowed"),
        ("[1, 2]", "not allowed"),
        ("True + True", "not a number"),
        ("'a' * 3", "not allowed"),
        ("1 < 2", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("9 ** 9 ** 9", "exponents above 100"),
        ("2 ^ 3", "write 2 \\*\\* 3"),
        ("2 +", "not an arithmetic expression"),
        ("1" * 201, "longer than 200"),
        ("(10 ** 100) ** 100 * (10 ** 100) ** 100", "too large"),
    ],
)
def test_the_calculator_refuses_anything_but_arithmetic(expression: str, error: str) -> None:
    with pytest.raises(UnsafeExpression, match=error):
        calculate(expression)


# --- Comparing variants ------------------------------------------------------------------------


def test_variants_are_scored_on_accuracy_and_readable_replies() -> None:
    labels = ["card_arrival", "pin_blocked"]
    cases = [Case({"query": "card?"}, "card_arrival"), Case({"query": "pin?"}, "pin_blocked")]
    zero = load_template("intent-zero-shot")
    variants = [
        Variant("plain", zero, label_reader(labels), shared={"labels": labels}),
        Variant(
            "fixed",
            zero,
            label_reader(labels),
            FixedExamples(POOL),
            shots=1,
            shared={"labels": labels},
        ),
    ]
    # plain: right, then unreadable; fixed: right, then the wrong label
    model = ScriptedModel(["card_arrival", "no idea", "Card arrival.", "card_arrival"])

    results = compare_variants(model, "scripted", variants, cases)

    assert [r.metrics["accuracy"] for r in results] == [0.5, 0.5]
    assert [r.metrics["valid_rate"] for r in results] == [0.5, 1.0]
    assert results[0].rows[1]["error"].startswith("the reply names none of the labels")
    assert len(model.calls[2]) == 4  # system, one example pair, the query
    assert results[1].metrics["completion_tokens_mean"] == 1.5  # "Card arrival." = 2 words
    table = results_table(results)
    assert "plain" in table and "fixed" in table and "0.50" in table
    assert cases_id(cases) == cases_id(list(cases)) != cases_id(cases[::-1])


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("card_arrival", "card_arrival"),
        ("  Card Arrival.\n", "card_arrival"),
        ("The intent is `pin_blocked`.", "pin_blocked"),
        ("lost-or-stolen-card", "lost_or_stolen_card"),
    ],
)
def test_a_reply_naming_one_label_is_read_as_that_label(reply: str, label: str) -> None:
    assert match_label(reply, LABELS) == label


@pytest.mark.parametrize(
    ("reply", "error"),
    [("card arival", "names none"), ("card_arrival or pin_blocked", "names several")],
)
def test_a_reply_naming_no_label_or_several_is_not_guessed(reply: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        match_label(reply, LABELS)


def test_the_intent_sample_is_seeded_balanced_and_keeps_test_rows_out_of_examples() -> None:
    cases = intent_cases(per_label=4)
    examples = intent_examples(per_label=6)

    assert len(cases) == 20 and cases == intent_cases(per_label=4)
    assert sorted({c.expected for c in cases}) == sorted(LABELS)
    assert all(sum(c.expected == label for c in cases) == 4 for label in LABELS)
    assert len(examples) == 30
    assert not {c.inputs["query"] for c in cases} & {e.inputs["query"] for e in examples}
    names = [v.name for v in intent_variants(examples, None)]
    assert names == [
        "zero-shot",
        "few-shot fixed k=5",
        "chain of thought",
        "chain of thought, 5 worked",
        "JSON",
        "JSON, 5 worked",
    ]


# --- The chat seam -----------------------------------------------------------------------------


class RecordingClient:
    def __init__(self) -> None:
        self.kwargs: dict[str, object] = {}

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult:
        self.kwargs = {"model": model, "max_tokens": max_tokens, "temperature": temperature}
        return ChatResult("ok", model or "", Usage(1, 1), "stop")


def test_bind_fixes_the_model_and_generation_settings() -> None:
    client = RecordingClient()

    bind(client, "gpt-4o-mini", max_tokens=32)([{"role": "user", "content": "hi"}])

    assert client.kwargs == {"model": "gpt-4o-mini", "max_tokens": 32, "temperature": 0.0}


def test_a_cloud_alias_is_offered_only_when_a_provider_key_is_set() -> None:
    assert cloud_alias({}) is None
    assert cloud_alias({"OPENAI_API_KEY": ""}) is None
    assert cloud_alias({"ANTHROPIC_API_KEY": "sk-ant"}) == "claude-haiku"
    assert cloud_alias({"OPENAI_API_KEY": "sk", "GEMINI_API_KEY": "g"}) == "gpt-4o-mini"


def test_the_scripted_model_refuses_to_invent_a_reply() -> None:
    model = ScriptedModel(["only one"])
    model([{"role": "user", "content": "a"}])

    with pytest.raises(ScriptExhausted, match="call 2"):
        model([{"role": "user", "content": "b"}])
