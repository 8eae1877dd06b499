"""What a signed-in operator does with chats, frame by frame: claiming, taking over,
transfers and the answers to them, proactive chats, messages (or snippets), typing, tags
and closing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal, TypeVar

from services.gateway import domain
from services.gateway.core import Gateway
from services.gateway.frames import Reply
from services.gateway.hub import OperatorLink
from shared import subjects
from shared.errors import Refusal
from shared.schemas.base import Model
from shared.schemas.chat import Sender
from shared.schemas.protocol import (
    ChatAck,
    ChatClaim,
    ChatClose,
    ChatStartProactive,
    ChatTag,
    ChatTake,
    ChatTransfer,
    CloseAck,
    OperatorMessage,
    OwnedAck,
    ProactiveAck,
    SendMessage,
    StateAck,
    TransferAccept,
    TransferAck,
    TransferCancel,
    TransferDecline,
    Typing,
)
from shared.schemas.requests import (
    AnswerOffer,
    ChatResult,
    ClaimChat,
    StartProactive,
    TagChat,
    TransferChat,
    TransferResult,
)

Answer = TypeVar("Answer", bound=Model)


class OperatorChats:
    """The chat frames of one operator's socket, once it has authenticated (`link`)."""

    def __init__(self, gw: Gateway, link: OperatorLink) -> None:
        self.gw = gw
        self.link = link

    def _sender(self) -> Sender:
        return Sender(kind="operator", name=self.link.name, id=self.link.username)

    async def _ask_routing(
        self,
        action: subjects.RoutingAction,
        request: Callable[..., Model],
        answer: type[Answer],
        **fields: Any,
    ) -> Answer:
        """Ask routing, in the operator's institution, for `action` with `fields`."""
        institution = self.link.institution
        asked = request(institution=institution, **fields)
        return await self.gw.bus.request(subjects.routing(institution, action), asked, answer)

    def _must_be_online(self, doing: str) -> OperatorLink:
        domain.must_be_online(self.link.status, doing)
        return self.link

    async def _own(self, action: subjects.RoutingAction, chat_id: str) -> Reply:
        """Claim, take over or accept a chat; the ack carries the chat and its history."""
        link = self._must_be_online("take chats")
        request: Model
        if action in ("claim", "take"):
            request = ClaimChat(
                institution=link.institution,
                chat_id=chat_id,
                operator=link.username,
                operator_name=link.name,
                monitoring=sorted(link.monitoring),
                max_chats=link.max_chats,
            )
        else:
            request = AnswerOffer(
                institution=link.institution,
                chat_id=chat_id,
                operator=link.username,
                operator_name=link.name,
                max_chats=link.max_chats,
            )
        result = await self.gw.bus.request(
            subjects.routing(link.institution, action), request, ChatResult
        )
        # Known now, before the event comes round, so typing works at once. The chat's
        # history lives under its home library, which may not be ours.
        messages = await self.gw.own_chat(link, result.chat.institution, chat_id)
        return Reply(ack=OwnedAck(chat=result.chat, messages=messages))

    async def claim(self, frame: ChatClaim) -> Reply:
        return await self._own("claim", frame.chat_id)

    async def take(self, frame: ChatTake) -> Reply:
        return await self._own("take", frame.chat_id)

    async def accept(self, frame: TransferAccept) -> Reply:
        return await self._own("accept", frame.chat_id)

    async def decline(self, frame: TransferDecline) -> Reply:
        return await self._end_offer("decline", frame.chat_id)

    async def cancel_transfer(self, frame: TransferCancel) -> Reply:
        return await self._end_offer("cancel", frame.chat_id)

    async def _end_offer(self, action: Literal["decline", "cancel"], chat_id: str) -> Reply:
        """A target's no, or the owner's taking an offer back: the chat's state after."""
        link = self.link
        result = await self._ask_routing(
            action,
            AnswerOffer,
            ChatResult,
            chat_id=chat_id,
            operator=link.username,
            operator_name=link.name,
        )
        return Reply(ack=StateAck(state=result.chat.state))

    async def transfer(self, frame: ChatTransfer) -> Reply:
        link = self.link
        result = await self._ask_routing(
            "transfer",
            TransferChat,
            TransferResult,
            chat_id=frame.chat_id,
            by=link.username,
            to_operator=frame.to.operator,
            to_queue=frame.to.queue,
            note=frame.note,
            cross_institution=frame.cross_institution,
        )
        return Reply(ack=TransferAck(chat=result.chat, targets=result.targets))

    async def start_proactive(self, frame: ChatStartProactive) -> Reply:
        link = self._must_be_online("start chats")
        body = domain.check_body(frame.body, self.gw.settings.max_body_bytes)
        since = self.gw.clock.now() - timedelta(seconds=self.gw.settings.proactive_window_s)
        widget_id = await self.gw.guests.guest_widget(link.institution, frame.guest_id, since)
        if widget_id is None:
            raise Refusal("not_found", "no such guest on your widgets in the last 24 hours")
        queue = frame.queue
        if queue is None:
            widget = self.gw.view.widget(widget_id)
            if widget is None:
                raise Refusal("not_found", "no such widget")
            queue = widget.queue
        chat_id = uuid.uuid4().hex
        result = await self._ask_routing(
            "proactive",
            StartProactive,
            ChatResult,
            chat_id=chat_id,
            queue=queue,
            guest_id=frame.guest_id,
            widget=widget_id,
            operator=link.username,
            operator_name=link.name,
            body=body,
            patron_connected=self.gw.hub.guest_connected(frame.guest_id),
            max_chats=link.max_chats,
        )
        await self.gw.own_chat(link, result.chat.institution, chat_id)
        return Reply(ack=ProactiveAck(chat_id=chat_id, chat=result.chat))

    async def message(self, frame: OperatorMessage) -> Reply:
        body = frame.body if frame.body is not None else self._snippet(frame.snippet or "")
        sent = SendMessage(
            type="message", chat_id=frame.chat_id, body=body, client_id=frame.client_id
        )
        return await self.gw.post_message(self.link.institution, sent, self._sender())

    def _snippet(self, name: str) -> str:
        """A snippet's text, if it is the operator's library's or the consortium's."""
        found = self.gw.view.snippets.get(name)
        return domain.usable_snippet(
            found, name, self.link.institution, self.gw.settings.consortium
        )

    async def typing(self, frame: Typing) -> Reply:
        home = self.gw.feeds.home_of(frame.chat_id)
        if home is None or self.gw.hub.chat_owners.get(frame.chat_id) != self.link.username:
            raise Refusal("forbidden", "only the chat's owner may type in it")
        return await self.gw.send_typing(home, frame.chat_id, self._sender())

    async def tag(self, frame: ChatTag) -> Reply:
        result = await self._ask_routing(
            "tag",
            TagChat,
            ChatResult,
            chat_id=frame.chat_id,
            by=self._sender(),
            tags=frame.tags,
            remove=frame.remove,
        )
        return Reply(ack=ChatAck(chat=result.chat))

    async def close(self, frame: ChatClose) -> Reply:
        result = await self.gw.close_chat(
            self.link.institution, frame.chat_id, self._sender(), frame.tags
        )
        return Reply(ack=CloseAck(chat=result.chat, changed=result.changed))
