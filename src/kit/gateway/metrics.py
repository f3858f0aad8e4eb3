"""The gateway's own Prometheus metrics (HTTP request metrics come from `kit.web.metrics`).

Labels are bounded sets: model aliases and deployments come from the models file, key ids from
the keys file, statuses from HTTP. Never a prompt, a user id or a raw path.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kit.web.metrics import LATENCY_BUCKETS

# Time to first token: from a cache hit (<1 ms) to a cold local model (seconds).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry, *, redis: bool = True) -> None:
        """`redis=False` (no REDIS_URL) leaves gateway_redis_up out of `registry`: a gateway that
        uses no Redis must not report one that is down."""
        self.requests = Counter(
            "gateway_requests",
            "Model requests by alias, deployment that answered, and status.",
            ["alias", "deployment", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Time to the complete answer.",
            ["alias", "deployment"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Time to the first streamed token.",
            ["alias", "deployment"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "gateway_tokens",
            "Tokens processed, by kind (prompt or completion).",
            ["alias", "deployment", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            "gateway_cost_usd",
            "Money spent at providers, in USD.",
            ["alias", "deployment", "key_id"],
            registry=registry,
        )
        self.cache = Counter(
            "gateway_cache",
            "Response cache look-ups by result (hit, miss, shared).",
            ["alias", "result"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "gateway_fallbacks",
            "Moves to the next deployment of a chain, and why.",
            ["alias", "from_deployment", "reason"],
            registry=registry,
        )
        self.rejected = Counter(
            "gateway_rejected",
            "Requests refused by a key's limits (rate, budget, concurrency).",
            ["key_id", "limit"],
            registry=registry,
        )
        # A provider that reports no usage (a stream cut short, a server that omits it) is charged
        # an over-estimate from the text (src/kit/gateway/service.py): worth seeing if it grows.
        self.estimated = Counter(
            "gateway_estimated_usage",
            "Requests charged an estimate because the provider reported no token usage.",
            ["alias", "deployment"],
            registry=registry,
        )
        # Set after each paid request of a key that has a budget, from the shared total (Redis),
        # so every replica reports the same value: alert on max by (key_id).
        self.budget_used = Gauge(
            "gateway_key_budget_used_ratio",
            "Share of a key's budget spent so far (1 = spent; its requests are then refused).",
            ["key_id"],
            registry=registry,
        )
        # 0 while Redis is unreachable and this replica serves from memory (see redis_health.py).
        # Not per request: it changes when the link goes down or comes back.
        self.redis_up = Gauge(
            "gateway_redis_up",
            "1 when Redis (shared cache, limits, budgets) answers; 0 while serving from memory.",
            registry=registry if redis else None,
        )
