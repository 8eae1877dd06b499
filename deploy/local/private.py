"""The local run's files are its user's alone: the NATS users' passwords (the admin's
among them) and the configuration that holds them, the JWT secret, the MongoDB files, mail
to patrons and the logs. Files are 0600 and directories 0700, whatever the umask of the
process that makes them: the launcher and every process it starts run with `UMASK`, and
what an earlier run left behind is tightened at start."""

from __future__ import annotations

import os
from pathlib import Path

UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read or write: created 0600 (never readable by
    others for a moment), and made 0600 if it was there before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), FILE_MODE)
        handle.write(text)


def private_dir(path: Path) -> Path:
    """A directory only its owner may enter, made if need be."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(DIR_MODE)
    return path


def tighten(root: Path) -> None:
    """Make what is under `root` its owner's alone: directories 0700, files 0600.
    Symbolic links are left alone, and not followed."""
    if root.is_symlink() or not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, DIR_MODE)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, FILE_MODE)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
