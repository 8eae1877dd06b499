"""The `refdesk-admin` command line (see refdesk/admin/__init__.py, and
docs/operations.md, "refdesk-admin")."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

from refdesk import admin
from refdesk.admin import backup, bootstrap, check, rotate
from services.gateway.settings import GatewaySettings
from shared.settings import CommonSettings


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(
        prog="refdesk-admin",
        description=admin.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command = made.add_subparsers(dest="command", required=True)
    boot = command.add_parser("bootstrap", help="the consortium's first admin (idempotent)")
    boot.add_argument("--username", help="<consortium>-<name> (default: <consortium>-admin)")
    boot.add_argument("--display-name", default="Consortium Admin")
    boot.add_argument(
        "--password-file", type=Path, help="a file holding the password (default: prompt)"
    )
    command.add_parser("check", help="reachability and settings; exit 1 on any problem")
    turn = command.add_parser("rotate", help="a new token signing key, the old one honoured")
    turn.add_argument("secret", choices=["jwt-secret"])
    turn.add_argument("--env-file", type=Path, help="write the keys here (default: print them)")
    save = command.add_parser("backup", help="every collection, as mongodump lays it out")
    save.add_argument("target", type=Path, help="a directory (or the archive with --archive)")
    save.add_argument("--archive", action="store_true", help="write one .tar.gz file")
    back = command.add_parser("restore", help="a backup into an empty database")
    back.add_argument("source", type=Path, help="a backup directory or .tar.gz archive")
    back.add_argument("--from-db", help="the dumped database, if the backup holds several")
    return made


def read_password(path: Path | None) -> str:
    if path is not None:
        try:
            return path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise bootstrap.Failed(f"cannot read {path}: {exc.strerror}") from None
    if not sys.stdin.isatty():
        raise bootstrap.Failed("no terminal to ask the password on: give --password-file")
    first = getpass.getpass("Password for the new admin: ")
    if getpass.getpass("The same again: ") != first:
        raise bootstrap.Failed("the two passwords differ")
    return first


def run(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    if args.command == "bootstrap":
        username = args.username or f"{settings.consortium}-admin"
        password = read_password(args.password_file)
        print(asyncio.run(bootstrap.bootstrap(settings, username, args.display_name, password)))
    elif args.command == "check":
        problems = asyncio.run(check.check(settings, print))
        if problems:
            print(f"{len(problems)} problem(s)", file=sys.stderr)
            return 1
    elif args.command == "rotate":
        gateway = GatewaySettings()
        keys = rotate.new_keys(gateway)
        if args.env_file is None:
            print("".join(f"{name}={value}\n" for name, value in keys.items()), end="")
            print(rotate.steps(gateway, "the two lines above"), file=sys.stderr)
        else:
            rotate.write_env(args.env_file, keys)
            print(rotate.steps(gateway, str(args.env_file)))
    elif args.command == "backup":
        counts = asyncio.run(backup.backup(settings, args.target, args.archive))
        print(f"backed up {settings.mongodb_db} to {args.target}: {backup.summary(counts)}")
    else:
        counts = asyncio.run(backup.restore(settings, args.source, args.from_db))
        print(f"restored into {settings.mongodb_db}: {backup.summary(counts)}")
    return 0


def main() -> None:
    args = parser().parse_args()
    try:
        sys.exit(run(args))
    except (bootstrap.Failed, rotate.Failed, backup.Failed) as failed:
        sys.exit(f"refdesk-admin {args.command}: {failed}")


if __name__ == "__main__":
    main()
