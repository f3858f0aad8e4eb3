"""The Prometheus configuration and alert rules, checked with the real `promtool`.

- the config and the rules load (`promtool check`);
- every alert fires on bad traffic and stays quiet on good traffic (`promtool test rules`
  runs deploy/prometheus/alerts_test.yml), and this test checks that the file has both cases
  for every alert, so a new rule cannot ship untested;
- every metric a rule reads is one the services export, so renaming a metric in code cannot
  silently leave an alert that never fires.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.support.monitoring import exported_metrics, metrics_read
from tests.support.servers import require_tool

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
INSTALL = "sudo apt-get install prometheus   (or: brew install prometheus)"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool", INSTALL)
    return subprocess.run(
        [tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


def rules() -> list[dict[str, str]]:
    spec = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in spec["groups"] for rule in group["rules"]]


def test_the_configs_and_the_rules_load() -> None:
    checked = promtool("check", "rules", "alerts.yml")

    for name in ("prometheus.yml", "prometheus.compose.yml"):
        config = promtool("check", "config", name)
        assert config.returncode == 0, config.stdout + config.stderr
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_the_compose_config_scrapes_the_same_jobs_as_the_local_one() -> None:
    # The rules and dashboards select on job names: both configs must use the same ones.
    def jobs(name: str) -> list[dict[str, object]]:
        scrape: list[dict[str, object]] = yaml.safe_load((PROMETHEUS / name).read_text())[
            "scrape_configs"
        ]
        return [{k: v for k, v in job.items() if k != "static_configs"} for job in scrape]

    assert jobs("prometheus.compose.yml") == jobs("prometheus.yml")


def test_every_alert_fires_on_bad_traffic_and_stays_quiet_on_good() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    cases = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fires = {c["alertname"] for t in cases for c in t["alert_rule_test"] if c["exp_alerts"]}
    quiet = {c["alertname"] for t in cases for c in t["alert_rule_test"] if not c["exp_alerts"]}

    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {rule["alert"] for rule in rules()}
    assert fires == alerts, f"alerts with no firing case: {alerts - fires}"
    assert quiet == alerts, f"alerts with no quiet case: {alerts - quiet}"


def test_every_metric_a_rule_reads_is_exported() -> None:
    read: set[str] = set()
    for rule in rules():
        read |= metrics_read(rule["expr"], labels={"alias", "key_id"})

    assert read, "no metric found in the rules"
    assert read <= exported_metrics(), (
        f"rules read metrics no service exports: {read - exported_metrics()}"
    )
