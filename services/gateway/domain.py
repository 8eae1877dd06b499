"""The gateway's rules, free of I/O: frame limits, rate limiting, and which client frames a
chat event becomes for each audience (the patron, the owning operator, queue watchers)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal, Protocol, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from shared.errors import Refusal
from shared.schemas.base import Model
from shared.schemas.chat import Chat, Message, Sender
from shared.schemas.events import (
    ChatClaimed,
    ChatClosed,
    ChatEvent,
    ChatMissed,
    ChatQueued,
    ChatRequeued,
    ChatRolledOver,
    ChatTaken,
    MessagePosted,
    OwnerLeft,
    OwnerReturned,
    TransferAccepted,
    TransferExpired,
    TransferOffered,
    TransferWithdrawn,
)
from shared.schemas.privacy import GUEST_ID_PATTERN
from shared.schemas.protocol import (
    ChatClaimedFrame,
    ChatClosedFrame,
    ChatRequeuedFrame,
    ChatRolledOverFrame,
    ChatTransferred,
    ChatTransferring,
    InternalMessageFrame,
    InternalPeer,
    InternalTarget,
    MessageFrame,
    OwnerPresenceFrame,
    PatronChat,
    PatronSender,
    PatronTypingFrame,
    QueueChatAdded,
    QueueChatRemoved,
    TicketFrame,
    TransferAcceptedFrame,
    TransferExpiredFrame,
    TransferOfferFrame,
    TransferWithdrawnFrame,
    WidgetStatusFrame,
)
from shared.schemas.records import Account, Widget
from shared.schemas.requests import InternalMessage, Stats, StatsFigures, WidgetStatus
from shared.schemas.tickets import TicketNotice


class TokenBucket:
    """Allows `rate` actions a second on average and bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def available(self, now: float) -> bool:
        """Whether an action would be allowed now, without spending anything."""
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def check_frame_size(raw: str | bytes, limit: int) -> None:
    if len(raw.encode() if isinstance(raw, str) else raw) > limit:
        raise Refusal("too_large", f"frame is larger than {limit} bytes")


def check_body(body: str, limit: int) -> str:
    if len(body.encode()) > limit:
        raise Refusal("too_large", f"message body is larger than {limit} bytes")
    if not body.strip():
        raise Refusal("invalid", "body: cannot be blank")
    return body


def message_frame(event: ChatEvent) -> MessageFrame:
    assert event.type == "message"
    return MessageFrame.model_validate(event.message.model_dump(by_alias=True))


def patron_chat(chat: Chat) -> PatronChat:
    return PatronChat(
        id=chat.id,
        state=chat.state,
        queue=chat.queue,
        operator=chat.owner_name,
        created_at=chat.created_at,
        question=chat.question,
    )


M = TypeVar("M", Message, MessageFrame)


def patron_sender(sender: Sender) -> PatronSender:
    """Who wrote or types, as a patron is told: staff by display name, never their login."""
    return PatronSender(
        kind=sender.kind, name=sender.name, id=sender.id if sender.kind == "patron" else None
    )


def for_patron(message: M) -> M:
    """A message as a patron sees it: staff by display name, never their login."""
    if message.from_.kind == "patron" or message.from_.id is None:
        return message
    return message.model_copy(update={"from_": patron_sender(message.from_)})


def patron_typing(chat_id: str, sender: Sender) -> PatronTypingFrame:
    """Someone of staff types in a patron's chat: the patron hears who by name only."""
    return PatronTypingFrame(chat_id=chat_id, from_=patron_sender(sender))


@dataclass(frozen=True)
class To:
    """Who should see a frame: the chat's patron, one operator, or a queue's watchers."""

    patron: bool = False
    operator: str | None = None
    queue: str | None = None


PATRON = To(patron=True)
Delivery = tuple[To, Model]


def deliveries(event: ChatEvent) -> list[Delivery]:
    """Every frame a chat event becomes, and for whom. Senders learn of their own messages
    from acks, not frames. A transfer offer is listed without its history: the caller adds
    the messages, which need I/O."""
    chat = event.chat
    owner = To(operator=chat.owner) if chat.owner else None
    watchers = To(queue=chat.queue)
    out: list[Delivery] = []
    match event:
        case MessagePosted(message=message):
            frame = message_frame(event)
            if message.from_.kind != "patron":
                out.append((PATRON, for_patron(frame)))
            if owner and not (message.from_.kind == "operator" and message.from_.id == chat.owner):
                out.append((owner, frame))
        case ChatQueued():
            out.append((watchers, QueueChatAdded(chat=chat, question=chat.question)))
        case ChatRequeued(reason=reason, from_operator=previous):
            requeued = ChatRequeuedFrame(
                chat_id=chat.id, queue=chat.queue, reason=reason, chat=chat
            )
            out.append((watchers, QueueChatAdded(chat=chat, question=chat.question)))
            out += [(PATRON, requeued.model_copy(update={"chat": None})), (watchers, requeued)]
            if previous:
                out.append((To(operator=previous), requeued))
        case ChatRolledOver(from_queue=previous, reason=reason):
            rolled = ChatRolledOverFrame(
                chat_id=chat.id, from_queue=previous, queue=chat.queue, reason=reason, chat=chat
            )
            before = To(queue=previous)
            out += [
                (before, QueueChatRemoved(chat_id=chat.id, queue=previous, reason="rolled_over"))
            ]
            out.append((watchers, QueueChatAdded(chat=chat, question=chat.question)))
            patrons_copy = rolled.model_copy(update={"chat": None})
            out += [(PATRON, patrons_copy), (before, rolled), (watchers, rolled)]
        case ChatClaimed(operator_name=name):
            out.append((PATRON, ChatClaimedFrame(chat_id=chat.id, operator=name)))
            out.append((watchers, _removed(chat, "claimed")))
        case ChatClosed() | ChatMissed():
            closed = _closed(event)
            out.append((PATRON, closed))
            if owner:
                out.append((owner, closed))
            if isinstance(event, ChatMissed):
                out.append((watchers, _removed(chat, "missed")))
        case TransferOffered():
            out.append((PATRON, ChatTransferring(chat_id=chat.id)))
        case TransferAccepted(from_operator=previous, operator=taker, operator_name=name):
            out.append((PATRON, ChatTransferred(chat_id=chat.id, operator=name)))
            accepted = TransferAcceptedFrame(chat_id=chat.id, operator=taker, operator_name=name)
            # The previous owner, and everyone else a queue transfer was offered to.
            others = sorted({previous, *event.targets} - {taker})
            out += [(To(operator=op), accepted) for op in others]
        case TransferWithdrawn(targets=targets):
            withdrawn = TransferWithdrawnFrame(chat_id=chat.id, reason="reclaimed")
            out += [(To(operator=t), withdrawn) for t in targets]
        case TransferExpired(targets=targets, reason=reason):
            if reason in ("patron_left", "owner_left"):
                withdrawn = TransferWithdrawnFrame(chat_id=chat.id, reason=reason)
                out += [(To(operator=t), withdrawn) for t in targets]
            else:
                expired = TransferExpiredFrame(chat_id=chat.id, reason=reason)
                out += [(To(operator=t), expired) for t in targets]
                if owner:
                    out.append((owner, expired))
        case ChatTaken(operator_name=name):
            out.append((PATRON, ChatTransferred(chat_id=chat.id, operator=name)))
            out.append((watchers, _owner_presence("chat.owner_returned", chat, event.operator)))
        case OwnerLeft(operator=who):
            out.append((watchers, _owner_presence("chat.owner_left", chat, who)))
        case OwnerReturned(operator=who):
            out.append((watchers, _owner_presence("chat.owner_returned", chat, who)))
        case _:
            pass
    return out


@dataclass(frozen=True)
class SignInLimits:
    """Failed sign-ins allowed per window: for one name from one address (an honest
    mistake, or one guesser), for one address across names (spraying one password over
    many names), and for one name from anywhere (a guesser with many addresses). Only the
    last can shut out the real person, so it is far higher than the first."""

    per_name_and_address: int
    per_address: int
    per_name: int

    def blocked(self, pair: int, address: int, name: int) -> bool:
        """Whether the failures counted so far leave no room for another attempt."""
        return (
            pair >= self.per_name_and_address
            or address >= self.per_address
            or name >= self.per_name
        )

    def admits(self, pair: int, address: int, name: int) -> bool:
        """Whether an attempt may be checked, given the counts with it already added: an
        attempt takes its place before the directory checks it, so that however many
        arrive at once, at most the allowance are checked."""
        return not self.blocked(pair - 1, address - 1, name - 1)


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


def widget_changed(before: WidgetStatus, after: WidgetStatus) -> bool:
    """Whether patrons should hear of it: the time of the announcement alone is no news."""
    return (before.online, before.queue, before.reason) != (after.online, after.queue, after.reason)


def widget_frame(status: WidgetStatus) -> WidgetStatusFrame:
    return WidgetStatusFrame(online=status.online, queue=status.queue, reason=status.reason)


def offer_frame(event: TransferOffered, messages: list[Message]) -> TransferOfferFrame:
    offer = event.offer
    return TransferOfferFrame(
        chat_id=event.chat.id,
        from_=event.chat.owner_name or offer.by,
        note=offer.note,
        to_queue=offer.to_queue,
        expires_at=offer.expires_at,
        chat=event.chat,
        messages=messages,
    )


def _removed(chat: Chat, reason: str) -> QueueChatRemoved:
    return QueueChatRemoved(chat_id=chat.id, queue=chat.queue, reason=reason)


def _owner_presence(
    kind: Literal["chat.owner_left", "chat.owner_returned"], chat: Chat, owner: str
) -> OwnerPresenceFrame:
    return OwnerPresenceFrame(type=kind, chat_id=chat.id, queue=chat.queue, owner=owner)


def _closed(event: ChatEvent) -> ChatClosedFrame:
    reason = getattr(event, "reason", event.type)
    return ChatClosedFrame(chat_id=event.chat.id, state=event.chat.state, reason=reason)


class StaffView(Protocol):
    username: str
    status: str
    monitoring: frozenset[str]


S = TypeVar("S", bound=StaffView)

# Who hears messages sent to a queue or to everyone: `internal` status is for exactly this.
LISTENING = frozenset({"online", "internal"})


def conversation_of(sender: str, target: InternalTarget) -> str:
    """The thread an internal message belongs to; both sides of a direct one share it."""
    if target.operator is not None:
        first, second = sorted((sender, target.operator))
        return f"dm:{first}:{second}"
    if target.queue is not None:
        return f"queue:{target.queue}"
    return "all"


def internal_recipients(message: InternalMessage, staff: Sequence[S]) -> list[S]:
    """Who receives an internal message (never its sender): the named operator whatever
    their status; otherwise everyone online or `internal` who monitors the queue, or all of
    them."""
    sender = message.from_.id
    if message.to_operator is not None:
        return [s for s in staff if s.username == message.to_operator]
    listening = [s for s in staff if s.status in LISTENING and s.username != sender]
    if message.to_queue is not None:
        return [s for s in listening if message.to_queue in s.monitoring]
    return listening


def ticket_recipients(notice: TicketNotice, staff: Sequence[S]) -> list[S]:
    """Who hears of a ticket: everyone of its institution signed in when it is new; its
    assignee when assigned; when its patron answers, its assignee, or everyone if it has
    none. Never whoever caused it."""
    assignee = notice.ticket.assignee
    if notice.kind == "created" or (notice.kind == "answered" and assignee is None):
        return [s for s in staff if s.username != notice.by]
    return [s for s in staff if s.username == assignee and s.username != notice.by]


def ticket_frame(notice: TicketNotice) -> TicketFrame:
    return TicketFrame(type=f"ticket.{notice.kind}", ticket=notice.ticket, by=notice.by)


def internal_frame(message: InternalMessage) -> InternalMessageFrame:
    return InternalMessageFrame(
        id=message.id,
        conversation=message.conversation,
        from_=message.from_,
        to=InternalPeer(
            operator=message.to_operator,
            queue=message.to_queue,
            all=True if message.to_all else None,
        ),
        body=message.body,
        ts=message.ts,
    )


GUEST_ID = re.compile(GUEST_ID_PATTERN)


def start_of_day(now: datetime, zone: str) -> datetime:
    """Local midnight of `now`'s day in `zone`: where "today's chats" begin."""
    tz = ZoneInfo(zone)
    return datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)


STATS_COLUMNS = ("key", *StatsFigures.model_fields)


def stats_csv(stats: Stats) -> str:
    """The figures as a spreadsheet: a row per group (or per institution for the
    consortium), then the span's total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATS_COLUMNS)
    rows = stats.groups or stats.institutions
    for row in (*rows, stats):
        figures = row.model_dump(include=set(StatsFigures.model_fields))
        key = getattr(row, "key", "total")
        writer.writerow(
            [key, *(("" if figures[f] is None else figures[f]) for f in STATS_COLUMNS[1:])]
        )
    return out.getvalue()


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
