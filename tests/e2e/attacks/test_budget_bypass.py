"""Finding 5: a key must not spend past its budget or its token cap, whatever it sends.

The attacks, each against `kit serve gateway` processes on 127.0.0.1:
- a burst: 50 requests at once against a budget that pays for 10. Checking "spent < budget"
  before each call lets all 50 through, since none has been charged yet. Also with two replicas
  sharing Redis, 25 requests each.
- a stream cut short: read the answer, hang up before the last chunk (the one with `usage`), and
  be charged nothing.
- two token fields: `max_tokens: 1` passes the cap while `max_completion_tokens: 1000000` is
  what the provider honours.
- many slow requests at once from one key, taking the gateway's capacity from everyone else.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.attacks.gateway import Gateway, serve_gateway
from tests.support.fake_openai import FakeUpstream, ok, running_fake_upstream, slow_stream
from tests.support.servers import redis_server

# $100 per million tokens each way: $0.0001 a token. A request for "q" (1 token, as estimated)
# with max_tokens=9 holds at most 10 tokens, $0.001; the fake upstream charges exactly that.
PRICE = {"input_per_mtok": 100.0, "output_per_mtok": 100.0}
PER_REQUEST = 0.001
BUDGET_FOR_TEN = "0.0105"  # ten holds fit ($0.010), an eleventh does not ($0.011)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_fake_upstream() as running:
        # Slow enough that every request of a burst is in flight before the first is answered.
        running.default = ok("a b c d e f g h i", delay=1.0, prompt_tokens=1, completion_tokens=9)
        yield running


def models(upstream: FakeUpstream) -> dict[str, Any]:
    deployment = {"provider": "openai", "model": "paid", "api_base": upstream.base_url}
    return {
        "default_model": "paid",
        "routing": {"retries": {"server_error": 0, "timeout": 0, "connection": 0}},
        "deployments": {"paid": deployment | {"price": PRICE, "timeout_s": 10}},
        "models": {"paid": ["paid"]},
    }


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "paid",
        "messages": [{"role": "user", "content": "q"}],
        "max_tokens": 9,
    } | extra


async def burst(gateways: list[Gateway], key_id: str, count: int) -> list[httpx.Response]:
    """`count` requests at once, spread over `gateways` in turn."""
    async with httpx.AsyncClient(timeout=60) as client:
        calls = [
            client.post(
                f"{gateways[i % len(gateways)].url}/v1/chat/completions",
                json=body(),
                headers={"authorization": f"Bearer {gateways[0].keys[key_id]}"},
            )
            for i in range(count)
        ]
        return list(await asyncio.gather(*calls))


def spent(gateways: list[Gateway]) -> float:
    """What the replicas charged, summed from their /metrics."""
    total = 0.0
    for gateway in gateways:
        text = httpx.get(f"{gateway.url}/metrics", timeout=5).text
        total += sum(
            float(v) for v in re.findall(r"^gateway_cost_usd_total\{.*\} (\S+)$", text, re.M)
        )
    return total


def metric(gateway: Gateway, pattern: str) -> float:
    found = re.search(pattern + r" (\S+)$", httpx.get(f"{gateway.url}/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_burst_of_50_against_a_budget_for_10_buys_10(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    keys = {"burst": ["--budget", BUDGET_FOR_TEN]}
    with serve_gateway(tmp_path, models(upstream), keys) as gateway:
        responses = asyncio.run(burst([gateway], "burst", 50))
        charged = spent([gateway])

    codes = [r.status_code for r in responses]
    assert codes.count(200) == 10 and codes.count(429) == 40, codes
    refused = [r.json()["error"] for r in responses if r.status_code == 429]
    assert {e["code"] for e in refused} == {"budget_exceeded"}
    assert upstream.calls() == 10
    assert charged == pytest.approx(10 * PER_REQUEST)


def test_two_replicas_sharing_redis_hold_one_budget(tmp_path: Path, upstream: FakeUpstream) -> None:
    with redis_server(tmp_path) as redis_url:
        env = {"REDIS_URL": redis_url}
        keys = {"burst": ["--budget", BUDGET_FOR_TEN]}
        with serve_gateway(tmp_path / "a", models(upstream), keys, env=env) as first:
            keys_file = str(tmp_path / "a" / "data" / "gateway-keys.yaml")
            second_env = env | {"GATEWAY_KEYS_FILE": keys_file}
            with serve_gateway(tmp_path / "b", models(upstream), {}, env=second_env) as second:
                responses = asyncio.run(burst([first, second], "burst", 50))
                charged = spent([first, second])

    codes = [r.status_code for r in responses]
    assert codes.count(200) == 10 and codes.count(429) == 40, codes
    assert upstream.calls() == 10
    assert charged == pytest.approx(10 * PER_REQUEST)


def test_a_stream_cut_before_its_usage_chunk_is_still_charged(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    upstream.default = slow_stream(words, interval=0.1)  # 4 s to the usage chunk
    with serve_gateway(tmp_path, models(upstream), {"reader": []}) as gateway:
        auth = {"authorization": f"Bearer {gateway.keys['reader']}"}
        with httpx.stream(
            "POST",
            f"{gateway.url}/v1/chat/completions",
            json=body(max_tokens=100, stream=True),
            headers=auth,
            timeout=30,
        ) as response:
            assert response.status_code == 200
            for number, _ in enumerate(response.iter_lines()):
                if number >= 10:
                    break  # hang up: the usage chunk never arrives
        cost = 0.0
        for _ in range(50):  # the gateway notices the hang-up within moments
            cost = spent([gateway])
            if cost:
                break
            asyncio.run(asyncio.sleep(0.1))
        estimated = metric(
            gateway, r'gateway_estimated_usage_total\{alias="paid",deployment="paid"\}'
        )

    # Charged an estimate of what was sent: the prompt and the words streamed so far, not zero.
    assert cost > 0
    assert estimated == 1


def test_max_tokens_and_max_completion_tokens_together_are_refused(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    with serve_gateway(tmp_path, models(upstream), {"sneaky": []}) as gateway:
        both = gateway.chat("sneaky", body(max_tokens=1, max_completion_tokens=1_000_000))
        huge = gateway.chat(
            "sneaky",
            {k: v for k, v in body(max_completion_tokens=1_000_000).items() if k != "max_tokens"},
        )

    assert both.status_code == 400 and both.json()["error"]["param"] == "max_completion_tokens"
    assert huge.status_code == 400 and "GATEWAY_MAX_TOKENS_LIMIT" in huge.json()["error"]["message"]
    assert upstream.calls() == 0


def test_one_key_cannot_hold_more_requests_in_flight_than_its_limit(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    keys = {"greedy": ["--max-concurrent", "2"]}
    with serve_gateway(tmp_path, models(upstream), keys) as gateway:
        responses = asyncio.run(burst([gateway], "greedy", 6))

    codes = [r.status_code for r in responses]
    assert codes.count(200) == 2 and codes.count(429) == 4, codes
    refused = [r for r in responses if r.status_code == 429]
    assert {r.json()["error"]["code"] for r in refused} == {"concurrency_limit_exceeded"}
    assert all(r.headers["retry-after"] == "1" for r in refused)
