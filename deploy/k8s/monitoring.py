"""deploy/monitoring/alerts.yaml as a PrometheusRule (the Prometheus operator's), for the
optional components/monitoring: the same groups, word for word, so both fire the same
alerts (tests/unit/test_deploy_monitoring.py runs promtool's unit tests on each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ALERTS = Path(__file__).resolve().parents[1] / "monitoring" / "alerts.yaml"


def prometheus_rule() -> dict[str, Any]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "refdesk", "labels": {"app.kubernetes.io/name": "refdesk"}},
        "spec": {"groups": groups},
    }
