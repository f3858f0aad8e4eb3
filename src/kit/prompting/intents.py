"""The comparisons' task: route a BANKING77 query to one of a few intents, and read the label.

    cases = intent_cases(per_label=4)            # 5 intents x 4 test queries = 20 cases
    pool = intent_examples(per_label=6)          # few-shot examples from the train split
    variants = intent_variants(pool, embedder)   # zero-shot, few-shot, chain of thought, JSON

Five well-separated intents keep prompts short enough for a 135M model on a CPU (all 77 labels
make a ~600-token system message). Samples are seeded, so every run sees the same queries. The
readers accept a reply that names exactly one label and refuse anything else: an unreadable
reply is counted as invalid and wrong, never mapped onto the nearest-sounding label.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kit.core.errors import ConfigError
from kit.core.ports import Embedder
from kit.finetune.data import read_csv
from kit.prompting.compare import Case, Variant
from kit.prompting.cot import final_answer
from kit.prompting.fewshot import Example, FixedExamples, NearestExamples
from kit.prompting.structured import parse_json
from kit.prompting.templates import load_template

BANKING77 = Path(__file__).resolve().parents[3] / "data" / "banking77"  # src/kit/prompting/..
LABELS = ("age_limit", "card_arrival", "exchange_rate", "lost_or_stolen_card", "pin_blocked")
# Worked examples for few-shot chain of thought (train-split queries, reasoning written by hand):
# the model sees the reasoning-then-answer format done, not only described.
COT_EXAMPLES = (
    Example(
        {"query": "Whats the minimum age to have an account"},
        "They ask how old you must be to open an account.\nAnswer: age_limit",
    ),
    Example(
        {"query": "I have been waiting over a week. Is the card still coming?"},
        "They are waiting for a card that has not arrived.\nAnswer: card_arrival",
    ),
    Example(
        {"query": "Do you know the rate of exchange?"},
        "They ask about the exchange rate.\nAnswer: exchange_rate",
    ),
    Example(
        {"query": "I'm panicking!  I lost my card!  Help!"},
        "Their card is lost and must be blocked.\nAnswer: lost_or_stolen_card",
    ),
    Example(
        {"query": "Please help me unblock my pin which I put the wrong one too many times."},
        "Their PIN is blocked after wrong attempts.\nAnswer: pin_blocked",
    ),
)


def _sample(
    split: str, labels: Sequence[str], per_label: int, seed: int, folder: Path
) -> list[tuple[str, str]]:
    rows = read_csv(folder / f"{split}.csv")
    rng = random.Random(seed)  # noqa: S311 -- a reproducible sample, not a secret
    picked: list[tuple[str, str]] = []
    for label in labels:
        texts = [row.text for row in rows if row.label == label]
        if len(texts) < per_label:
            raise ValueError(f"{split}.csv has {len(texts)} rows of {label!r}, not {per_label}")
        picked += [(text, label) for text in rng.sample(texts, per_label)]
    rng.shuffle(picked)  # labels interleaved, so a partial run still sees every label
    return picked


def intent_cases(
    labels: Sequence[str] = LABELS, *, per_label: int = 4, seed: int = 0, folder: Path = BANKING77
) -> list[Case]:
    """`per_label` test-split queries of each label, as comparison cases."""
    rows = _sample("test", labels, per_label, seed, folder)
    return [Case({"query": text}, label) for text, label in rows]


def intent_examples(
    labels: Sequence[str] = LABELS, *, per_label: int = 6, seed: int = 0, folder: Path = BANKING77
) -> list[Example]:
    """`per_label` train-split queries of each label, as few-shot examples (never test rows)."""
    return [
        Example({"query": text}, label)
        for text, label in _sample("train", labels, per_label, seed, folder)
    ]


def match_label(reply: str, labels: Sequence[str]) -> str:
    """The one label a reply names ("Card arrival." -> "card_arrival"); ValueError otherwise."""
    text = re.sub(r"[\s-]+", "_", reply.strip().strip("`'\".*").lower())
    if text in labels:
        return text
    named = [label for label in labels if label in text]
    # Keep the most specific: a label inside another named label is not named on its own.
    named = [label for label in named if not any(label != o and label in o for o in named)]
    if len(named) == 1:
        return named[0]
    if not named:
        raise ValueError(f"the reply names none of the labels: {reply[:80]!r}")
    raise ValueError(f"the reply names several labels: {named}")


def label_reader(labels: Sequence[str]) -> Callable[[str], str]:
    return lambda reply: match_label(reply, labels)


def cot_label_reader(labels: Sequence[str]) -> Callable[[str], str]:
    """The label on the reply's final "Answer:" line."""
    return lambda reply: match_label(final_answer(reply), labels)


def json_label_reader(
    labels: Sequence[str], schema: Mapping[str, Any], key: str = "intent"
) -> Callable[[str], str]:
    """The label in the reply's JSON object, which must match `schema`."""
    return lambda reply: match_label(str(parse_json(reply, schema)[key]), labels)


def intent_variants(
    examples: Sequence[Example],
    embedder: Embedder | None,
    labels: Sequence[str] = LABELS,
    *,
    shots: int = 3,
    cot_examples: Sequence[Example] = COT_EXAMPLES,
) -> list[Variant]:
    """Variants of one task, each changing one thing from the one before it:

    zero-shot                 the label list and the query
    few-shot fixed            + one example per label, the same for every query
    few-shot nearest          + the `shots` examples most like the query (needs an embedder)
    chain of thought          reason first, then "Answer: <label>"
    chain of thought, worked  + worked examples of that format (`cot_examples`)
    JSON                      {"intent": "<label>"}, checked against the template's schema
    JSON, worked              + one JSON reply per label as examples
    """
    zero, cot = load_template("intent-zero-shot"), load_template("intent-cot")
    as_json = load_template("intent-json")
    if as_json.output_schema is None:
        raise ConfigError(f"{as_json.id} declares no schema; structured output needs one")
    shared = {"labels": list(labels)}
    plain, reasoned = label_reader(labels), cot_label_reader(labels)
    structured = json_label_reader(labels, as_json.output_schema)
    one_per_label: dict[str, Example] = {}  # no label shown more often than another
    for example in examples:
        one_per_label.setdefault(example.output, example)
    fixed = list(one_per_label.values())
    json_shots = [Example(e.inputs, json.dumps({"intent": e.output})) for e in fixed]
    n, worked = len(fixed), len(cot_examples)
    variants = [
        Variant("zero-shot", zero, plain, shared=shared, max_tokens=12),
        Variant(f"few-shot fixed k={n}", zero, plain, FixedExamples(fixed), n, 12, shared),
    ]
    if embedder is not None:
        nearest = NearestExamples(examples, embedder)
        variants.append(
            Variant(f"few-shot nearest k={shots}", zero, plain, nearest, shots, 12, shared)
        )
    return [
        *variants,
        Variant("chain of thought", cot, reasoned, shared=shared, max_tokens=40),
        Variant(
            f"chain of thought, {worked} worked",
            cot,
            reasoned,
            FixedExamples(cot_examples),
            worked,
            32,
            shared,
        ),
        Variant("JSON", as_json, structured, shared=shared, max_tokens=24),
        Variant(f"JSON, {n} worked", as_json, structured, FixedExamples(json_shots), n, 24, shared),
    ]
