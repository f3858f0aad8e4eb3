"""Locust scenario for the RAG service: concurrent POST /ask with the shipped questions.

    LOCUST_API_KEY=sk-kit-rag-... locust -f tests/load/rag_locustfile.py --headless \
        --host http://127.0.0.1:8001 -u 8 -r 8 --run-time 60s \
        --questions-under fastapi-docs/docs/tutorial/

Closed loop: each user asks its next question as soon as it has its answer, so `-u` is the
number of requests in flight. Questions come from data/rag/fastapi-docs-questions.jsonl, those
whose relevant pages lie in the indexed part of the docs. Run it with `locust`, never import it
(locust imports gevent, which patches the standard library on import).
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, events, task

QUESTIONS = Path(__file__).resolve().parents[2] / "data" / "rag" / "fastapi-docs-questions.jsonl"


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--questions", default=str(QUESTIONS), env_var="LOCUST_QUESTIONS")
    parser.add_argument(
        "--api-key",
        default="",
        env_var="LOCUST_API_KEY",
        is_secret=True,
        help="A RAG key (`kit rag keys create`); the environment keeps it out of ps.",
    )
    parser.add_argument(
        "--questions-under",
        default="fastapi-docs/docs/tutorial/",
        env_var="LOCUST_QUESTIONS_UNDER",
        help="Ask only questions with a relevant page under this doc id prefix (the part of the "
        "docs in the index), so that most questions retrieve, then call the model; empty: all.",
    )


@cache
def questions(path: str, under: str) -> tuple[str, ...]:
    """The questions of a JSONL question set whose relevant pages start with `under`."""
    with Path(path).open() as file:
        rows = [json.loads(line) for line in file if line.strip()]
    chosen = tuple(
        row["question"] for row in rows if any(doc.startswith(under) for doc in row["relevant"])
    )
    if not chosen:
        raise ValueError(f"no question in {path} has a relevant page under {under!r}")
    return chosen


class AskUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.questions = questions(options.questions, options.questions_under)
        self.headers = {"Authorization": f"Bearer {options.api_key}"}

    @task
    def ask(self) -> None:
        question = random.choice(self.questions)  # noqa: S311 - a load mix, not cryptography
        with self.client.post(
            "/ask",
            json={"question": question},
            headers=self.headers,
            name="/ask",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            try:
                answer = response.json()
                ok = isinstance(answer["answer"], str) and isinstance(answer["citations"], list)
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                response.failure(f"not an /ask answer: {response.text[:200]}")
