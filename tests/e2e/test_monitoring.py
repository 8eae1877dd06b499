"""What Prometheus and Grafana get: every service's /metrics passes `promtool check metrics`
(names, units, types), the alert rules pass `promtool check rules` and their unit tests
(`promtool test rules`), and every metric the alerts and the dashboard use is one a
service exposes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import yaml

from deploy.local.system import SERVICES, LocalSystem

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
PROMTOOL = os.environ.get("REFDESK_PROMTOOL", "/usr/bin/promtool")
METRIC = re.compile(r"\b(refdesk_[a-z0-9_]+)")
SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), f"promtool at {PROMTOOL} (make promtool installs it)"
    return subprocess.run(
        [PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=MONITORING
    )


async def exposition(system: LocalSystem) -> dict[str, str]:
    async with httpx.AsyncClient() as http:
        return {s: (await http.get(f"{system.ops_url(s)}/metrics")).text for s in SERVICES}


def exposed(texts: dict[str, str]) -> set[str]:
    return {
        line.split()[2] for text in texts.values() for line in text.splitlines()
        if line.startswith("# TYPE ")
    }  # fmt: skip


def used() -> set[str]:
    """refdesk metrics named by the alert rules and the dashboard."""
    exprs = [
        rule["expr"]
        for group in yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"]
        for rule in group["rules"]
    ]
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = set()
    for expr in exprs:
        for name in METRIC.findall(expr):
            for suffix in SUFFIXES:
                name = name.removesuffix(suffix)
            names.add(name)
    return names


async def test_every_service_s_metrics_pass_promtool(system: LocalSystem):
    texts = await exposition(system)
    for service, text in texts.items():
        assert "refdesk_" in text, service
        checked = promtool("check", "metrics", stdin=text)
        assert checked.returncode == 0, (service, checked.stdout, checked.stderr)
    bad = "# HELP refdesk_things Things\n# TYPE refdesk_things counter\nrefdesk_things 1\n"
    assert promtool("check", "metrics", stdin=bad).returncode != 0  # the check can fail


async def test_alerts_and_dashboard_use_only_exposed_metrics(system: LocalSystem):
    names = exposed(await exposition(system))
    missing = sorted(used() - names)
    assert missing == [], f"used by alerts or the dashboard, exposed by no service: {missing}"
    for needed in (
        "refdesk_chats_started_total",
        "refdesk_chats_claimed_total",
        "refdesk_chats_missed_total",
        "refdesk_chats_rolled_over_total",
        "refdesk_chat_wait_seconds",
        "refdesk_chat_duration_seconds",
        "refdesk_message_delivery_seconds",
        "refdesk_gateway_connections",
        "refdesk_operators",
        "refdesk_transfers_total",
        "refdesk_claim_conflicts_total",
        "refdesk_nats_request_seconds",
        "refdesk_transcript_pending_events",
        "refdesk_transcript_dead_letters_total",
        "refdesk_mail_queue_depth",
        "refdesk_mongodb_command_seconds",
    ):
        assert needed in names, needed


async def test_every_service_settled_its_heap(system: LocalSystem):
    """Once started, each service has exempted what it holds from garbage collection (the
    gauge is 0 in a process that never settled)."""
    frozen = re.compile(r"^refdesk_heap_frozen_objects (\S+)$", re.M)
    for service, text in (await exposition(system)).items():
        found = frozen.search(text)
        assert found is not None and float(found.group(1)) > 10_000, service


def test_alert_rules_check_and_pass_their_unit_tests():
    checked = promtool("check", "rules", "alerts.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
