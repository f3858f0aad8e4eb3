"""Locust scenario for the gateway: OpenAI-style traffic at a steady total rate (`make load`).

    LOCUST_API_KEY=sk-kit-... locust -f tests/load/gateway_locustfile.py --headless \
        --host http://127.0.0.1:8000 -u 10 -r 10 --run-time 60s --rate 50

The mix: mostly unique chat prompts (the cache cannot answer them), some repeated temperature-0
prompts (the cache answers them after the first), a few streamed answers and some embeddings;
each response is checked for the shape a client relies on. Run it with `locust`, never import
it: locust imports gevent, which patches the standard library (sockets, threads) on import.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from locust import FastHttpUser, constant_throughput, events, task
from locust.contrib.fasthttp import ResponseContextManager

# A small pool, so that every prompt repeats within seconds and the cache holds only these.
REPEATED = [
    f"In one sentence, what is {topic}?"
    for topic in (
        "an API gateway",
        "a rate limit",
        "a response cache",
        "a fallback model",
        "an embedding",
        "retrieval-augmented generation",
        "a token budget",
        "a p99 latency",
    )
]


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--rate",
        type=float,
        default=50.0,
        env_var="LOCUST_RATE",
        help="Requests per second, all users together (each user takes an equal share).",
    )
    parser.add_argument(
        "--api-key",
        default="",
        env_var="LOCUST_API_KEY",
        is_secret=True,
        help="A gateway API key (`kit gateway keys create`); the environment keeps it out of ps.",
    )
    parser.add_argument("--model", default="bench", env_var="LOCUST_MODEL")
    parser.add_argument("--embedding-model", default="bench-embed", env_var="LOCUST_EMBED_MODEL")


class GatewayUser(FastHttpUser):
    # Task weights out of 20: 70% unique chat, 20% repeated (cacheable), 5% streamed, 5% embeddings.

    def wait_time(self) -> float:
        options = self.environment.parsed_options
        # constant_throughput paces one user: its share of the total rate. It subtracts the time
        # the request took, so the rate holds while latency stays under users / rate seconds.
        pace = constant_throughput(options.rate / options.num_users)
        return pace(self)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.model, self.embedding_model = options.model, options.embedding_model
        self.headers = {"Authorization": f"Bearer {options.api_key}"}

    @task(14)
    def chat_unique(self) -> None:
        # No temperature: a nondeterministic request, which the gateway never caches by default.
        prompt = f"Request {uuid.uuid4().hex}: name one primary colour."
        self._chat("chat (unique)", {"messages": [{"role": "user", "content": prompt}]})

    @task(4)
    def chat_repeated(self) -> None:
        prompt = random.choice(REPEATED)  # noqa: S311 - a load mix, not cryptography
        body = {"messages": [{"role": "user", "content": prompt}], "temperature": 0}
        self._chat("chat (repeated, temperature 0)", body)

    @task(1)
    def chat_streamed(self) -> None:
        body = {"messages": [{"role": "user", "content": "Count to five."}], "stream": True}
        with self._post("/v1/chat/completions", "chat (streamed)", body) as response:
            # The timing covers the whole stream: FastHttpUser reads the body before returning.
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
            elif not (response.text or "").rstrip().endswith("data: [DONE]"):
                response.failure("the stream did not end with data: [DONE]")

    @task(1)
    def embeddings(self) -> None:
        body = {"model": self.embedding_model, "input": [f"Document {uuid.uuid4().hex}"]}
        with self._post("/v1/embeddings", "embeddings", body) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            try:
                vector = response.json()["data"][0]["embedding"]
            except (ValueError, KeyError, IndexError, TypeError):
                response.failure(f"not an embeddings response: {response.text[:200]}")
                return
            if not vector:
                response.failure("an empty embedding")

    def _chat(self, name: str, body: dict[str, Any]) -> None:
        body = {"model": self.model, "max_tokens": 16, **body}
        with self._post("/v1/chat/completions", name, body) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            try:
                content = response.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                response.failure(f"not a chat completion: {response.text[:200]}")
                return
            if not content:
                response.failure("an empty answer")

    def _post(self, path: str, name: str, body: dict[str, Any]) -> ResponseContextManager:
        return self.client.post(
            path, json=body, headers=self.headers, name=name, catch_response=True
        )
