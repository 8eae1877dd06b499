"""The Kubernetes base stays in step with the services it deploys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploy.local.system import SERVICES
from services.directory.settings import DirectorySettings
from services.gateway.settings import GatewaySettings
from services.presence.settings import PresenceSettings
from services.routing.settings import RoutingSettings
from services.tickets.settings import TicketsSettings
from services.transcripts.settings import TranscriptsSettings

BASE = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base"
PORTS = {
    "gateway": GatewaySettings().port,
    "routing": RoutingSettings().ops_port,
    "presence": PresenceSettings().ops_port,
    "transcripts": TranscriptsSettings().ops_port,
    "tickets": TicketsSettings().ops_port,
    "directory": DirectorySettings().ops_port,
}


def documents(name: str) -> list[dict]:
    return list(yaml.safe_load_all((BASE / name).read_text()))


def test_kustomization_lists_every_service():
    resources = documents("kustomization.yaml")[0]["resources"]
    for service in SERVICES:
        assert f"{service}.yaml" in resources
    for resource in resources:
        assert (BASE / resource).exists()


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_its_module_with_probes_on_its_port(service: str):
    deployment = next(d for d in documents(f"{service}.yaml") if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["python", "-m", f"services.{service}"]
    assert container["ports"][0]["containerPort"] == PORTS[service]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["REFDESK_PORT" if service == "gateway" else "REFDESK_OPS_PORT"] == str(
        PORTS[service]
    )
    assert container["resources"]["requests"]["cpu"]
