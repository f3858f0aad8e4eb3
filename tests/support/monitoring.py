"""What the monitoring files (alert rules, dashboards) may read: the series the services and the
drift job export."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

PROMQL_WORDS = {
    "sum",
    "rate",
    "increase",
    "histogram_quantile",
    "by",
    "and",
    "le",
    "count",
    "or",
    "vector",
    "time",
    "max",
}


def exported_metrics() -> set[str]:
    """Every series name the gateway and RAG services and the drift job (`kit drift`, through a
    Pushgateway or a textfile) can export, and Prometheus's `up`."""
    from kit.drift.export import DriftMetrics
    from kit.gateway.metrics import GatewayMetrics
    from kit.rag_service.metrics import RagMetrics
    from kit.web.metrics import HttpMetrics

    registry = CollectorRegistry()
    HttpMetrics(registry, service="gateway")
    GatewayMetrics(registry)
    RagMetrics(registry)
    DriftMetrics(registry)
    names = {"up"}  # Prometheus's own, one per scrape target
    for family in registry.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_count", "_sum"],
        }.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def metrics_read(expression: str, labels: set[str]) -> set[str]:
    """The metric names a PromQL expression reads: words outside selectors, ranges and strings,
    minus PromQL's own words and the `by (...)` labels given."""
    bare = re.sub(r'\{[^}]*\}|\[[^\]]*\]|"[^"]*"', "", expression)
    return set(re.findall(r"[a-z_][a-z0-9_]*", bare)) - PROMQL_WORDS - labels
