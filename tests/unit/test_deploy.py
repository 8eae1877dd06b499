"""deploy/k8s rendered as a cluster would get it: each overlay through `kubectl kustomize`,
every object checked against the Kubernetes schemas (kubernetes-validate, strict), yamllint
on deploy/, the generated files in step with the services, and the NATS configuration
accepted by nats-server itself (with TLS certificates made for the test)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from deploy.k8s import render
from deploy.local import nats_auth
from deploy.local.processes import tool
from deploy.local.system import SERVICES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OVERLAYS = ("dev", "production")
KUBERNETES = "1.33"


def rendered(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) renders the overlays"
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, rendered(request.param)


def test_the_generated_files_are_what_the_renderer_writes():
    assert render.main(["--check"]) == 0, "run python -m deploy.k8s.render"


def test_every_object_of_each_overlay_is_valid_kubernetes(overlay):
    name, objects = overlay
    assert len(objects) > 20
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    # Credentials are referenced, never part of what is committed.
    assert not of_kind(objects, "Secret"), name


def test_a_broken_object_is_caught():
    """The check above can fail: a misspelt field is refused."""
    deployment = next(o for o in rendered("dev") if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_yamllint_passes_on_deploy():
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    problems = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for problem in linter.run(path.read_text(), config, str(path)):
            problems.append(f"{path.relative_to(DEPLOY)}:{problem.line}: {problem.message}")
    assert problems == []


def test_services_run_hardened_with_probes_and_their_own_credentials(overlay):
    name, objects = overlay
    deployments = of_kind(objects, "Deployment")
    assert set(deployments) == set(SERVICES)
    for service, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["args"] == ["python", "-m", f"services.{service}"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
        env = {e["name"]: e for e in container["env"]}
        nats = env["REFDESK_NATS_URL"]["valueFrom"]["secretKeyRef"]
        assert (nats["name"], nats["key"]) == ("refdesk-nats", f"{service}-url")
        assert "secretKeyRef" in env["REFDESK_MONGODB_URI"]["valueFrom"]
        ops = int(env["REFDESK_OPS_PORT"]["value"])
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(ops)
        assert any(p["containerPort"] == ops for p in container["ports"])
        assert pod.get("topologySpreadConstraints") or name == "dev"


def test_production_is_replicated_budgeted_scaled_and_fenced():
    objects = rendered("production")
    config = of_kind(objects, "ConfigMap")
    settings = next(c for n, c in config.items() if n.startswith("refdesk-config"))["data"]
    assert settings["REFDESK_STREAM_REPLICAS"] == "3"
    sets = of_kind(objects, "StatefulSet")
    assert sets["nats"]["spec"]["replicas"] == 3 and sets["mongodb"]["spec"]["replicas"] == 3
    assert set(of_kind(objects, "HorizontalPodAutoscaler")) == {"gateway", "routing"}
    assert of_kind(objects, "HorizontalPodAutoscaler")["gateway"]["spec"]["minReplicas"] == 3
    assert set(of_kind(objects, "PodDisruptionBudget")) == {*SERVICES, "nats", "mongodb"}
    policies = of_kind(objects, "NetworkPolicy")
    assert policies["default-deny"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    # Only the gateway is let in from outside the namespace (besides scraping).
    outside = [
        n
        for n, p in policies.items()
        if any(
            "namespaceSelector" in f
            for rule in p["spec"].get("ingress", [])
            for f in rule.get("from", [])
        )
    ]
    assert sorted(outside) == ["gateway-from-ingress", "metrics-from-monitoring"]
    assert of_kind(objects, "Ingress")["gateway"]["spec"]["tls"]


def test_dev_is_one_of_each_without_tls():
    objects = rendered("dev")
    assert all(d["spec"]["replicas"] == 1 for d in of_kind(objects, "Deployment").values())
    assert not of_kind(objects, "HorizontalPodAutoscaler")
    conf = next(c for n, c in of_kind(objects, "ConfigMap").items() if n.startswith("nats-config"))
    assert "tls" not in conf["data"]["nats.conf"] and "cluster" not in conf["data"]["nats.conf"]


def test_the_secrets_a_cluster_needs_are_what_the_manifests_ask_for():
    made = {s["metadata"]["name"]: s for s in render.fresh_secrets()}
    for obj in made.values():
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    wanted: set[tuple[str, str]] = set()
    for obj in rendered("production"):
        text = yaml.safe_dump(obj)
        for found in yaml.safe_load_all(text):
            _collect_secret_refs(found, wanted)
    for secret, key in wanted:
        if secret in ("refdesk-smtp",):  # optional: a deployment without an SMTP server
            continue
        if secret in ("nats-tls", "refdesk-tls"):  # certificates, from cert-manager or by hand
            continue
        assert key is None or key in made[secret]["data"], (secret, key)
    nats = made["refdesk-nats"]["data"]
    assert {f"{user}-url" for user in nats_auth.SERVICES} <= set(nats)


def _collect_secret_refs(node: Any, wanted: set[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            wanted.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
        if "secretRef" in node:
            wanted.add((node["secretRef"]["name"], None))  # type: ignore[arg-type]
        for value in node.values():
            _collect_secret_refs(value, wanted)
    elif isinstance(node, list):
        for value in node:
            _collect_secret_refs(value, wanted)


def _nats_accepts(conf: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POD_NAME": "nats-0"}
    env |= {f"NATS_{u.upper()}_PASSWORD": "x" for u in (*nats_auth.SERVICES, nats_auth.ADMIN)}
    return subprocess.run(
        [tool("nats-server"), "-t", "-c", str(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_nats_server_accepts_both_configurations(tmp_path: Path):
    dev = _nats_accepts(DEPLOY / "k8s" / "overlays" / "dev" / "nats.conf")
    assert dev.returncode == 0, dev.stderr
    # Production's needs its certificates: made here, as cert-manager would.
    key, cert = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=nats.refdesk.svc", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    shutil.copy(cert, tmp_path / "ca.crt")
    conf = (DEPLOY / "k8s" / "base" / "nats" / "nats.conf").read_text()
    production = tmp_path / "nats.conf"
    production.write_text(conf.replace(render.NATS_TLS, str(tmp_path)))
    checked = _nats_accepts(production)
    assert checked.returncode == 0, checked.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(conf.replace("authorization {", "authorization {{"))
    assert _nats_accepts(broken).returncode != 0


def test_the_security_doc_states_each_users_nats_reach():
    """docs/security.md's "NATS reach" table is the one the permissions are made from."""
    doc = (DEPLOY.parent / "docs" / "security.md").read_text()
    assert nats_auth.reach_table() in doc, "paste nats_auth.reach_table() into docs/security.md"
