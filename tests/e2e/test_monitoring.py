"""A real monitoring loop on 127.0.0.1: the gateway and the RAG service as processes (`kit serve`,
the commands their containers run), a real Prometheus loading the repository's config and alert
rules with its targets pointed at them, traffic, and assertions through Prometheus's HTTP API:
the targets are up, the gateway's metrics were scraped, every rule evaluates, and stopping a
service turns ServiceDown pending. A Pushgateway carries drift scores pushed as the `kit drift`
job pushes them, and DriftScoreHigh fires on a score over its threshold."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from kit.drift.export import DriftMetrics, push
from kit.drift.score import Check, Scores
from tests.support.servers import create_gateway_key, free_port, require_tool

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
pytestmark = pytest.mark.timeout(600)


@contextmanager
def serving(command: list[str], env: dict[str, str], log: Path, ready: str) -> Iterator[Any]:
    with log.open("w") as output:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: httpx.get(ready, timeout=1).status_code == 200, 180, log)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def wait_for(check: Callable[[], bool], seconds: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except (httpx.TransportError, KeyError, IndexError):
            pass
        if time.monotonic() > deadline:
            detail = log.read_text()[-2000:] if log else ""
            raise AssertionError(f"not true within {seconds} s\n{detail}")
        time.sleep(0.25)


def test_prometheus_scrapes_the_services_and_evaluates_the_alert_rules(
    kit_env: dict[str, str], tmp_path: Path
) -> None:
    prometheus = require_tool("prometheus", "sudo apt-get install prometheus")
    pushgateway = require_tool(
        "prometheus-pushgateway", "sudo apt-get install prometheus-pushgateway"
    )
    key = create_gateway_key(KIT, kit_env, REPO, "--id", "monitoring")
    gateway_port, rag_port, prometheus_port = free_port(), free_port(), free_port()
    pushgateway_port = free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    api = f"http://127.0.0.1:{prometheus_port}/api/v1"

    # The repository's config, with its targets on this test's ports and a 1 s cadence.
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS / "alerts.yml")]
    ports = {"gateway": gateway_port, "rag": rag_port, "pushgateway": pushgateway_port}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))

    rag_env = kit_env | {"GATEWAY_URL": gateway, "GATEWAY_API_KEY": key}
    with ExitStack() as stack:
        stack.enter_context(
            serving(
                [KIT, "serve", "gateway", "--port", str(gateway_port)],
                kit_env,
                tmp_path / "gateway.log",
                f"{gateway}/readyz",
            )
        )
        rag = stack.enter_context(
            serving(
                [KIT, "serve", "rag", "--port", str(rag_port)],
                rag_env,
                tmp_path / "rag.log",
                f"http://127.0.0.1:{rag_port}/healthz",
            )
        )
        stack.enter_context(
            serving(
                [pushgateway, f"--web.listen-address=127.0.0.1:{pushgateway_port}"],
                kit_env,
                tmp_path / "pushgateway.log",
                f"http://127.0.0.1:{pushgateway_port}/-/ready",
            )
        )
        stack.enter_context(
            serving(
                [
                    prometheus,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                kit_env,
                tmp_path / "prometheus.log",
                f"http://127.0.0.1:{prometheus_port}/-/ready",
            )
        )
        for question in ("Name a colour.", "Name a fruit.", "Name a planet."):
            answer = httpx.post(
                f"{gateway}/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={
                    "model": "local",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": question}],
                },
                timeout=120,
            )
            assert answer.status_code == 200, answer.text

        def query(expression: str) -> list[dict[str, Any]]:
            body = httpx.get(f"{api}/query", params={"query": expression}, timeout=5).json()
            result: list[dict[str, Any]] = body["data"]["result"]
            return result

        def targets_up() -> bool:
            targets = httpx.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
            return {t["labels"]["job"]: t["health"] for t in targets} == {
                "gateway": "up",
                "rag": "up",
                "pushgateway": "up",
            }

        # A drift run's scores, pushed the way `kit drift --pushgateway` pushes them: the length
        # check over its threshold, the embedding check under it.
        registry = CollectorRegistry()
        drift = Scores(
            checks=[
                Check("embedding_mmd", 0.005, 0.02, "meaning in the embedding space"),
                Check("length_psi", 1.6, 0.25, "question lengths"),
            ],
            details={"embedding_mmd_p_value": 0.3},
        )
        DriftMetrics(registry).record(drift, reference=181, current=200, seconds=3.0)
        push(f"http://127.0.0.1:{pushgateway_port}", registry, collection="docs")

        def drift_alerts() -> dict[str, str]:
            alerts = httpx.get(f"{api}/alerts", timeout=5).json()["data"]["alerts"]
            return {
                a["labels"]["check"]: a["state"]
                for a in alerts
                if a["labels"]["alertname"] == "DriftScoreHigh"
            }

        wait_for(targets_up, 30)
        wait_for(lambda: drift_alerts() == {"length_psi": "firing"}, 30)
        wait_for(lambda: float(query("sum(gateway_requests_total)")[0]["value"][1]) >= 3, 30)
        rules = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
        evaluated = {r["name"]: r for group in rules for r in group["rules"]}
        latency = 'sum(rate(http_request_duration_seconds_count{service="gateway"}[1m]))'
        wait_for(lambda: float(query(latency)[0]["value"][1]) > 0, 30)  # two scrapes or more

        rag.send_signal(signal.SIGTERM)  # the RAG service goes away...
        rag.wait(timeout=30)

        def rag_down_pending() -> bool:
            alerts = httpx.get(f"{api}/alerts", timeout=5).json()["data"]["alerts"]
            return any(
                a["labels"]["alertname"] == "ServiceDown"
                and a["labels"]["job"] == "rag"
                and a["state"] == "pending"  # ...and the alert waits its `for: 2m`
                for a in alerts
            )

        wait_for(rag_down_pending, 30)

    alert_names = {
        rule["alert"]
        for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for rule in g["rules"]
    }
    assert set(evaluated) == alert_names
    assert all(rule["health"] == "ok" for rule in evaluated.values())
    assert evaluated["GatewayHighErrorRate"]["state"] == "inactive"  # good traffic: quiet
