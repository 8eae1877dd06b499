"""The Jobs of deploy/k8s: the MongoDB replica set and its users (base), and the day-one
`refdesk-admin bootstrap` (components/day-one).

A Job's pod template cannot be changed once it exists, so `kubectl apply` of a changed Job
fails. Each is named by a hash of its own spec: a change here is a new Job, which apply
creates; the finished one is deleted by ttlSecondsAfterFinished.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from deploy.k8s import credentials

MONGO_IMAGE = "mongo"
MONGODB_CA = credentials.MONGODB_CA

# Idempotent: initiates the replica set once, then creates or updates each user with the
# password its Secret holds (so a rerun after a password change in the Secret applies it).
# Least roles: the services readWrite on their database only; backups `backup` and
# `restore`; the exporter `clusterMonitor` and reading `local` (the oplog's window).
MONGODB_INIT_SCRIPT = """\
const env = process.env;
const tls = `tls=true&tlsCAFile=${env.CA_FILE}`;
const hosts = [...Array(parseInt(env.MEMBERS)).keys()].map(i => `mongodb-${i}.mongodb:27017`);
const seed = connect(`mongodb://${hosts[0]}/admin?directConnection=true&${tls}`);
seed.auth(env.ROOT_USERNAME, env.ROOT_PASSWORD);
try {
  seed.adminCommand({replSetGetStatus: 1});
  print("replica set already initiated");
} catch (e) {
  if (e.codeName !== "NotYetInitialized") throw e;
  const members = hosts.map((host, i) => ({_id: i, host}));
  seed.adminCommand({replSetInitiate: {_id: "rs0", members}});
  print("replica set initiated");
}
const admin = connect(`mongodb://${hosts.join(",")}/admin?replicaSet=rs0&${tls}`);
admin.auth(env.ROOT_USERNAME, env.ROOT_PASSWORD);
function ensure(user, pwd, roles) {
  if (admin.getUser(user)) { admin.updateUser(user, {pwd, roles}); print(`updated ${user}`); }
  else { admin.createUser({user, pwd, roles}); print(`created ${user}`); }
}
ensure(env.APP_USERNAME, env.APP_PASSWORD, [{role: "readWrite", db: env.DATABASE}]);
ensure(env.BACKUP_USERNAME, env.BACKUP_PASSWORD,
       [{role: "backup", db: "admin"}, {role: "restore", db: "admin"}]);
ensure(env.METRICS_USERNAME, env.METRICS_PASSWORD,
       [{role: "clusterMonitor", db: "admin"}, {role: "read", db: "local"}]);
"""

HARDENED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _named(base: str, spec: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return f"{base}-{digest[:8]}"


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _job(base: str, labels: dict[str, str], pod: dict[str, Any], ttl: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "backoffLimit": 30,
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "automountServiceAccountToken": False,
                "restartPolicy": "OnFailure",
                **pod,
            },
        },
    }
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": _named(base, spec), "labels": labels},
        "spec": spec,
    }


def mongodb_init() -> dict[str, Any]:
    """The replica set of 3 members (the dev overlay patches MEMBERS) and its users."""
    users = [
        _secret_env(f"{role.upper()}_{part.upper()}", "refdesk-mongodb", f"{role}-{part}")
        for role in credentials.MONGODB_USERS
        for part in ("username", "password")
    ]
    container = {
        "name": "initiate",
        "image": MONGO_IMAGE,
        "command": ["mongosh", "--nodb", "--quiet", "--eval", MONGODB_INIT_SCRIPT],
        "env": [
            {"name": "MEMBERS", "value": "3"},
            {"name": "DATABASE", "value": credentials.MONGODB_DATABASE},
            {"name": "CA_FILE", "value": f"{MONGODB_CA}/ca.crt"},
            *users,
        ],
        "securityContext": HARDENED,
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "home", "mountPath": "/data/db"},
            {"name": "mongodb-ca", "mountPath": MONGODB_CA, "readOnly": True},
        ],
    }
    pod = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 999,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            # mongosh writes its history and logs under $HOME (/data/db in this image).
            {"name": "home", "emptyDir": {}},
            {
                "name": "mongodb-ca",
                "secret": {
                    "secretName": "mongodb-tls",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                },
            },
        ],
    }
    return _job("mongodb-init", {"app.kubernetes.io/name": "mongodb-init"}, pod, ttl=600)


def bootstrap(version: str) -> dict[str, Any]:
    """`refdesk-admin bootstrap`: the consortium and its first admin, whose password is the
    `refdesk-admin` Secret's. Tagged here with the release (`version`): a component comes
    after the base's `images:`, and an overlay's entry for refdesk-admin names the
    registry only. It runs as a refdesk pod (label app.kubernetes.io/name:
    refdesk), so the network policies let it reach NATS (as the admin user) and MongoDB
    (as the services' user)."""
    labels = {"app.kubernetes.io/name": "refdesk", "app.kubernetes.io/component": "admin"}
    container = {
        "name": "bootstrap",
        "image": f"refdesk-admin:{version}",
        "args": ["refdesk-admin", "bootstrap", "--password-file", "/run/refdesk-admin/password"],
        "envFrom": [{"configMapRef": {"name": "refdesk-config"}}],
        "env": [
            _secret_env("REFDESK_NATS_URL", "refdesk-nats", "admin-url"),
            {"name": "REFDESK_NATS_CA_FILE", "value": "/etc/refdesk/nats-ca/ca.crt"},
            _secret_env("REFDESK_MONGODB_URI", "refdesk-mongodb", "uri"),
        ],
        "securityContext": HARDENED,
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "password", "mountPath": "/run/refdesk-admin", "readOnly": True},
            {"name": "nats-ca", "mountPath": "/etc/refdesk/nats-ca", "readOnly": True},
            {"name": "mongodb-ca", "mountPath": MONGODB_CA, "readOnly": True},
        ],
    }
    pod = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            {"name": "password", "secret": {"secretName": "refdesk-admin"}},
            {
                "name": "nats-ca",
                "secret": {
                    "secretName": "nats-tls",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                },
            },
            {
                "name": "mongodb-ca",
                "secret": {
                    "secretName": "mongodb-tls",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                },
            },
        ],
    }
    # Kept when finished (no TTL): a finished Job that is applied again unchanged is left
    # alone, where a deleted one would be made and run again.
    return _job("refdesk-bootstrap", labels, pod, ttl=None)
