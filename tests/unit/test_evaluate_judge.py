"""The LLM judge's reply parsing and its prompt file; the HTTP round trip is an integration test."""

from __future__ import annotations

import pytest

from kit.core.errors import ConfigError
from kit.evaluate.judge import load_judge_prompt, parse_judgement
from kit.llm.embedders import gateway_model


def test_a_judgement_is_read_from_prose_or_fences() -> None:
    reply = (
        'Here you go:\n```json\n{"verdicts": [{"sentence": "A", "supported": true},'
        ' {"sentence": "B", "supported": false}, {"sentence": "C", "supported": true}]}\n```'
    )

    judgement = parse_judgement(reply)

    assert [v.supported for v in judgement.verdicts] == [True, False, True]
    assert judgement.faithfulness == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("supported", "no JSON object"),
        ('{"verdicts": [}', "Expecting"),
        ('{"verdicts": []}', "verdicts"),
        ('{"verdicts": [{"sentence": "A", "supported": "maybe"}]}', "supported"),
    ],
)
def test_an_invalid_judgement_is_an_error_not_a_score(reply: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_judgement(reply)


def test_the_judge_prompt_is_a_versioned_file_that_fills_every_field() -> None:
    prompt = load_judge_prompt()

    filled = prompt.user.format(sources="SRC-1", question="QUESTION-2", answer="ANSWER-3")

    assert prompt.name == "faithfulness-v1"
    assert all(value in filled for value in ("SRC-1", "QUESTION-2", "ANSWER-3"))
    assert "{" not in filled and '"verdicts"' in prompt.system  # the JSON shape is shown
    with pytest.raises(ValueError, match="faithfulness-v1"):
        load_judge_prompt("faithfulness-v0")


def test_the_embedder_setting_names_a_local_or_a_gateway_model() -> None:
    assert gateway_model("local") is None
    assert gateway_model("gateway:text-embedding-3-small") == "text-embedding-3-small"
    with pytest.raises(ConfigError, match="gateway:ALIAS"):
        gateway_model("openai")
