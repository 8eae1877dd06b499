"""Which client frames a chat event becomes, and for whom (the patron, the owning operator,
a queue's watchers); what a patron is shown of staff (display names, never logins); widget
status frames and transfer offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

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
from shared.schemas.protocol import (
    ChatClaimedFrame,
    ChatClosedFrame,
    ChatRequeuedFrame,
    ChatRolledOverFrame,
    ChatTransferred,
    ChatTransferring,
    MessageFrame,
    OwnerPresenceFrame,
    PatronChat,
    PatronSender,
    PatronTypingFrame,
    QueueChatAdded,
    QueueChatRemoved,
    TransferAcceptedFrame,
    TransferExpiredFrame,
    TransferOfferFrame,
    TransferWithdrawnFrame,
    WidgetStatusFrame,
)
from shared.schemas.requests import WidgetStatus


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
