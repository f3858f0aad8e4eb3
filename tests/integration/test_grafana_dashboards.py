"""Grafana dashboards: valid JSON that Grafana can provision, every query valid PromQL that reads
only metrics the services export. Grafana cannot run here (it is not in apt, and no image can be
pulled); Prometheus's `promtool` can, so each panel query is parsed for real by loading it as a
recording rule."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.monitoring import exported_metrics, metrics_read
from tests.support.servers import require_tool

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
LABELS = {
    "alias",
    "kind",
    "from_deployment",
    "reason",
    "key_id",
    "limit",
    "deployment",
    "outcome",
    "stage",
    "route",
}


def queries(path: Path) -> list[str]:
    dashboard = json.loads(path.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_is_provisionable(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]

    assert dashboard["uid"].startswith("kit-") and dashboard["title"]
    assert len(ids) == len(set(ids)) >= 5
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])


def test_every_panel_query_is_valid_promql_over_exported_metrics(tmp_path: Path) -> None:
    tool = require_tool("promtool", "sudo apt-get install prometheus")
    exprs = [expr for path in DASHBOARDS for expr in queries(path)]
    rules = {
        "groups": [
            {
                "name": "panels",
                "rules": [
                    {"record": f"panel:query{n}", "expr": expr} for n, expr in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))

    checked = subprocess.run(
        [tool, "check", "rules", "panels.yml"], cwd=tmp_path, capture_output=True, text=True
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    read: set[str] = set()
    for expr in exprs:
        read |= metrics_read(expr, LABELS)
    assert read <= exported_metrics(), (
        f"panels read metrics no service exports: {read - exported_metrics()}"
    )


def test_provisioning_points_at_prometheus_and_the_dashboards_folder() -> None:
    source = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/kit.yml").read_text())

    assert source["datasources"][0]["type"] == "prometheus"
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
