"""The credentials one cluster needs, made fresh: NATS users, MongoDB users, the JWT key.

nats-server reads a `$VARIABLE` taken from the environment as an unquoted configuration
token, so a password that starts with `-`, or with digits then `-`, did not parse and NATS
did not start (about one install in ten). The server therefore never gets its passwords
from the environment: it includes `nats-users.conf`, a file of this module's making in the
`refdesk-nats` Secret, where each password is a quoted string, whatever characters it
holds. The services get theirs in a URL, percent-encoded.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path
from urllib.parse import quote

from deploy.local import nats_auth

NATS_USERS = (*nats_auth.SERVICES, nats_auth.ADMIN)
# What nats.conf includes, relative to its own directory (the Secret is mounted there).
NATS_USERS_FILE = "users/nats-users.conf"
MONGODB_DATABASE = "refdesk"
MONGODB_CA = "/etc/refdesk/mongodb-ca"
# MongoDB users: the services' (readWrite on the refdesk database, nothing else), backups'
# (mongodump and mongorestore), the exporter's (cluster monitoring), and root, which only
# the init Job uses.
MONGODB_USERS = {
    "app": "refdesk",
    "backup": "refdesk-backup",
    "metrics": "refdesk-metrics",
    "root": "root",
}
# Letters and digits only: no quoting question anywhere (URLs, shells, configuration).
ALPHABET = string.ascii_letters + string.digits


def password(length: int = 40) -> str:
    """About 238 bits."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def password_variable(user: str) -> str:
    return f"NATS_{user.upper()}_PASSWORD"


def nats_quoted(text: str) -> str:
    r"""`text` as a NATS configuration string: in double quotes, with the escapes it knows
    (\\, \", \t, \n, \r, \xXX for other control characters); anything else as is."""
    named = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}
    out = []
    for char in text:
        if char in named:
            out.append(named[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def nats_users_conf(passwords: dict[str, str]) -> str:
    """The variables nats.conf's users read their passwords from, each a quoted string."""
    return "".join(f"{password_variable(u)}: {nats_quoted(p)}\n" for u, p in passwords.items())


def nats_url(user: str, secret: str, tls: bool) -> str:
    """The `nats` Service of the namespace the services run in (whichever it is)."""
    scheme = "tls" if tls else "nats"
    return f"{scheme}://{quote(user, safe='')}:{quote(secret, safe='')}@nats:4222"


def mongodb_uri(user: str, secret: str, members: int, database: str) -> str:
    """The replica set's URI, over TLS (the CA is mounted at MONGODB_CA in every pod that
    connects), with majority writes."""
    hosts = ",".join(f"mongodb-{i}.mongodb:27017" for i in range(members))
    query = f"replicaSet=rs0&authSource=admin&w=majority&tls=true&tlsCAFile={MONGODB_CA}/ca.crt"
    return f"mongodb://{quote(user, safe='')}:{quote(secret, safe='')}@{hosts}/{database}?{query}"


def local_mongodb_uri(user: str, secret: str) -> str:
    """The exporter's: the member next to it in the same pod (its certificate names the
    member, not localhost)."""
    query = (
        f"directConnection=true&authSource=admin&tls=true&tlsCAFile={MONGODB_CA}/ca.crt"
        "&tlsAllowInvalidHostnames=true"
    )
    return f"mongodb://{quote(user, safe='')}:{quote(secret, safe='')}@localhost:27017/?{query}"


def fresh(tls: bool = True, members: int = 3) -> dict[str, dict[str, str]]:
    """Each Secret's keys and values (before base64): `refdesk-nats`, `refdesk-mongodb`,
    `refdesk-secrets`, `refdesk-admin` (the first consortium admin's password). `tls`: the
    NATS URLs' (MongoDB is reached over TLS always)."""
    nats_passwords = {user: password() for user in NATS_USERS}
    nats = {f"{u}-url": nats_url(u, p, tls) for u, p in nats_passwords.items()}
    nats["nats-users.conf"] = nats_users_conf(nats_passwords)
    mongo: dict[str, str] = {}
    for role, user in MONGODB_USERS.items():
        secret = password()
        mongo[f"{role}-username"] = user
        mongo[f"{role}-password"] = secret
        if role == "metrics":
            mongo["metrics-uri"] = local_mongodb_uri(user, secret)
        elif role != "root":
            # Backups name the database on mongodump's command line, not in the URI.
            database = MONGODB_DATABASE if role == "app" else ""
            mongo[f"{role}-uri"] = mongodb_uri(user, secret, members, database)
    mongo["uri"] = mongo.pop("app-uri")
    # mongod reads a key file of base64 characters only.
    mongo["keyfile"] = secrets.token_hex(48)
    return {
        "refdesk-nats": nats,
        "refdesk-mongodb": mongo,
        "refdesk-secrets": {"jwt-secret": secrets.token_urlsafe(48), "jwt-previous-secret": ""},
        "refdesk-admin": {"password": password(24)},
    }


def write_dir(target: Path, tls: bool = True, members: int = 3) -> list[Path]:
    """The Secrets as files for the overlay's secretGenerator: `<secret>.env` for each, and
    `nats-users.conf` (several lines), written only where none are yet: rerunning never
    replaces the credentials a cluster runs with."""
    made = fresh(tls=tls, members=members)
    nats_users = made["refdesk-nats"].pop("nats-users.conf")
    files = {
        f"{name}.env": "".join(f"{key}={value}\n" for key, value in data.items())
        for name, data in made.items()
    }
    files["nats-users.conf"] = nats_users
    existing = sorted(name for name in files if (target / name).exists())
    if existing:
        raise FileExistsError(f"already in {target}, not replaced: {', '.join(existing)}")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for name, text in files.items():
        path = target / name
        path.touch(mode=0o600)
        path.write_text(text)
        written.append(path)
    return written
