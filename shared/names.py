"""The consortium naming convention: one place that says which names are valid.

Every part is lower-case ASCII letters and digits, so that names are safe as NATS
subject tokens and key-value keys without escaping.
"""

from __future__ import annotations

import re

_PART = r"[a-z0-9]+"
_PART_RE = re.compile(rf"^{_PART}$")
_OPERATOR_RE = re.compile(rf"^({_PART})-({_PART})-({_PART})$")
_ADMIN_RE = re.compile(rf"^({_PART})-({_PART})$")
_QUEUE_RE = re.compile(rf"^({_PART})-({_PART})(?:-({_PART}))?$")
_SNIPPET_RE = re.compile(rf"^({_PART}) \(([^()]+)\)$")


class NameError_(ValueError):
    """A name that breaks the convention; the message shows the expected form."""


def check_part(value: str, what: str) -> str:
    if not _PART_RE.match(value):
        raise NameError_(f"{what} {value!r} must be lower-case letters and digits, e.g. 'hill'")
    return value


def check_user(value: str) -> str:
    if not _OPERATOR_RE.match(value):
        raise NameError_(
            f"user name {value!r} must look like <consortium>-<institution>-<name>, "
            "e.g. 'mobius-mobstate-janedoe' (lower-case letters and digits in each part)"
        )
    return value


def check_consortium_admin(value: str) -> str:
    if not (_ADMIN_RE.match(value) or _OPERATOR_RE.match(value)):
        raise NameError_(
            f"consortium admin name {value!r} must look like <consortium>-<name>, "
            "e.g. 'mobius-admin'"
        )
    return value


def check_queue(value: str) -> str:
    if not _QUEUE_RE.match(value):
        raise NameError_(
            f"queue name {value!r} must look like <consortium>-<institution> or "
            "<consortium>-<institution>-<suffix>, e.g. 'mobius-mobstate-healthsciences'"
        )
    return value


def check_snippet(value: str) -> str:
    if not _SNIPPET_RE.match(value):
        raise NameError_(
            f"snippet name {value!r} must look like '<institution> (<description>)', "
            "e.g. 'mobstate (renewals)'"
        )
    return value


def institution_of_queue(queue: str) -> str:
    """The institution part of a valid queue name."""
    return check_queue(queue).split("-")[1]
