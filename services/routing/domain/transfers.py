"""Transfers: the owner offers a chat, the first target to accept owns it; an offer is
declined, cancelled, withdrawn by the owner's message or expires."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from services.routing.domain.chats import _handed_to
from services.routing.domain.state import Transition, _evolve, _next, _require_open
from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.chat import (
    ChatState,
    TransferOffer,
)
from shared.schemas.events import (
    ChatEvent,
    TransferAccepted,
    TransferDeclined,
    TransferExpired,
    TransferOffered,
    TransferWithdrawn,
)


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
