"""Who may see and do what: an account's tokens honoured only while it is as it was signed;
which pages may use a widget; which institution a request is about; who reads which
configuration records, ends whose session, announces, reads a direct conversation,
monitors a queue, sends a snippet, takes chats; which patron sockets are let in; and where
an operator may transfer a chat."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from shared import names
from shared.errors import Refusal
from shared.schemas.records import Account, Institution, Partnership, Queue, Snippet, Widget


def origin_of(url: str) -> str:
    """`https://host:port` of a URL, as a browser's Origin header says it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(origin: str | None, widget: Widget, own_origin: str) -> bool:
    """A browser page may use a widget's public endpoints only from the widget's allowed
    origins or the gateway's own (its widget page). No Origin: not a browser page, which
    no header could fence anyway."""
    return origin is None or origin.lower() in (own_origin, *widget.allowed_origins)


def frame_ancestors(widget: Widget | None) -> str:
    """Who may frame the widget page: the widget's allowed origins (and the gateway's own
    demo page); an unknown widget: nobody."""
    if widget is None:
        return "frame-ancestors 'none'"
    return " ".join(["frame-ancestors", "'self'", *widget.allowed_origins])


class SignedClaims(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def institution(self) -> str: ...

    @property
    def generation(self) -> int: ...


def current_account(account: Account | None, claims: SignedClaims) -> Account:
    """A staff token is honoured only while its account is as it was when signed: there,
    enabled, with the same role and institution, and no newer token generation (the
    directory moves it on with a new password, a disable or another role, so those end
    every earlier token for good; a token newer than this replica's view is a sign-in the
    view has not caught up with)."""
    if account is None or account.disabled:
        raise Refusal("unauthorized", "this account is disabled; ask your library's admin")
    if (account.role, account.institution) != (claims.role, claims.institution):
        raise Refusal("unauthorized", "your account changed; sign in again")
    if claims.generation < account.token_generation:
        raise Refusal(
            "unauthorized",
            "signed out: the password was changed or the account disabled since; sign in again",
        )
    return account


def session_end_reason(
    account: Account | None, claims: SignedClaims
) -> Literal["account_disabled", "password_changed"] | None:
    """Why an open operator socket must end after its account changed, or None: disabled,
    removed or given another role (`account_disabled`), or its tokens ended by a new
    password (`password_changed`)."""
    try:
        current_account(account, claims)
    except Refusal:
        moved = (
            account is None
            or account.disabled
            or (account.role, account.institution) != (claims.role, claims.institution)
        )
        return "account_disabled" if moved else "password_changed"
    return None


Relation = Literal["own", "home", "partner", "backup"]


def reachable_institutions(
    mine: str, home: str, partners: frozenset[str], backups: frozenset[str]
) -> dict[str, Relation]:
    """Where an operator of `mine` may transfer a chat of `home`'s patron, and what each
    is to them: their own library first, then the patron's, partners and backup services
    (the same reach routing enforces: outside their own library only on purpose)."""
    reach: dict[str, Relation] = {mine: "own"}
    if home not in reach:
        reach[home] = "home"
    for name in sorted(partners):
        reach.setdefault(name, "partner")
    for name in sorted(backups):
        reach.setdefault(name, "backup")
    return reach


class Caller(Protocol):
    """Whoever of staff asks: a REST caller's claims, or an operator's socket."""

    @property
    def username(self) -> str: ...

    @property
    def institution(self) -> str: ...

    @property
    def role(self) -> str: ...


Owned = TypeVar("Owned", Institution, Account, Queue, Widget)


def sees_institution(caller: Caller, institution: str) -> bool:
    """Staff see their own institution's records; a consortium admin everyone's."""
    return caller.role == "consortium_admin" or institution == caller.institution


def visible(thing: Owned | None, what: str, caller: Caller) -> Owned:
    """A configuration record the caller may read: their institution's, or anyone's for
    a consortium admin. Anything else does not exist for them."""
    if thing is None or not sees_institution(caller, thing.institution):
        raise Refusal("not_found", f"no {what}")
    return thing


def in_scope(things: Iterable[Owned], caller: Caller, key: Callable[[Owned], str]) -> list[Owned]:
    """The records the caller may read, in the order of `key`."""
    return sorted((t for t in things if sees_institution(caller, t.institution)), key=key)


def may_read_snippet(caller: Caller, snippet: Snippet, consortium: str) -> bool:
    """A library's snippets and the consortium's are for its staff; a consortium admin
    reads every one."""
    own = (caller.institution, consortium)
    return caller.role == "consortium_admin" or snippet.institution in own


def may_read_partnership(caller: Caller, partnership: Partnership) -> bool:
    """A partnership is read by its members' staff, and by the consortium admin who keeps
    it."""
    return caller.role == "consortium_admin" or caller.institution in partnership.institutions


def scoped_institution(caller: Caller, asked: str | None) -> str:
    """The institution a request is about: the caller's own unless they name another,
    which only a consortium admin may. (A consortium admin's own is the consortium's name,
    which the transcripts service reads as every institution.)"""
    if asked is None or asked == caller.institution:
        return caller.institution
    # It becomes a subject token: `a.b` or `*` must never reach the bus.
    try:
        names.check_part(asked, "institution")
    except ValueError as exc:
        raise Refusal("invalid", f"institution: {exc}") from None
    if caller.role != "consortium_admin":
        raise Refusal("forbidden", "you can only see your own institution")
    return asked


def may_end_session(caller: Caller, account: Account | None, operator: str) -> Account:
    """Whose session an admin may end from outside their desk: an account of their own
    institution (a consortium admin: anyone's). An operator ends no one's; an account
    they may not see does not exist for them. Returns the account."""
    found = visible(account, f"user {operator}", caller)
    if caller.role == "operator":
        raise Refusal("forbidden", "only admins end other people's sessions")
    return found


def may_announce(caller: Caller) -> None:
    """Announcements to every operator are the consortium admin's alone."""
    if caller.role != "consortium_admin":
        raise Refusal("forbidden", "only a consortium admin sends announcements")


def may_read_conversation(caller: Caller, conversation: str) -> None:
    """A direct conversation (`dm:<a>:<b>`) is its two people's, and their admins'; to
    another operator it does not exist. Other conversations are their staff's, which the
    transcripts service scopes."""
    if conversation.startswith("dm:"):
        people = conversation.split(":")[1:]
        if caller.username not in people and caller.role == "operator":
            raise Refusal("not_found", "no such conversation")


def may_monitor(caller: Caller, queue: Queue | None, partners: frozenset[str]) -> bool:
    """A queue an operator may watch and answer: their institution's, a partner's, or
    any for a consortium admin."""
    return queue is not None and (
        queue.institution == caller.institution
        or caller.role == "consortium_admin"
        or queue.institution in partners
    )


def usable_snippet(snippet: Snippet | None, name: str, institution: str, consortium: str) -> str:
    """A snippet's text, if an operator of `institution` may send it: their library's or
    the consortium's, whatever their role (unlike reading snippets over REST)."""
    if snippet is None or snippet.institution not in (institution, consortium):
        raise Refusal("not_found", f"no snippet {name}")
    return snippet.body


def must_be_online(status: str, doing: str) -> None:
    """An operator takes, claims or starts chats only while online."""
    if status != "online":
        raise Refusal("forbidden", f"set your status to online to {doing}")


def patron_socket_refusal(
    widget: Widget | None, origin: str | None, own_origin: str, open_here: int, most: int
) -> tuple[Refusal, int] | None:
    """Why a patron socket is not let in, and the close code that says so, or None: an
    unknown widget, a page the widget is not for, or `most` sockets already open from its
    address here."""
    if widget is None:
        return Refusal("not_found", "no such widget"), 4404
    if not origin_allowed(origin, widget, own_origin):
        return Refusal("forbidden", "this widget is not for this site"), 4403
    if open_here >= most:
        return Refusal("rate_limited", "too many chat windows open from here"), 4429
    return None
