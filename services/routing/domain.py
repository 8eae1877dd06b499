"""The chat state machine: pure functions of (state, command, now) -> transition.

No I/O here. Handlers load the chat's state with its key-value revision, call one of these,
write the new state with a compare-and-set on that revision and publish the events. A
refusal is raised as `Refusal` with the protocol's error code and changes nothing.

    created --> queued --claim--> active --close--> closed
                  |  ^               |  ^   \\
                  |  |  owner gone   |  |    offer --> transferring --accept--> active
                  |  +--past grace---+  +-- reclaim / decline / expiry --+
                  +--patron gone past grace--> missed

See docs/architecture.md for the full diagram. Time-driven transitions (offer expiry, the
owner and patron grace periods) come from `due`, which the routing replicas call at the
instants `deadlines` names.

Closing a chat that is already closed or missed is an idempotent no-op (`changed=False`):
a retried close, or a patron and an operator closing at once, must not fail either side.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.chat import (
    MAX_TAGS,
    RECENT_CLIENT_IDS,
    TAG_PATTERN,
    Chat,
    ChatState,
    ClientSent,
    Message,
    Patron,
    Sender,
    SkippedQueue,
    TransferOffer,
    normal_tag,
)
from shared.schemas.events import (
    ChatClaimed,
    ChatClosed,
    ChatCreated,
    ChatEvent,
    ChatMissed,
    ChatQueued,
    ChatRequeued,
    ChatRolledOver,
    ChatTagged,
    ChatTaken,
    MessagePosted,
    OwnerLeft,
    OwnerReturned,
    PatronLeft,
    PatronReturned,
    RolloverHeld,
    TransferAccepted,
    TransferDeclined,
    TransferExpired,
    TransferOffered,
    TransferWithdrawn,
)

OPEN_STATES = frozenset({"queued", "active", "transferring"})


@dataclass(frozen=True)
class Transition:
    state: ChatState
    events: list[ChatEvent] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events)


@dataclass(frozen=True)
class NewChat:
    chat_id: str
    institution: str
    widget: str
    queue: str
    guest_id: str
    question: str
    name: str | None
    email: str | None
    reason: str
    page: str | None = None
    queue_institution: str = ""
    chain: tuple[str, ...] = ()
    rollover_after_s: int | None = None
    skipped: tuple[SkippedQueue, ...] = ()


class _Keep:
    """Marks a field `_evolve` should carry over (None is a value: "no offer")."""


KEEP = _Keep()


def _evolve(
    state: ChatState,
    chat: Chat,
    *,
    events: int,
    last_seq: int | None = None,
    offer: TransferOffer | _Keep | None = KEEP,
    patron_present: bool | None = None,
    patron_left_at: str | _Keep | None = KEEP,
    owner_left_at: str | _Keep | None = KEEP,
    queued_at: str | _Keep | None = KEEP,
) -> ChatState:
    """The next state: what is not named carries over unchanged."""
    update: dict[str, object] = {"chat": chat, "events": events}
    if last_seq is not None:
        update["last_seq"] = last_seq
    if not isinstance(offer, _Keep):
        update["offer"] = offer
    if patron_present is not None:
        update["patron_present"] = patron_present
    if not isinstance(patron_left_at, _Keep):
        update["patron_left_at"] = patron_left_at
    if not isinstance(owner_left_at, _Keep):
        update["owner_left_at"] = owner_left_at
    if not isinstance(queued_at, _Keep):
        update["queued_at"] = queued_at
    return state.model_copy(update=update)


def _chain(first: Transition, then: Transition) -> Transition:
    """Two transitions applied one after the other, as one."""
    return Transition(then.state, [*first.events, *then.events])


def _event_id(chat_id: str, n: int) -> str:
    return f"{chat_id}.{n}"


def _next(state: ChatState, now: datetime) -> tuple[int, dict[str, Any]]:
    """The number of the chat's next event, and its `id`, `n` and `ts` to build it with."""
    n = state.events + 1
    return n, {"id": _event_id(state.chat.id, n), "n": n, "ts": iso(now)}


def normalize_tags(tags: list[str]) -> list[str]:
    """Lower-case, trimmed, de-duplicated, in first-seen order; each one short and plain,
    and at most MAX_TAGS on a chat (applied to the chat's tags with the new ones, since
    every event carries them all)."""
    seen: dict[str, None] = {}
    for tag in tags:
        clean = normal_tag(tag)
        if not clean:
            raise Refusal("invalid", "a tag cannot be empty")
        if not re.match(TAG_PATTERN, clean):
            raise Refusal(
                "invalid", f"tags: {clean[:40]!r} must be up to 40 letters, digits, -, _ or spaces"
            )
        seen.setdefault(clean, None)
    if len(seen) > MAX_TAGS:
        raise Refusal("invalid", f"tags: a chat holds at most {MAX_TAGS} tags")
    return list(seen)


def start_chat(cmd: NewChat, now: datetime) -> Transition:
    """A patron's new chat: created, its question as message 1, and queued."""
    ts = iso(now)
    chat = Chat(
        id=cmd.chat_id,
        queue=cmd.queue,
        institution=cmd.institution,
        state="queued",
        created_at=ts,
        patron=Patron(guest_id=cmd.guest_id, name=cmd.name, email=cmd.email, page=cmd.page),
        widget=cmd.widget,
        question=cmd.question,
        queue_institution=cmd.queue_institution or cmd.institution,
        home_queue=cmd.chain[0] if cmd.chain else cmd.queue,
    )
    state = ChatState(
        chat=chat,
        last_seq=1,
        events=3,
        chain=list(cmd.chain) or [cmd.queue],
        queued_at=ts,
        rollover_after_s=cmd.rollover_after_s,
    )
    sender = Sender(kind="patron", name=cmd.name or "Patron", id=cmd.guest_id)
    question = Message(
        id=f"{cmd.chat_id}-1", chat_id=cmd.chat_id, seq=1, from_=sender, body=cmd.question, ts=ts
    )
    events: list[ChatEvent] = [
        ChatCreated(id=_event_id(chat.id, 1), n=1, ts=ts, chat=chat, question=cmd.question),
        MessagePosted(id=_event_id(chat.id, 2), n=2, ts=ts, chat=chat, message=question),
        ChatQueued(
            id=_event_id(chat.id, 3),
            n=3,
            ts=ts,
            chat=chat,
            queue=cmd.queue,
            reason=cmd.reason,
            skipped=list(cmd.skipped),
        ),
    ]
    return Transition(state, events)


@dataclass(frozen=True)
class NewProactiveChat:
    chat_id: str
    institution: str
    queue: str
    guest_id: str
    widget: str | None
    operator: str
    operator_name: str
    body: str
    patron_connected: bool


def start_proactive(cmd: NewProactiveChat, now: datetime) -> Transition:
    """An operator opens a chat with a guest: active from the start, owned by that operator,
    their opening line as message 1. From here it is a chat like any other."""
    ts = iso(now)
    chat = Chat(
        id=cmd.chat_id,
        queue=cmd.queue,
        institution=cmd.institution,
        state="active",
        owner=cmd.operator,
        owner_name=cmd.operator_name,
        operators=[cmd.operator],
        origin="proactive",
        created_at=ts,
        claimed_at=ts,
        patron=Patron(guest_id=cmd.guest_id),
        widget=cmd.widget,
        question=cmd.body,
        home_queue=cmd.queue,
        # The library reaching out answers its own chat, and counts it so.
        queue_institution=cmd.institution,
        answered_institution=cmd.institution,
        answered_queue=cmd.queue,
        handled_by=[cmd.institution],
    )
    sender = Sender(kind="operator", name=cmd.operator_name, id=cmd.operator)
    opening = Message(
        id=f"{cmd.chat_id}-1", chat_id=cmd.chat_id, seq=1, from_=sender, body=cmd.body, ts=ts
    )
    state = ChatState(
        chat=chat,
        last_seq=1,
        events=2,
        patron_present=cmd.patron_connected,
        patron_left_at=None if cmd.patron_connected else ts,
    )
    events: list[ChatEvent] = [
        ChatCreated(id=_event_id(chat.id, 1), n=1, ts=ts, chat=chat, question=cmd.body),
        MessagePosted(id=_event_id(chat.id, 2), n=2, ts=ts, chat=chat, message=opening),
    ]
    return Transition(state, events)


def _require_open(chat: Chat) -> None:
    if chat.state not in OPEN_STATES:
        raise Refusal("gone", f"chat {chat.id} is {chat.state}")


def claim(
    state: ChatState,
    operator: str,
    operator_name: str,
    monitoring: list[str],
    now: datetime,
    by_institution: str | None = None,
) -> Transition:
    """An operator who monitors the chat's queue takes it; anyone racing them gets `conflict`.
    `by_institution`: the claimant's, when it may differ from the queue's (partner coverage)."""
    chat = state.chat
    _require_open(chat)
    if chat.state == "queued" and chat.queue not in monitoring:
        raise Refusal("forbidden", f"you do not monitor {chat.queue}")
    if chat.state != "queued":
        if chat.owner == operator:
            raise Refusal("conflict", "you already own this chat", owner=chat.owner)
        raise Refusal("conflict", f"chat already claimed by {chat.owner}", owner=chat.owner)
    ts = iso(now)
    claimed = chat.model_copy(
        update={
            "state": "active",
            **_handed_to(chat, operator, operator_name, by_institution),
            "claimed_at": ts,
        }
    )
    wait_s = max(0.0, (now - datetime.fromisoformat(chat.created_at)).total_seconds())
    n, stamp = _next(state, now)
    event = ChatClaimed(
        **stamp,
        chat=claimed,
        operator=operator,
        operator_name=operator_name,
        wait_s=round(wait_s, 3),
    )
    return Transition(_evolve(state, claimed, events=n), [event])


def _answered_here(chat: Chat, by_institution: str | None = None) -> dict[str, str | None]:
    """Who answers the chat, for statistics: whoever first takes it answers for the
    institution of the queue it is in, or for their own when they cover it as a partner
    of that institution. Another institution that takes it over from the patron's own
    library (a transfer to the backup service or a partner) answers it from then on; after
    that the first other institution keeps it: a backup service that answered and handed
    the chat back is still the one that answered, even when the library re-claims it after
    a requeue."""
    held_by = chat.queue_institution or chat.institution
    if chat.answered_institution is not None:
        taken_from_home = (
            chat.answered_institution == chat.institution
            and by_institution is not None
            and by_institution != chat.institution
        )
        if not taken_from_home:
            return {}
        return {"answered_institution": by_institution, "answered_queue": chat.queue}
    covering = by_institution is not None and by_institution not in (held_by, chat.institution)
    return {
        "answered_institution": by_institution if covering else held_by,
        "answered_queue": chat.queue,
    }


def _handed_to(
    chat: Chat, operator: str, operator_name: str, institution: str | None
) -> dict[str, Any]:
    """The fields of a chat that changes hands to `operator` of `institution` (None: of
    the institution whose queue holds the chat): its owner, everyone and every institution
    that held it, and who answers it."""
    held = chat.operators if operator in chat.operators else [*chat.operators, operator]
    where = institution or chat.queue_institution or chat.institution
    handled = chat.handled_by if where in chat.handled_by else [*chat.handled_by, where]
    return {
        "owner": operator,
        "owner_name": operator_name,
        "operators": held,
        "handled_by": handled,
        **_answered_here(chat, institution),
    }


def _may_write(chat: Chat, sender: Sender) -> None:
    if sender.kind == "patron":
        if sender.id != chat.patron.guest_id:
            raise Refusal("forbidden", "this is not your chat")
    elif sender.kind == "operator":
        if chat.owner != sender.id:
            raise Refusal("forbidden", "only the chat's owner may do that", owner=chat.owner)


def message_id(chat_id: str, seq: int) -> str:
    return f"{chat_id}-{seq}"


def sent_before(state: ChatState, sender: Sender, client_id: str | None) -> ClientSent | None:
    """The message this sender already posted with this client-chosen id, if any."""
    if client_id is None:
        return None
    who = _sender_key(sender)
    return next((s for s in state.sent if s.client_id == client_id and s.sender == who), None)


def _sender_key(sender: Sender) -> str:
    return f"{sender.kind}:{sender.id or sender.name}"


def post_message(
    state: ChatState, sender: Sender, body: str, now: datetime, client_id: str | None = None
) -> Transition:
    """A message from the patron or the owning operator, numbered with the next `seq`.

    With a client-chosen id, a resend of one already posted (after a timeout, or an
    `unavailable` while it did land) changes nothing, even once the chat has closed: the
    caller answers it with the original (`sent_before`).

    Writing also says who is there. The owner writing while a transfer offer is open takes
    the chat back: the offer is withdrawn first (`reclaimed`), so a late accept gets
    `conflict`. The patron writing to a chat whose owner is disconnected sends it back to
    the front of the queue at once rather than into silence.
    """
    if sent_before(state, sender, client_id) is not None:
        return Transition(state)
    chat = state.chat
    _require_open(chat)
    _may_write(chat, sender)
    before = Transition(state)
    if sender.kind == "patron" and not state.patron_present:
        before = _chain(before, patron_returned(before.state, now))
    if sender.kind == "patron" and before.state.owner_left_at is not None:
        before = _chain(before, _requeue(before.state, "patron_wrote", now))
    if sender.kind == "operator" and before.state.owner_left_at is not None:
        before = _chain(before, owner_returned(before.state, chat.owner or "", now))
    if before.state.offer is not None and sender.kind == "operator":
        before = _chain(before, _close_offer(before.state, "reclaimed", now))
    state, chat = before.state, before.state.chat
    ts = iso(now)
    seq = state.last_seq + 1
    n, stamp = _next(state, now)
    message = Message(
        id=message_id(chat.id, seq), chat_id=chat.id, seq=seq, from_=sender, body=body, ts=ts
    )
    posted = MessagePosted(**stamp, chat=chat, message=message)
    after = _evolve(state, chat, last_seq=seq, events=n)
    if client_id is not None:
        sent = ClientSent(client_id=client_id, sender=_sender_key(sender), seq=seq)
        after = after.model_copy(update={"sent": [*state.sent, sent][-RECENT_CLIENT_IDS:]})
    return Transition(after, [*before.events, posted])


@dataclass(frozen=True)
class TagRules:
    """An institution's tagging rules for its staff: its tag list (empty: any tag) and
    whether a chat must carry a tag before they close it."""

    allowed: frozenset[str] = frozenset()
    required: bool = False

    def check(self, tags: list[str]) -> None:
        for tag in tags:
            if self.allowed and tag not in self.allowed:
                raise Refusal("invalid", f"tags: {tag!r} is not in your library's tag list")


NO_RULES = TagRules()


def answered_by(chat: Chat, operator: str | None) -> bool:
    """Whether this operator held the chat at some point (its owner now, or before a
    transfer or a take-over)."""
    return operator is not None and (operator == chat.owner or operator in chat.operators)


def tag(
    state: ChatState,
    by: Sender,
    add: list[str],
    now: datetime,
    remove: Sequence[str] = (),
    rules: TagRules = NO_RULES,
) -> Transition:
    """Whoever answered the chat (its owner, or an earlier one after a transfer) adds or
    removes tags, while it is open or after it closed. Repeating a tag changes nothing."""
    chat = state.chat
    if by.kind != "operator":
        raise Refusal("forbidden", "only staff may tag a chat")
    if not answered_by(chat, by.id):
        raise Refusal("forbidden", "only staff who answered the chat may tag it", owner=chat.owner)
    added = normalize_tags(add)
    rules.check(added)
    dropped = set(normalize_tags(list(remove)))
    merged = normalize_tags([*(t for t in chat.tags if t not in dropped), *added])
    if merged == chat.tags:
        return Transition(state)
    tagged = chat.model_copy(update={"tags": merged})
    n, stamp = _next(state, now)
    event = ChatTagged(**stamp, chat=tagged, by=by, tags=merged)
    return Transition(_evolve(state, tagged, events=n), [event])


def close(
    state: ChatState,
    by: Sender,
    tags: list[str],
    now: datetime,
    rules: TagRules = NO_RULES,
) -> Transition:
    """Close by the owner or the patron. A chat nobody claimed closes as `missed`. The
    owner's library may require a tag before its staff close a chat."""
    chat = state.chat
    if chat.state not in OPEN_STATES:
        return Transition(state)
    _may_write(chat, by)
    if by.kind == "operator" and chat.state == "queued":
        raise Refusal("forbidden", "claim the chat before closing it")
    ts = iso(now)
    merged = chat.tags
    if by.kind == "operator":
        added = normalize_tags(tags)
        rules.check(added)
        merged = normalize_tags([*chat.tags, *added])
        if rules.required and not merged:
            raise Refusal("invalid", "tags: your library asks for at least one tag on every chat")
    n, stamp = _next(state, now)
    if chat.state == "queued":
        missed = chat.model_copy(update={"state": "missed", "closed_at": ts})
        event: ChatEvent = ChatMissed(**stamp, chat=missed, reason="patron_left")
        return Transition(_evolve(state, missed, events=n), [event])
    reason = "closed_by_operator" if by.kind == "operator" else "closed_by_patron"
    closed = chat.model_copy(update={"state": "closed", "closed_at": ts, "tags": merged})
    event = ChatClosed(**stamp, chat=closed, by=by, reason=reason)
    return Transition(_evolve(state, closed, events=n, offer=None, owner_left_at=None), [event])


def offer_transfer(
    state: ChatState,
    by: str,
    targets: list[str],
    now: datetime,
    timeout_s: float,
    *,
    to_operator: str | None = None,
    to_queue: str | None = None,
    to_queue_institution: str | None = None,
    to_institution: str | None = None,
    note: str | None = None,
) -> Transition:
    """The owner offers the chat to an operator, or to everyone `targets` lists for a queue
    (of `to_queue_institution`, which the chat moves into when accepted). `to_institution`
    is the operator's or the queue's institution, whose staff may then act on the chat.

    `targets` are the operators who may accept, resolved by the caller from presence.
    """
    chat = state.chat
    _require_open(chat)
    if chat.owner != by:
        raise Refusal("forbidden", "only the chat's owner may transfer it", owner=chat.owner)
    if chat.state == "transferring":
        raise Refusal("conflict", "this chat is already being transferred", owner=chat.owner)
    if not state.patron_present:
        raise Refusal("gone", "the patron has left; the chat cannot be transferred")
    if (to_operator is None) == (to_queue is None):
        raise Refusal("invalid", "transfer to exactly one operator or one queue")
    if to_operator == by:
        raise Refusal("invalid", "you already own this chat")
    offered = sorted(set(targets) - {by})
    if not offered:
        raise Refusal("unavailable", "nobody is online to take this chat")
    ts = iso(now)
    offer = TransferOffer(
        by=by,
        to_operator=to_operator,
        to_queue=to_queue,
        to_queue_institution=to_queue_institution if to_queue else None,
        to_institution=to_institution or (to_queue_institution if to_queue else None),
        targets=offered,
        note=note,
        offered_at=ts,
        expires_at=iso(now + timedelta(seconds=timeout_s)),
    )
    transferring = chat.model_copy(update={"state": "transferring"})
    n, stamp = _next(state, now)
    event = TransferOffered(**stamp, chat=transferring, offer=offer)
    told = state.offered_to
    if offer.to_institution is not None and offer.to_institution not in told:
        told = [*told, offer.to_institution]
    return Transition(
        _evolve(state, transferring, events=n, offer=offer).model_copy(update={"offered_to": told}),
        [event],
    )


def _require_offer(state: ChatState) -> TransferOffer:
    if state.chat.state in ("closed", "missed"):
        raise Refusal("gone", f"chat {state.chat.id} is {state.chat.state}")
    if state.offer is None:
        raise Refusal("conflict", "the offer was withdrawn or has ended", owner=state.chat.owner)
    return state.offer


def accept_transfer(
    state: ChatState,
    operator: str,
    operator_name: str,
    now: datetime,
    institution: str | None = None,
) -> Transition:
    """The first target to accept becomes the owner; everyone after them gets `conflict`.
    `institution`: the accepting operator's (by default the one the offer went to)."""
    offer = _require_offer(state)
    if operator not in offer.targets or operator in offer.declined:
        raise Refusal("forbidden", "this chat was not offered to you")
    chat = state.chat
    into = chat.model_copy(
        update={
            "queue": offer.to_queue or chat.queue,
            "queue_institution": offer.to_queue_institution or chat.queue_institution,
        }
    )
    moved = into.model_copy(
        update={
            "state": "active",
            **_handed_to(into, operator, operator_name, institution or offer.to_institution),
        }
    )
    n, stamp = _next(state, now)
    event = TransferAccepted(
        **stamp,
        chat=moved,
        from_operator=offer.by,
        operator=operator,
        operator_name=operator_name,
        targets=offer.targets,
    )
    return Transition(_evolve(state, moved, events=n, offer=None, owner_left_at=None), [event])


def decline_transfer(state: ChatState, operator: str, now: datetime) -> Transition:
    """A target says no; when every target has, the chat goes back to its owner."""
    offer = _require_offer(state)
    if operator not in offer.targets:
        raise Refusal("forbidden", "this chat was not offered to you")
    if operator in offer.declined:
        return Transition(state)
    declined = offer.model_copy(update={"declined": sorted({*offer.declined, operator})})
    if set(declined.declined) >= set(offer.targets):
        return _close_offer(state, "declined", now)
    # An event, so that the decline is written: the next target's decline builds on it.
    n, stamp = _next(state, now)
    event = TransferDeclined(**stamp, chat=state.chat, operator=operator)
    return Transition(_evolve(state, state.chat, events=n, offer=declined), [event])


def cancel_transfer(state: ChatState, operator: str, now: datetime) -> Transition:
    """The owner takes back an offer nobody has answered yet: the targets hear it was
    withdrawn and the chat is the owner's again. No offer open: nothing to do."""
    if state.chat.owner != operator:
        raise Refusal("forbidden", "only the chat's owner cancels its transfer")
    return _end_open_offer(state, "reclaimed", now)


def expire_transfer(state: ChatState, offered_at: str, now: datetime) -> Transition:
    """The offer made at `offered_at` ran out unanswered. A no-op if that offer is no
    longer open (accepted, withdrawn, or replaced by a newer one)."""
    offer = state.offer
    if offer is None or offer.offered_at != offered_at:
        return Transition(state)
    if now < datetime.fromisoformat(offer.expires_at):
        return Transition(state)
    return _close_offer(state, "timeout", now)


def _end_open_offer(
    state: ChatState, reason: Literal["patron_left", "owner_left", "reclaimed"], now: datetime
) -> Transition:
    """Ends the offer if one is open (the chat goes back to its owner first); else nothing."""
    return Transition(state) if state.offer is None else _close_offer(state, reason, now)


def _close_offer(
    state: ChatState,
    reason: Literal["timeout", "declined", "reclaimed", "patron_left", "owner_left"],
    now: datetime,
) -> Transition:
    """End the open offer and give the chat back to its owner: `reclaimed` when the owner
    took it back by writing, `transfer_expired` otherwise."""
    offer = state.offer
    assert offer is not None
    chat = state.chat.model_copy(update={"state": "active"})
    n, stamp = _next(state, now)
    event: ChatEvent
    if reason == "reclaimed":
        event = TransferWithdrawn(
            **stamp,
            chat=chat,
            operator=offer.by,
            targets=offer.targets,
        )
    else:
        event = TransferExpired(
            **stamp,
            chat=chat,
            reason=reason,
            targets=offer.targets,
        )
    return Transition(_evolve(state, chat, events=n, offer=None), [event])


def patron_left(state: ChatState, now: datetime) -> Transition:
    """The patron's last connection dropped. An open offer ends (nobody should accept a chat
    nobody is in), the chat cannot be transferred, and the patron grace period starts."""
    chat = state.chat
    if chat.state not in OPEN_STATES or not state.patron_present:
        return Transition(state)
    before = _end_open_offer(state, "patron_left", now)
    state, chat = before.state, before.state.chat
    n, stamp = _next(state, now)
    ts = iso(now)
    left = PatronLeft(**stamp, chat=chat)
    return Transition(
        _evolve(state, chat, events=n, patron_present=False, patron_left_at=ts),
        [*before.events, left],
    )


def patron_returned(state: ChatState, now: datetime) -> Transition:
    """The patron is connected again (resumed with their token, or wrote)."""
    chat = state.chat
    if chat.state not in OPEN_STATES or state.patron_present:
        return Transition(state)
    n, stamp = _next(state, now)
    back = PatronReturned(**stamp, chat=chat)
    return Transition(
        _evolve(state, chat, events=n, patron_present=True, patron_left_at=None), [back]
    )


def owner_left(state: ChatState, operator: str, now: datetime) -> Transition:
    """The owner's session ended: their chats are held for the owner grace period."""
    chat = state.chat
    if chat.state not in ("active", "transferring") or chat.owner != operator:
        return Transition(state)
    if state.owner_left_at is not None:
        return Transition(state)
    n, stamp = _next(state, now)
    ts = iso(now)
    left = OwnerLeft(**stamp, chat=chat, operator=operator)
    return Transition(_evolve(state, chat, events=n, owner_left_at=ts), [left])


def owner_returned(state: ChatState, operator: str, now: datetime) -> Transition:
    """The owner is back within the grace period: the chat is theirs as before."""
    chat = state.chat
    if state.owner_left_at is None or chat.owner != operator or chat.state not in OPEN_STATES:
        return Transition(state)
    n, stamp = _next(state, now)
    back = OwnerReturned(**stamp, chat=chat, operator=operator)
    return Transition(_evolve(state, chat, events=n, owner_left_at=None), [back])


def _requeue(
    state: ChatState, reason: Literal["owner_disconnected", "patron_wrote"], now: datetime
) -> Transition:
    """Back to the front of the queue, ownerless (an open offer ends first)."""
    before = _end_open_offer(state, "owner_left", now)
    state = before.state
    ts = iso(now)
    chat = state.chat
    queued = chat.model_copy(
        update={
            "state": "queued",
            "owner": None,
            "owner_name": None,
            "claimed_at": None,
            "requeued_at": ts,
        }
    )
    n, stamp = _next(state, now)
    event = ChatRequeued(
        **stamp,
        chat=queued,
        from_operator=chat.owner or "",
        reason=reason,
    )
    return Transition(
        _evolve(state, queued, events=n, offer=None, owner_left_at=None, queued_at=ts),
        [*before.events, event],
    )


def take(
    state: ChatState,
    operator: str,
    operator_name: str,
    monitoring: list[str],
    now: datetime,
    institution: str | None = None,
) -> Transition:
    """A colleague who monitors the queue takes over a chat whose owner is disconnected.
    `institution`: the colleague's (by default the queue's)."""
    chat = state.chat
    _require_open(chat)
    if chat.state == "queued":
        raise Refusal("conflict", "this chat is waiting in the queue: claim it instead")
    if chat.owner == operator:
        raise Refusal("conflict", "you already own this chat", owner=chat.owner)
    if chat.queue not in monitoring:
        raise Refusal("forbidden", f"you do not monitor {chat.queue}")
    if state.owner_left_at is None:
        raise Refusal(
            "conflict", f"{chat.owner} is connected and still owns this chat", owner=chat.owner
        )
    before = _end_open_offer(state, "owner_left", now)
    state = before.state
    previous = chat.owner or ""
    taken = state.chat.model_copy(
        update={
            "state": "active",
            **_handed_to(state.chat, operator, operator_name, institution),
        }
    )
    n, stamp = _next(state, now)
    event = ChatTaken(
        **stamp,
        chat=taken,
        from_operator=previous,
        operator=operator,
        operator_name=operator_name,
    )
    return Transition(
        _evolve(state, taken, events=n, offer=None, owner_left_at=None), [*before.events, event]
    )


@dataclass(frozen=True)
class Timing:
    """How long each kind of wait lasts before routing acts on its own."""

    offer_timeout_s: float = 120.0
    owner_grace_s: float = 60.0
    patron_grace_s: float = 600.0


def _at(stamp: str, seconds: float) -> datetime:
    return datetime.fromisoformat(stamp) + timedelta(seconds=seconds)


def deadlines(state: ChatState, timing: Timing) -> list[datetime]:
    """Every instant at which this chat changes by itself, unless something happens first."""
    if state.chat.state not in OPEN_STATES:
        return []
    found: list[datetime] = []
    if state.offer is not None:
        found.append(datetime.fromisoformat(state.offer.expires_at))
    if state.owner_left_at is not None:
        found.append(_at(state.owner_left_at, timing.owner_grace_s))
    if state.patron_left_at is not None and not state.patron_present:
        found.append(_at(state.patron_left_at, timing.patron_grace_s))
    rollover = rollover_at(state)
    if rollover is not None:
        found.append(rollover)
    return found


def due(state: ChatState, now: datetime, timing: Timing) -> Transition:
    """Whatever the passing of time has decided by `now`: an offer expires, a disconnected
    owner's chat is requeued, a patron who never came back loses the chat."""
    result = Transition(state)
    if state.chat.state not in OPEN_STATES:
        return result
    if state.offer is not None:
        result = _chain(result, expire_transfer(state, state.offer.offered_at, now))
    current = result.state
    if current.patron_left_at is not None and not current.patron_present:
        if now >= _at(current.patron_left_at, timing.patron_grace_s):
            return _chain(result, _patron_gone_for_good(current, now))
    if current.owner_left_at is not None and now >= _at(
        current.owner_left_at, timing.owner_grace_s
    ):
        result = _chain(result, _requeue(current, "owner_disconnected", now))
    return result


def _patron_gone_for_good(state: ChatState, now: datetime) -> Transition:
    """The patron grace period ran out: unclaimed, the chat was missed; claimed, it closes."""
    chat = state.chat
    ts = iso(now)
    n, stamp = _next(state, now)
    if chat.state == "queued":
        missed = chat.model_copy(update={"state": "missed", "closed_at": ts})
        event: ChatEvent = ChatMissed(**stamp, chat=missed, reason="patron_left")
        return Transition(_evolve(state, missed, events=n), [event])
    closed = chat.model_copy(update={"state": "closed", "closed_at": ts})
    event = ChatClosed(
        **stamp,
        chat=closed,
        by=Sender(kind="system", name="refdesk"),
        reason="patron_left",
    )
    return Transition(_evolve(state, closed, events=n, offer=None, owner_left_at=None), [event])


def queue_order(waiting: list[Chat]) -> list[Chat]:
    """A queue's waiting chats in the order they should be answered: chats sent back by a
    disconnected owner first (they have waited already), then oldest first."""
    return sorted(
        waiting,
        key=lambda c: (c.requeued_at is None, c.requeued_at or c.created_at, c.created_at, c.id),
    )


def queue_position(waiting: list[Chat], chat_id: str) -> int:
    """1-based position of a chat among a queue's waiting chats; 0 if absent."""
    for index, chat in enumerate(queue_order(waiting), start=1):
        if chat.id == chat_id:
            return index
    return 0


def estimate_wait(recent_waits: list[float]) -> int | None:
    """Median of recent claim waits for the queue, in whole seconds; None without history."""
    if not recent_waits:
        return None
    ordered = sorted(recent_waits)
    return round(ordered[len(ordered) // 2])


# --- rollover ---------------------------------------------------------------------------------


def rollover_at(state: ChatState) -> datetime | None:
    """When a waiting chat is due to move on to the next queue of its chain, if ever."""
    if state.chat.state != "queued" or not state.rollover_after_s or state.queued_at is None:
        return None
    if not rollover_candidates(state):
        return None
    return _at(state.queued_at, state.rollover_after_s)


def rollover_due(state: ChatState, now: datetime) -> bool:
    due_at = rollover_at(state)
    return due_at is not None and now >= due_at


def rollover_candidates(state: ChatState, chain: Sequence[str] | None = None) -> list[str]:
    """The queues after the chat's current one in its chain (the one it started with, or
    `chain` as configured now), in the order they are tried."""
    chain = list(state.chain if chain is None else chain)
    if state.chat.queue not in chain:
        return []
    return chain[chain.index(state.chat.queue) + 1 :]


def _rechained(state: ChatState, chain: Sequence[str] | None) -> ChatState:
    return state if chain is None else state.model_copy(update={"chain": list(chain)})


def roll_over(
    state: ChatState,
    to_queue: str,
    to_institution: str,
    rollover_after_s: int | None,
    reason: str,
    skipped: list[SkippedQueue],
    now: datetime,
    chain: Sequence[str] | None = None,
) -> Transition:
    """The chat waited past its queue's rollover timeout: it moves to `to_queue`, where
    the timeout of that queue starts. Not due (claimed meanwhile, or already moved by
    another replica): nothing happens. `chain`: the chain as configured now, which the
    chat follows from here on."""
    if not rollover_due(state, now) or to_queue not in rollover_candidates(state, chain):
        return Transition(state)
    chat = state.chat
    ts = iso(now)
    moved = chat.model_copy(update={"queue": to_queue, "queue_institution": to_institution})
    n, stamp = _next(state, now)
    event = ChatRolledOver(
        **stamp,
        chat=moved,
        from_queue=chat.queue,
        queue=to_queue,
        reason=reason,
        skipped=skipped,
    )
    next_state = _rechained(_evolve(state, moved, events=n, queued_at=ts), chain)
    return Transition(next_state.model_copy(update={"rollover_after_s": rollover_after_s}), [event])


def hold_rollover(
    state: ChatState,
    reason: str,
    skipped: list[SkippedQueue],
    now: datetime,
    chain: Sequence[str] | None = None,
) -> Transition:
    """The rollover timeout passed, but no later queue can take the chat now: it stays,
    and the timeout starts again (so it is tried once more later, not at every tick).
    When `chain`, as configured now, has no queue after the chat's, it stays for good."""
    if not rollover_due(state, now):
        return Transition(state)
    ts = iso(now)
    n, stamp = _next(state, now)
    event = RolloverHeld(
        **stamp,
        chat=state.chat,
        queue=state.chat.queue,
        reason=reason,
        skipped=skipped,
    )
    return Transition(
        _rechained(_evolve(state, state.chat, events=n, queued_at=ts), chain), [event]
    )


def check_transfer_reach(
    by_institution: str,
    home: str,
    target: str,
    cross_institution: bool,
    partners: frozenset[str],
    backups: frozenset[str],
) -> None:
    """A transfer stays in the operator's institution unless it says `cross_institution`,
    and then reaches only the patron's own library, partners and backup services. Any
    other institution's queue or operator is not there for this operator at all."""
    if target == by_institution:
        return
    if target not in partners | backups | {home}:
        raise Refusal("not_found", "no such transfer target")
    if not cross_institution:
        raise Refusal(
            "forbidden",
            f"that target is at {target}, outside your library: "
            "send cross_institution: true to transfer there",
        )
