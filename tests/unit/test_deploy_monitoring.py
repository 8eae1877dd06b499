"""The alerts fire the same whichever way Prometheus scrapes refdesk: promtool's unit tests
(deploy/monitoring/alerts_test.yaml) pass on the plain rule file and on the
PrometheusRule of components/monitoring, each with the `job` label a scrape_config gives
and with the one a PodMonitor gives; the two scraping setups make the same `service`
label; the dashboard has its infrastructure panels. Real promtool throughout."""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
COMPONENT = ROOT / "deploy" / "k8s" / "components" / "monitoring"
PROMTOOL = os.environ.get("REFDESK_PROMTOOL", "/usr/bin/promtool")
# A scrape_config's job is its job_name; a PodMonitor's is <namespace>/<name>.
JOBS = ("refdesk", "refdesk/refdesk")
JOB = re.compile(r'job="refdesk"')
TESTS = ("alerts_test.yaml", "alerts_slow_test.yaml")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), f"promtool at {PROMTOOL} (make promtool installs it)"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def rule_files(folder: Path) -> dict[str, Path]:
    """The plain rule file, and the PrometheusRule's groups as a rule file."""
    rule = yaml.safe_load((COMPONENT / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    operator = folder / "prometheusrule-groups.yaml"
    operator.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return {"plain": MONITORING / "alerts.yaml", "operator": operator}


def unit_tests(folder: Path, rules: Path, job: str, name: str = TESTS[0]) -> Path:
    """The unit tests of `name` against `rules`, with every scraped series labelled `job`."""
    tests = yaml.safe_load((MONITORING / name).read_text())
    tests["rule_files"] = [str(rules)]
    for group in tests["tests"]:
        for series in group["input_series"]:
            series["series"] = JOB.sub(f'job="{job}"', series["series"])
    path = folder / f"{rules.stem}-{job.replace('/', '-')}-{name}"
    path.write_text(yaml.safe_dump(tests, sort_keys=False, width=200))
    return path


def test_both_rule_files_pass_the_alert_tests_with_either_job(tmp_path: Path):
    files = rule_files(tmp_path)
    for rules in files.values():
        checked = promtool("check", "rules", str(rules), cwd=tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    runs = [
        unit_tests(tmp_path, rules, job, name)
        for rules in files.values()
        for job in JOBS
        for name in TESTS
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda p: promtool("test", "rules", str(p), cwd=tmp_path), runs))
    failed = [
        (p.name, r.stdout + r.stderr) for p, r in zip(runs, results, strict=True) if r.returncode
    ]
    assert failed == []


def test_the_alert_tests_can_fail(tmp_path: Path):
    """An alert that matched on `job` would miss the PodMonitor's series: promtool says so."""
    broken = tmp_path / "alerts.yaml"
    broken.write_text(
        (MONITORING / "alerts.yaml")
        .read_text()
        .replace(
            'absent(up{service="gateway"} == 1)',
            'absent(up{job="refdesk", service="gateway"} == 1)',
        )
    )
    assert (
        promtool(
            "test", "rules", str(unit_tests(tmp_path, broken, "refdesk")), cwd=tmp_path
        ).returncode
        == 0
    )
    podmonitor = unit_tests(tmp_path, broken, "refdesk/refdesk")
    assert promtool("test", "rules", str(podmonitor), cwd=tmp_path).returncode != 0


def test_no_alert_or_panel_matches_on_job():
    rules = [
        r
        for g in yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"]
        for r in g["rules"]
    ]
    panels = json.loads((MONITORING / "dashboard.json").read_text())["panels"]
    exprs = [r["expr"] for r in rules] + [t["expr"] for p in panels for t in p["targets"]]
    assert not [e for e in exprs if re.search(r"\bjob\s*=", e)]


def test_the_prometheusrule_is_the_rule_file():
    rule = yaml.safe_load((COMPONENT / "prometheusrule.yaml").read_text())
    plain = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    assert rule["spec"]["groups"] == plain["groups"]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_scrape_config_and_podmonitor_make_the_same_service_label():
    scrape = yaml.safe_load((MONITORING / "scrape.yaml").read_text())
    relabel = scrape["scrape_configs"][0]["relabel_configs"]
    labelling = [r for r in relabel if r.get("action", "replace") == "replace"]
    monitor = yaml.safe_load((COMPONENT / "podmonitor.yaml").read_text())
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    assert {e["port"] for e in endpoints} == {"ops", "metrics"}
    for endpoint in endpoints:
        converted = [{_snake(k): v for k, v in r.items()} for r in endpoint["relabelings"]]
        assert converted == labelling
    assert any(r.get("target_label") == "service" for r in labelling)


@pytest.mark.parametrize(
    "metric",
    [
        "gnatsd_varz_jetstream_stats_storage",
        "jetstream_consumer_num_pending",
        "mongodb_mongod_replset_member_replication_lag",
        "kubelet_volume_stats_available_bytes",
        "certmanager_certificate_expiration_timestamp_seconds",
    ],
)
def test_infrastructure_has_alerts_and_panels(metric: str):
    alerts = (MONITORING / "alerts.yaml").read_text()
    panels: list[dict[str, Any]] = json.loads((MONITORING / "dashboard.json").read_text())["panels"]
    assert metric in alerts
    assert any(metric in t["expr"] for p in panels for t in p["targets"])
