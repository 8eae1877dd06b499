"""The credentials `python -m deploy.k8s.render --secrets` makes always start NATS: nats-server
itself (`-t`) accepts the production and dev configurations with 1,000 freshly made sets of
passwords, and with the passwords that used to stop it (a leading `-`, digits then `-`)
and any other character; the same passwords given the old way (as `$VARIABLE`s from the
environment) are refused, so the check can fail. The Secrets carry what the manifests ask
for, and rerunning never replaces a cluster's credentials."""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from deploy.k8s import credentials, render
from deploy.local.processes import tool

SETS = 1000
# What broke nats-server when it read passwords from the environment, and what else a
# password might hold.
AWKWARD = [
    "-startsWithDash",
    "12-digitsThenDash",
    "0-",
    "1e5",
    "true",
    "2024-01-01",
    'quote"inside',
    "back\\slash",
    "hash#and;semi}brace{",
    "space inside",
    "$NOT_A_VARIABLE",
    "ünïcödé",
    "tab\tand\x01control",
]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A certificate and key as cert-manager would make them (the production
    configuration names them)."""
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=nats", "-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.crt")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    shutil.copy(folder / "tls.crt", folder / "ca.crt")
    return folder


def configuration(folder: Path, users_conf: str, cluster: bool, tls: Path) -> Path:
    """nats.conf as the StatefulSet mounts it: the generated file, and the Secret's
    nats-users.conf at the path it includes."""
    users = folder / credentials.NATS_USERS_FILE
    users.parent.mkdir(parents=True)
    users.write_text(users_conf)
    conf = folder / "nats.conf"
    conf.write_text(render.nats_conf(cluster=cluster).replace(render.NATS_TLS, str(tls)))
    return conf


def nats_check(conf: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("nats-server"), "-t", "-c", str(conf)],
        env={**os.environ, "POD_NAME": "nats-0", **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_nats_accepts_a_thousand_fresh_sets_of_credentials(tmp_path: Path, certificates: Path):
    confs = []
    for i in range(SETS):
        made = credentials.fresh(tls=i % 2 == 0)["refdesk-nats"]
        confs.append(
            configuration(tmp_path / f"set-{i}", made["nats-users.conf"], i % 2 == 0, certificates)
        )
    # Two at a time: the machine's two cores, one short process each.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(nats_check, confs))
    refused = [
        (c, r.stdout + r.stderr) for c, r in zip(confs, results, strict=True) if r.returncode
    ]
    assert refused == []


@pytest.mark.parametrize("cluster", [True, False], ids=["production", "dev"])
def test_nats_accepts_the_passwords_that_stopped_it(
    tmp_path: Path, certificates: Path, cluster: bool
):
    users = list(credentials.NATS_USERS)
    passwords = {user: AWKWARD[i % len(AWKWARD)] for i, user in enumerate(users)}
    checked = nats_check(
        configuration(tmp_path, credentials.nats_users_conf(passwords), cluster, certificates)
    )
    assert checked.returncode == 0, checked.stderr
    for password in AWKWARD:  # every one of them, not only those the users drew
        conf = configuration(
            tmp_path / password.encode().hex(),
            credentials.nats_users_conf(dict.fromkeys(users, password)),
            cluster,
            certificates,
        )
        result = nats_check(conf)
        assert result.returncode == 0, (password, result.stderr)


def test_the_old_way_refuses_them(tmp_path: Path):
    """Read from the environment as a `$VARIABLE`, the same passwords stop nats-server."""
    conf = tmp_path / "old.conf"
    conf.write_text(
        'authorization {users: [{user: "gateway", password: $NATS_GATEWAY_PASSWORD}]}\n'
    )
    assert nats_check(conf, {"NATS_GATEWAY_PASSWORD": "anything"}).returncode == 0
    for password in ("-startsWithDash", "12-digitsThenDash"):
        refused = nats_check(conf, {"NATS_GATEWAY_PASSWORD": password})
        assert refused.returncode != 0 and "could not be parsed" in refused.stderr


def test_a_broken_configuration_is_refused(tmp_path: Path, certificates: Path):
    made = credentials.fresh()["refdesk-nats"]["nats-users.conf"]
    conf = configuration(tmp_path, made, True, certificates)
    conf.write_text(conf.read_text().replace("authorization {", "authorization {{"))
    assert nats_check(conf).returncode != 0
    missing = configuration(tmp_path / "missing", "", True, certificates)
    assert nats_check(missing).returncode != 0  # a user without its password variable


def test_each_service_url_carries_the_password_the_server_has():
    made = credentials.fresh()
    nats = made["refdesk-nats"]
    conf = nats["nats-users.conf"]
    for user in credentials.NATS_USERS:
        url = urlsplit(nats[f"{user}-url"])
        assert url.scheme == "tls" and url.hostname == "nats" and url.port == 4222
        assert unquote(url.username or "") == user
        password = unquote(url.password or "")
        assert f'{credentials.password_variable(user)}: "{password}"' in conf
    mongo = made["refdesk-mongodb"]
    for role in ("uri", "backup-uri"):
        uri = urlsplit(mongo[role])
        assert "tls=true" in uri.query and "replicaSet=rs0" in uri.query, role
    assert urlsplit(mongo["uri"]).username == credentials.MONGODB_USERS["app"]
    assert len({mongo[f"{r}-password"] for r in credentials.MONGODB_USERS}) == 4


def test_fresh_credentials_never_replace_a_cluster_s(tmp_path: Path):
    written = credentials.write_dir(tmp_path)
    before = {p: p.read_text() for p in written}
    assert all(p.stat().st_mode & 0o077 == 0 for p in written)
    with pytest.raises(FileExistsError):
        credentials.write_dir(tmp_path)
    assert {p: p.read_text() for p in written} == before
