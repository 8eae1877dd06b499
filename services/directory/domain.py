"""The rules of configuration, free of I/O: who may change what, how records are named,
which fallback chains and passwords are acceptable. Each check raises a `Refusal` whose
message names the field; a refusal means nothing is written.

Scope never leaks: an admin acting on another institution's record is told it does not
exist, and the naming rule is checked before any lookup, so a refused name says nothing of
who else has it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared import chains
from shared.errors import Refusal
from shared.schemas.directory import Principal
from shared.schemas.records import Account, Institution, Partnership, Queue, Snippet, Widget

MIN_PASSWORD = 12


def may_see(principal: Principal, owner: str) -> bool:
    """A consortium admin sees every institution's records; anyone else their own."""
    return principal.role == "consortium_admin" or principal.institution == owner


def check_admin(things: str, owner: str, principal: Principal) -> None:
    """An institution admin manages their own institution's `things`; a consortium admin
    everyone's; an operator nobody's. Another institution does not exist for an
    institution admin: acting on it is `not_found`, never a hint of what it holds."""
    if principal.role == "operator":
        raise Refusal("forbidden", f"only admins may change {things}")
    if not may_see(principal, owner):
        raise Refusal("not_found", f"institution: no institution {owner}")


def check_stored(
    stored: Account | Queue | Widget | Snippet | None, what: str, principal: Principal
) -> None:
    """A record acted on must exist and be the principal's to see: anything else does not
    exist for them (the message names only the kind, never the record)."""
    if stored is None or not may_see(principal, stored.institution):
        raise Refusal("not_found", f"no such {what}")


def check_replace(
    stored: Account | Queue | Widget | None,
    record: Account | Queue | Widget,
    kind: str,
    principal: Principal,
) -> None:
    """A replaced record exists for the principal, and keeps its institution: its name
    says where it belongs, so moving it means creating a new one."""
    check_stored(stored, kind, principal)
    assert stored is not None
    if stored.institution != record.institution:
        raise Refusal("invalid", f"institution: a {kind} cannot move to another institution")


def check_named(name: str, field: str, expected_prefix: str, example: str) -> None:
    """A user or queue name starts with its own consortium and institution."""
    if name != expected_prefix and not name.startswith(f"{expected_prefix}-"):
        raise Refusal(
            "invalid", f"{field}: {name!r} must look like {example} (the record's own prefix)"
        )


def check_institution(
    record: Institution, principal: Principal, consortium: str, stored: Institution | None
) -> None:
    """A consortium admin creates and changes institutions; a library's own admin may
    change its settings (tags, retention, time zone) but not what kind of member it is,
    which decides where other libraries' chats go."""
    if principal.role != "consortium_admin":
        if stored is None or not principal.may_manage(record.name):
            raise Refusal("forbidden", "only a consortium admin creates or manages institutions")
        if record.kind != stored.kind:
            raise Refusal("forbidden", "kind: only a consortium admin changes a member's kind")
    if record.institution != record.name:
        raise Refusal("invalid", "institution: must equal name (an institution is its own)")
    if record.name == consortium:
        raise Refusal("invalid", f"name: {consortium!r} is the consortium's own name")


def check_queue_name(queue: Queue, consortium: str) -> None:
    prefix = f"{consortium}-{queue.institution}"
    check_named(queue.name, "name", prefix, f"'{prefix}' or '{prefix}-<suffix>'")


def check_account(
    account: Account,
    principal: Principal,
    consortium: str,
    institutions: Mapping[str, Institution],
) -> None:
    """Who may hold which role where, and the name that goes with it."""
    if account.role == "consortium_admin":
        if principal.role != "consortium_admin":
            raise Refusal("forbidden", "role: only a consortium admin grants that role")
        if account.institution != consortium:
            raise Refusal("invalid", f"institution: a consortium admin belongs to {consortium}")
        check_named(account.username, "username", consortium, f"'{consortium}-<name>'")
        return
    check_admin("staff accounts", account.institution, principal)
    if account.role == "institution_admin" and principal.role != "consortium_admin":
        raise Refusal("forbidden", "role: only a consortium admin appoints institution admins")
    if account.institution not in institutions:
        raise Refusal("invalid", f"institution: no institution {account.institution}")
    prefix = f"{consortium}-{account.institution}"
    check_named(account.username, "username", prefix, f"'{prefix}-<name>'")


def check_keeps_consortium_admin(change: Account, accounts: Iterable[Account]) -> None:
    """The consortium always keeps one enabled consortium admin: without one nobody could
    create an institution or undo the change."""
    still = change.role == "consortium_admin" and not change.disabled
    others = [
        a
        for a in accounts
        if a.username != change.username and a.role == "consortium_admin" and not a.disabled
    ]
    if not still and not others:
        raise Refusal("conflict", "the consortium must keep at least one enabled consortium admin")


def check_password(password: str, common: frozenset[str]) -> None:
    if len(password) < MIN_PASSWORD:
        raise Refusal("invalid", f"password: use at least {MIN_PASSWORD} characters")
    if password.lower() in common:
        raise Refusal("invalid", "password: that one is on a list of common passwords")


def token_generation(stored: Account | None, change: Account, new_password: bool) -> int:
    """The token generation an account is saved with: a new account starts at 0; a new
    password, disabling it or another role ends every token signed before, for good (the
    gateway honours none older than the account's generation, so enabling it again or
    changing the role back brings none back). Whatever the client sent is ignored."""
    if stored is None:
        return 0
    ends = (
        new_password
        or (change.disabled and not stored.disabled)
        or change.role != stored.role
        or change.institution != stored.institution
    )
    return stored.token_generation + 1 if ends else stored.token_generation


def may_set_password(principal: Principal, target: Account) -> bool:
    """Everyone may change their own password; an admin those of the accounts they manage."""
    if principal.username == target.username:
        return True
    if principal.role == "consortium_admin":
        return True
    return principal.role == "institution_admin" and (
        target.institution == principal.institution and target.role == "operator"
    )


def check_widget_queue(widget: Widget, queue: Queue | None) -> None:
    """A widget routes to a queue of its own library; the queue's chain reaches the
    backup service."""
    if queue is None or queue.institution != widget.institution:
        raise Refusal("invalid", f"queue: {widget.institution} has no queue {widget.queue}")


def check_fallback(queue: Queue, stored: Mapping[str, Queue], principal: Principal) -> None:
    """Every fallback queue exists; one of another institution (a backup service's) is
    added to a chain only by a consortium admin (a library admin editing the hours keeps
    the chain the coordinator set); and the chain never loops."""
    current = stored.get(queue.name)
    kept = set(current.fallback) if current is not None else set()
    for name in queue.fallback:
        other = stored.get(name)
        if other is None:
            raise Refusal("invalid", f"fallback: no queue {name}")
        crossing = other.institution != queue.institution
        if crossing and name not in kept and principal.role != "consortium_admin":
            raise Refusal(
                "forbidden",
                f"fallback: {name} belongs to {other.institution}; only a consortium admin "
                "may chain another institution's queue",
            )
    links = {q.name: q.fallback for q in stored.values()} | {queue.name: queue.fallback}
    cycle = chains.find_cycle(queue.name, links)
    if cycle:
        raise Refusal("invalid", f"fallback: {' -> '.join(cycle)} would loop")


def queue_in_use(name: str, queues: Iterable[Queue], widgets: Iterable[Widget]) -> None:
    users = sorted(q.name for q in queues if name in q.fallback)
    on = sorted(w.id for w in widgets if w.queue == name)
    if users or on:
        raise Refusal("conflict", f"{name} is still used by queues {users} and widgets {on}")


def check_partnership(
    record: Partnership,
    principal: Principal,
    consortium: str,
    institutions: Mapping[str, Institution],
) -> None:
    if principal.role != "consortium_admin":
        raise Refusal("forbidden", "only a consortium admin sets up partner coverage")
    if record.institution != consortium:
        raise Refusal("invalid", f"institution: a partnership belongs to {consortium}")
    for name in record.institutions:
        if name not in institutions:
            raise Refusal("invalid", f"institutions: no institution {name}")


def check_snippet(
    record: Snippet, principal: Principal, consortium: str, institutions: Mapping[str, Institution]
) -> None:
    """A library's admin keeps its snippets; the consortium admin those of every library
    and the consortium-wide ones. The name starts with whose it is: `hill (renewals)`."""
    owner = record.institution
    if owner == consortium:
        if principal.role != "consortium_admin":
            raise Refusal("forbidden", "only a consortium admin keeps consortium-wide snippets")
    else:
        check_admin("snippets", owner, principal)
        if owner not in institutions:
            raise Refusal("invalid", f"institution: no institution {owner}")
    if not record.name.startswith(f"{owner} ("):
        raise Refusal("invalid", f"name: {record.name!r} must look like '{owner} (<description>)'")
