"""The bundled list of passwords too common to accept, whatever their length."""

from __future__ import annotations

from functools import cache
from pathlib import Path

LIST = Path(__file__).with_name("common-passwords.txt")


@cache
def common_passwords() -> frozenset[str]:
    lines = LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )
