"""deploy/k8s rendered as a cluster would get it: each overlay, and production with every
optional component, through `kubectl kustomize` in a copy of the tree given what an install
adds (config.env, site.env, credentials from `render --secrets`); every object checked
against the Kubernetes schemas of 1.29 to 1.33 (kubernetes-validate, strict); yamllint on
deploy/; the generated files in step with the services; and what the manifests promise:
per-install values with no default, per-service images with the package's version, third
party images by digest, hashed configuration and credentials, Jobs that can change, the
network paths each pod needs and no other."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from deploy.k8s import credentials, jobs, render
from deploy.local.system import SERVICES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = ("1.29", "1.30", "1.31", "1.32", "1.33")
COMPONENTS = [
    "day-one",
    "monitoring",
    "openshift",
    "dns-openshift",
    "dns-node-local",
    "smtp-loadbalancer",
]
# Distinct from every default, so a value that is not the site's shows.
SITE = {
    "INGRESS_NAMESPACE": "site-ingress",
    "MONITORING_NAMESPACE": "site-monitoring",
    "DNS_NAMESPACE": "site-dns",
    "SMTP_SOURCE_CIDR": "198.51.100.25/32",
    "MONGODB_CIDR": "203.0.113.0/28",
}
CONFIG = {
    "REFDESK_CONSORTIUM": "valley",
    "REFDESK_PUBLIC_URL": "https://ask.valley.example",
    "REFDESK_TRUSTED_PROXIES": "10.244.0.0/16",
    "REFDESK_OTEL_ENDPOINT": "http://collector.site-monitoring:4318",
}
CRDS = {"PodMonitor", "PrometheusRule"}
Objects = list[dict[str, Any]]


def _env(values: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


def kustomize(path: Path) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) renders the overlays"
    return subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )


def objects_of(path: Path) -> Objects:
    out = kustomize(path)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def variant(tree: Path, name: str, components: list[str]) -> Path:
    """A copy of the production overlay with more components."""
    folder = tree / "overlays" / name
    shutil.copytree(tree / "overlays" / "production", folder)
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    kustomization["components"] += [f"../../components/{c}" for c in components]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/k8s as an install has it."""
    tree = tmp_path_factory.mktemp("install") / "k8s"
    shutil.copytree(DEPLOY / "k8s", tree, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    production = tree / "overlays" / "production"
    (production / "config.env").write_text(_env(CONFIG))
    (production / "site.env").write_text(_env(SITE))
    credentials.write_dir(production / "secrets")
    credentials.write_dir(tree / "overlays" / "dev" / "secrets", tls=False, members=1)
    variant(tree, "production-all", COMPONENTS)
    variant(tree, "production-external-mongodb", ["external-mongodb"])
    return tree


@pytest.fixture(scope="module")
def rendered(tree: Path) -> dict[str, Objects]:
    names = ["dev", "production", "production-all", "production-external-mongodb"]
    return {name: objects_of(tree / "overlays" / name) for name in names}


def of_kind(objects: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def named(objects: Objects, kind: str, prefix: str) -> dict[str, Any]:
    [found] = [o for n, o in of_kind(objects, kind).items() if n.startswith(prefix)]
    return found


def pod_specs(objects: Objects) -> dict[str, dict[str, Any]]:
    specs = {}
    for o in objects:
        spec = o.get("spec", {})
        if o["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec:
            specs[f"{o['kind']}/{o['metadata']['name']}"] = spec["template"]
    return specs


def test_the_generated_files_are_what_the_renderer_writes():
    assert render.main(["--check"]) == 0, "run python -m deploy.k8s.render"


@pytest.mark.parametrize("version", KUBERNETES)
def test_every_object_of_every_variant_is_valid_kubernetes(rendered, version: str):
    seen = set()
    for name, objects in rendered.items():
        assert len(objects) > 30, name
        for obj in objects:
            key = json.dumps(obj, sort_keys=True)
            if obj["kind"] in CRDS or key in seen:
                continue
            seen.add(key)
            kubernetes_validate.validate(obj, version, strict=True)
    kinds = {o["kind"] for o in rendered["production-all"]}
    assert CRDS <= kinds and {"CronJob", "Job", "Secret", "NetworkPolicy"} <= kinds


def test_a_broken_object_is_caught(rendered):
    deployment = next(o for o in rendered["dev"] if o["kind"] == "Deployment")
    deployment = json.loads(json.dumps(deployment))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES[0], strict=True)


def test_yamllint_passes_on_deploy():
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    problems = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for problem in linter.run(path.read_text(), config, str(path)):
            problems.append(f"{path.relative_to(DEPLOY)}:{problem.line}: {problem.message}")
    assert problems == []


def test_an_install_must_state_its_own_values(tree: Path):
    """Without config.env, site.env or any one of their values, nothing renders: the
    trusted proxies above all have no default to fall back on."""
    production = tree / "overlays" / "production"
    for file, values in (("config.env", CONFIG), ("site.env", SITE)):
        saved = (production / file).read_text()
        try:
            (production / file).unlink()
            assert kustomize(production).returncode != 0, file
            for key in values:
                if key == "MONGODB_CIDR":  # only with components/external-mongodb
                    continue
                (production / file).write_text(_env({k: v for k, v in values.items() if k != key}))
                missing = kustomize(production)
                assert missing.returncode != 0 and key in missing.stderr, key
        finally:
            (production / file).write_text(saved)
    committed = subprocess.run(
        ["git", "ls-files", "deploy/k8s/overlays/production"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert not [
        f for f in committed if f.endswith(("/config.env", "/site.env")) or "/secrets/" in f
    ]


def test_the_site_s_values_are_where_they_belong(rendered):
    objects = rendered["production"]
    config = named(objects, "ConfigMap", "refdesk-config")["data"]
    assert {k: config[k] for k in CONFIG} == CONFIG
    assert not [o for o in objects if o["metadata"]["name"] == "refdesk-site"]  # never applied
    ingress = of_kind(objects, "Ingress")["gateway"]["spec"]
    assert ingress["rules"][0]["host"] == ingress["tls"][0]["hosts"][0] == "ask.valley.example"
    policies = of_kind(objects, "NetworkPolicy")
    name = "kubernetes.io/metadata.name"

    def source(policy: str, field: str) -> dict[str, Any]:
        return policies[policy]["spec"][field][0][{"ingress": "from", "egress": "to"}[field]][0]

    assert (
        source("gateway-from-ingress", "ingress")["namespaceSelector"]["matchLabels"][name]
        == "site-ingress"
    )
    assert (
        source("metrics-from-monitoring", "ingress")["namespaceSelector"]["matchLabels"][name]
        == "site-monitoring"
    )
    assert (
        source("services-to-otlp-collector", "egress")["namespaceSelector"]["matchLabels"][name]
        == "site-monitoring"
    )
    assert source("dns", "egress")["namespaceSelector"]["matchLabels"][name] == "site-dns"
    assert source("tickets-mail", "ingress") == {"ipBlock": {"cidr": "198.51.100.25/32"}}
    for name, objects in rendered.items():  # nothing of a default stays
        text = json.dumps(objects)
        assert name == "dev" or ("kube-system" not in text and "ingress-nginx" not in text), name


def test_services_run_hardened_with_probes_and_their_own_credentials(rendered):
    for name, objects in rendered.items():
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
            # Kubernetes 1.29 has no `sleep` handler.
            assert container["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
            env = {e["name"]: e for e in container["env"]}
            nats = env["REFDESK_NATS_URL"]["valueFrom"]["secretKeyRef"]
            assert nats["name"].startswith("refdesk-nats-") and nats["key"] == f"{service}-url"
            assert env["REFDESK_MONGODB_URI"]["valueFrom"]["secretKeyRef"]["key"] == "uri"
            ops = int(env["REFDESK_OPS_PORT"]["value"])
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/port"] == str(ops)
            assert any(p["containerPort"] == ops for p in container["ports"])
            assert pod.get("topologySpreadConstraints") or name == "dev"


def test_configuration_and_credentials_are_hashed_and_referenced(rendered):
    """A change to a setting or a credential is a new name, so the pods that read it roll."""
    for name, objects in rendered.items():
        secrets = of_kind(objects, "Secret")
        assert {s.rsplit("-", 1)[0] for s in secrets} == {
            "refdesk-nats", "refdesk-mongodb", "refdesk-secrets", "refdesk-admin"
        }, name  # fmt: skip
        wanted: set[tuple[str, str | None]] = set()
        _collect_secret_refs(objects, wanted)
        for secret, key in wanted:
            if secret in ("refdesk-smtp", "nats-tls", "mongodb-tls", "refdesk-tls"):
                continue  # optional, or certificates (cert-manager or by hand)
            assert secret in secrets, (name, secret)
            assert key is None or key in secrets[secret]["data"], (name, secret, key)
        config = named(objects, "ConfigMap", "refdesk-config")["metadata"]["name"]
        assert config != "refdesk-config"


def _collect_secret_refs(node: Any, wanted: set[tuple[str, str | None]]) -> None:
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            wanted.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
        if "secretName" in node:
            for item in node.get("items", [None]):
                wanted.add((node["secretName"], item and item["key"]))
        for value in node.values():
            _collect_secret_refs(value, wanted)
    elif isinstance(node, list):
        for value in node:
            _collect_secret_refs(value, wanted)


def test_images_per_service_tagged_with_the_release_and_others_by_digest(rendered):
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "base" / "kustomization.yaml").read_text())
    entries = {i["name"]: i for i in kustomization["images"]}
    for service in SERVICES:
        assert entries[f"refdesk-{service}"] == {
            "name": f"refdesk-{service}",
            "newTag": render.version(),
        }
    for name, objects in rendered.items():
        for where, template in pod_specs(objects).items():
            spec = template["spec"]
            for container in spec.get("initContainers", []) + spec["containers"]:
                image = container["image"]
                if container["name"] in SERVICES or "refdesk" in image:
                    expected = (
                        "localhost:5001/refdesk:dev"
                        if name == "dev"
                        else f"registry.example.org/refdesk:{render.version()}"
                    )
                    assert image == expected, (where, image)
                elif container["name"] == "exporter":
                    assert image.rsplit(":", 1)[1][0].isdigit(), image  # an exact version
                else:
                    assert "@sha256:" in image, (where, image)


def test_a_changed_job_is_a_new_job(monkeypatch: pytest.MonkeyPatch):
    """A Job's template cannot change in place: its name changes with it."""
    before = jobs.mongodb_init()
    monkeypatch.setattr(jobs, "MONGODB_INIT_SCRIPT", jobs.MONGODB_INIT_SCRIPT + "\n")
    after = jobs.mongodb_init()
    assert before["metadata"]["name"] != after["metadata"]["name"]
    assert before["metadata"]["name"].startswith("mongodb-init-")
    assert before["spec"]["ttlSecondsAfterFinished"] > 0
    assert jobs.bootstrap("1.0")["metadata"]["name"] != jobs.bootstrap("1.1")["metadata"]["name"]


def test_mongodb_readiness_follows_the_replica_state_and_clients_use_tls(rendered):
    mongodb = of_kind(rendered["production"], "StatefulSet")["mongodb"]["spec"]["template"]["spec"]
    [server] = [c for c in mongodb["containers"] if c["name"] == "mongodb"]
    probe = " ".join(server["readinessProbe"]["exec"]["command"])
    assert "hello()" in probe and "secondary" in probe and "ping" not in probe
    assert "--tlsMode=requireTLS" in server["args"]
    secret = named(rendered["production"], "Secret", "refdesk-mongodb")["data"]
    uri = base64.b64decode(secret["uri"]).decode()
    assert "tls=true" in uri and "@mongodb-0.mongodb:27017," in uri
    script = jobs.MONGODB_INIT_SCRIPT
    assert '[{role: "readWrite", db: env.DATABASE}]' in script  # the services: nothing more
    assert "backup" in script and "clusterMonitor" in script


def test_production_is_replicated_budgeted_scaled_and_fenced(rendered):
    objects = rendered["production"]
    assert named(objects, "ConfigMap", "refdesk-config")["data"]["REFDESK_STREAM_REPLICAS"] == "3"
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
    outside = [
        n
        for n, p in policies.items()
        if any(
            "namespaceSelector" in f or "ipBlock" in f
            for r in p["spec"].get("ingress", [])
            for f in r.get("from", [])
        )
    ]
    assert sorted(outside) == ["gateway-from-ingress", "metrics-from-monitoring", "tickets-mail"]
    assert of_kind(objects, "Ingress")["gateway"]["spec"]["tls"]
    assert of_kind(objects, "CronJob")["mongodb-backup"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def _reaches(
    policies: dict[str, Any], source: dict[str, str], target: dict[str, str], port: int
) -> bool:
    """Egress from `source` and ingress to `target` both allow `port` between them."""

    def allowed(direction: str, own: dict[str, str], peer: dict[str, str]) -> bool:
        key = "to" if direction == "egress" else "from"
        for policy in policies.values():
            if not _selects(policy["spec"]["podSelector"], own):
                continue
            for rule in policy["spec"].get(direction, []):
                peers = rule.get(key)
                if peers is not None and not any(
                    "podSelector" in p
                    and "namespaceSelector" not in p
                    and _selects(p["podSelector"], peer)
                    for p in peers
                ):
                    continue
                if any(p.get("port") in (port, None) for p in rule.get("ports", [{}])):
                    return True
        return False

    return allowed("egress", source, target) and allowed("ingress", target, source)


def test_the_day_one_job_and_the_backups_reach_what_they_need(rendered):
    objects = rendered["production-all"]
    policies = of_kind(objects, "NetworkPolicy")
    templates = pod_specs(objects)
    [admin] = [t for w, t in templates.items() if w.startswith("Job/refdesk-bootstrap-")]
    labels = admin["metadata"]["labels"]
    container = admin["spec"]["containers"][0]
    assert container["args"][:2] == ["refdesk-admin", "bootstrap"]
    nats, mongodb = {"app.kubernetes.io/name": "nats"}, {"app.kubernetes.io/name": "mongodb"}
    assert _reaches(policies, labels, nats, 4222) and _reaches(policies, labels, mongodb, 27017)
    backup = templates["CronJob/mongodb-backup"]["metadata"]["labels"]
    assert _reaches(policies, backup, mongodb, 27017) and not _reaches(policies, backup, nats, 4222)
    # The check can fail: the gateway is not let into MongoDB's members' replication port.
    assert not _reaches(policies, {"app.kubernetes.io/name": "refdesk"}, nats, 6222)


def test_options_openshift_monitoring_smtp_and_external_mongodb(rendered):
    everything = rendered["production-all"]
    for where, template in pod_specs(everything).items():
        context = template["spec"].get("securityContext", {})
        assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(context), where
        assert context["runAsNonRoot"] is True, where
    dns = of_kind(everything, "NetworkPolicy")["dns"]["spec"]["egress"]
    assert {p["port"] for p in dns[0]["ports"]} == {53, 5353}
    assert dns[1]["to"] == [{"ipBlock": {"cidr": "169.254.20.10/32"}}]
    smtp = of_kind(everything, "Service")["tickets-smtp"]["spec"]
    assert smtp["type"] == "LoadBalancer" and smtp["externalTrafficPolicy"] == "Local"
    assert smtp["loadBalancerSourceRanges"] == ["198.51.100.25/32"]
    assert set(of_kind(everything, "PodMonitor")) == {"refdesk"} and of_kind(
        everything, "PrometheusRule"
    )
    external = rendered["production-external-mongodb"]
    assert "mongodb" not in of_kind(external, "StatefulSet")
    assert not [o for o in external if o["metadata"]["name"].startswith("mongodb-init")]
    egress = of_kind(external, "NetworkPolicy")["services-to-nats-and-mongodb"]["spec"]["egress"]
    assert egress[1]["to"] == [{"ipBlock": {"cidr": "203.0.113.0/28"}}]


def test_dev_is_one_of_each_without_tls(rendered):
    objects = rendered["dev"]
    assert all(d["spec"]["replicas"] == 1 for d in of_kind(objects, "Deployment").values())
    assert not of_kind(objects, "HorizontalPodAutoscaler")
    conf = named(objects, "ConfigMap", "nats-config")["data"]["nats.conf"]
    assert "tls" not in conf and "cluster" not in conf
    [init] = [o for o in objects if o["metadata"]["name"].startswith("mongodb-init-")]
    assert init["spec"]["template"]["spec"]["containers"][0]["env"][0] == {
        "name": "MEMBERS",
        "value": "1",
    }


def test_the_security_doc_states_each_users_nats_reach():
    """docs/security.md's "NATS reach" table is the one the permissions are made from."""
    from deploy.local import nats_auth

    doc = (ROOT / "docs" / "security.md").read_text()
    assert nats_auth.reach_table() in doc, "paste nats_auth.reach_table() into docs/security.md"
