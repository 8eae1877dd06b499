"""Binds the directory's NATS endpoints to the configuration rules and its store: check,
write MongoDB, project into the config bucket, answer with the bucket revision."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from services.directory import domain, metrics
from services.directory.store import (
    INSTITUTION,
    PARTNERSHIP,
    QUEUE,
    SNIPPET,
    USER,
    WIDGET,
    ConfigStore,
    Kind,
)
from shared import subjects
from shared.bus import Endpoint
from shared.endpoints import Q
from shared.errors import Refusal
from shared.passwords import hash_password, verify_password
from shared.schemas.base import Model
from shared.schemas.directory import (
    DeletePartnership,
    DeleteQueue,
    DeleteSnippet,
    DeleteWidget,
    Principal,
    Saved,
    SaveInstitution,
    SavePartnership,
    SaveQueue,
    SaveSnippet,
    SaveUser,
    SaveWidget,
    SetPassword,
    SignIn,
)
from shared.schemas.records import (
    Account,
    Institution,
    Partnership,
    Queue,
    Snippet,
    User,
    Widget,
)

# Verified when the user name is unknown, so that a sign-in takes as long either way and
# its timing does not tell which names exist.
_DECOY = hash_password("refdesk-decoy-password-never-used")


def _own(req_institution: str, principal: Principal) -> None:
    """A request travels on its principal's institution subject (see Bus.serve)."""
    if principal.institution != req_institution:
        raise Refusal("forbidden", "the request's institution is not its principal's")


class DirectoryHandlers:
    def __init__(
        self,
        store: ConfigStore,
        consortium: str,
        common_passwords: frozenset[str],
        hashes_at_once: int = 2,
    ):
        self.store = store
        self.consortium = consortium
        self.common = common_passwords
        # argon2 is built to be expensive: a few at a time, so a burst of sign-ins (or of
        # guesses) queues here instead of taking every core from the rest of the replica.
        self._hashing = asyncio.Semaphore(hashes_at_once)

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(hash_password, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        async with self._hashing:
            return await asyncio.to_thread(verify_password, password_hash, password)

    def endpoints(self) -> list[Endpoint[Any]]:
        def bind(
            action: subjects.DirectoryAction, handler: Callable[[Q], Awaitable[Model]]
        ) -> Endpoint[Q]:
            return Endpoint.of(action, subjects.directory_endpoint(action), handler)

        return [
            bind("save_institution", self.save_institution),
            bind("save_queue", self.save_queue),
            bind("delete_queue", self.delete_queue),
            bind("save_widget", self.save_widget),
            bind("delete_widget", self.delete_widget),
            bind("save_user", self.save_user),
            bind("set_password", self.set_password),
            bind("sign_in", self.sign_in),
            bind("save_partnership", self.save_partnership),
            bind("delete_partnership", self.delete_partnership),
            bind("save_snippet", self.save_snippet),
            bind("delete_snippet", self.delete_snippet),
        ]

    async def _write(self, kind: Kind, record: Model, create: bool, what: str) -> Saved:
        """Store and publish one record; a create of a key that exists, or a replace of one
        that does not, stores nothing."""
        if not await self.store.save(kind, record, create):
            raise Refusal(
                "conflict" if create else "not_found",
                f"{what} {'already exists' if create else 'does not exist'}",
            )
        return await self._published(kind, getattr(record, kind.key))

    async def _published(self, kind: Kind, name: str) -> Saved:
        revision = await self.store.project(kind, name)
        metrics.CHANGES.labels(kind.name).inc()
        return Saved(revision=revision)

    async def _remove(
        self,
        kind: Kind,
        name: str,
        principal: Principal,
        rule: Callable[[Any], Awaitable[None]],
    ) -> Saved:
        """Delete a record the principal can see, once `rule` allows it, and publish that."""
        stored = await self.store.get(kind, name)
        domain.check_stored(stored, kind.name, principal)
        await rule(stored)
        await self.store.delete(kind, name)
        return await self._published(kind, name)

    async def _by_name(self, kind: Kind) -> Mapping[str, Model]:
        return {getattr(r, kind.key): r for r in await self.store.all(kind)}

    # --- institutions ----------------------------------------------------------------------

    async def save_institution(self, req: SaveInstitution) -> Saved:
        _own(req.institution, req.principal)
        stored = None if req.create else (await self._by_name(INSTITUTION)).get(req.record.name)
        assert stored is None or isinstance(stored, Institution)
        domain.check_institution(req.record, req.principal, self.consortium, stored)
        return await self._write(
            INSTITUTION, req.record, req.create, f"institution {req.record.name}"
        )

    # --- partner coverage ----------------------------------------------------------------------

    async def save_partnership(self, req: SavePartnership) -> Saved:
        _own(req.institution, req.principal)
        institutions: dict[str, Institution] = await self._by_name(INSTITUTION)  # type: ignore[assignment]
        domain.check_partnership(req.record, req.principal, self.consortium, institutions)
        what = f"partnership {req.record.name}"
        return await self._write(PARTNERSHIP, req.record, req.create, what)

    async def delete_partnership(self, req: DeletePartnership) -> Saved:
        _own(req.institution, req.principal)

        async def rule(_: Partnership) -> None:
            if req.principal.role != "consortium_admin":
                raise Refusal("forbidden", "only a consortium admin sets up partner coverage")

        return await self._remove(PARTNERSHIP, req.name, req.principal, rule)

    # --- snippets ----------------------------------------------------------------------------

    async def save_snippet(self, req: SaveSnippet) -> Saved:
        _own(req.institution, req.principal)
        institutions: dict[str, Institution] = await self._by_name(INSTITUTION)  # type: ignore[assignment]
        if not req.create:
            stored: Snippet | None = await self.store.get(SNIPPET, req.record.name)
            domain.check_stored(stored, "snippet", req.principal)
        domain.check_snippet(req.record, req.principal, self.consortium, institutions)
        return await self._write(SNIPPET, req.record, req.create, f"snippet {req.record.name}")

    async def delete_snippet(self, req: DeleteSnippet) -> Saved:
        _own(req.institution, req.principal)

        async def rule(stored: Snippet) -> None:
            institutions: dict[str, Institution] = await self._by_name(INSTITUTION)  # type: ignore[assignment]
            domain.check_snippet(stored, req.principal, self.consortium, institutions)

        return await self._remove(SNIPPET, req.name, req.principal, rule)

    # --- queues and widgets -------------------------------------------------------------------

    async def save_queue(self, req: SaveQueue) -> Saved:
        _own(req.institution, req.principal)
        queue, principal = req.record, req.principal
        stored: dict[str, Queue] = await self._by_name(QUEUE)  # type: ignore[assignment]
        if not req.create:
            domain.check_replace(stored.get(queue.name), queue, "queue", principal)
        domain.check_admin("queues", queue.institution, principal)
        if await self.store.get(INSTITUTION, queue.institution) is None:
            raise Refusal("invalid", f"institution: no institution {queue.institution}")
        domain.check_queue_name(queue, self.consortium)
        domain.check_fallback(queue, stored, principal)
        return await self._write(QUEUE, queue, req.create, f"queue {queue.name}")

    async def delete_queue(self, req: DeleteQueue) -> Saved:
        _own(req.institution, req.principal)

        async def rule(queue: Queue) -> None:
            domain.check_admin("queues", queue.institution, req.principal)
            queues, widgets = await self.store.all(QUEUE), await self.store.all(WIDGET)
            domain.queue_in_use(req.name, queues, widgets)

        return await self._remove(QUEUE, req.name, req.principal, rule)

    async def save_widget(self, req: SaveWidget) -> Saved:
        _own(req.institution, req.principal)
        widget = req.record
        if not req.create:
            stored: Widget | None = await self.store.get(WIDGET, widget.id)
            domain.check_replace(stored, widget, "widget", req.principal)
        domain.check_admin("widgets", widget.institution, req.principal)
        domain.check_widget_queue(widget, await self.store.get(QUEUE, widget.queue))
        return await self._write(WIDGET, widget, req.create, f"widget {widget.id}")

    async def delete_widget(self, req: DeleteWidget) -> Saved:
        _own(req.institution, req.principal)

        async def rule(widget: Widget) -> None:
            domain.check_admin("widgets", widget.institution, req.principal)

        return await self._remove(WIDGET, req.id, req.principal, rule)

    # --- staff accounts ------------------------------------------------------------------------

    async def save_user(self, req: SaveUser) -> Saved:
        _own(req.institution, req.principal)
        account, principal = req.record, req.principal
        institutions: dict[str, Institution] = await self._by_name(INSTITUTION)  # type: ignore[assignment]
        users: list[User] = await self.store.all(USER)
        stored = next((u for u in users if u.username == account.username), None)
        if not req.create:
            domain.check_replace(stored, account, "user", principal)
            assert stored is not None
            # Both what the account was and what it becomes must be the admin's to manage.
            domain.check_account(stored.account(), principal, self.consortium, institutions)
            domain.check_keeps_consortium_admin(account, [u.account() for u in users])
        domain.check_account(account, principal, self.consortium, institutions)
        if req.password is not None:
            domain.check_password(req.password, self.common)
            password_hash = await self._hash(req.password)
        elif stored is not None and not req.create:
            password_hash = stored.password_hash
        else:
            raise Refusal("invalid", "password: a new account needs one")
        generation = domain.token_generation(
            None if req.create else stored, account, req.password is not None
        )
        user = User(
            **account.model_dump(exclude={"token_generation"}),
            token_generation=generation,
            password_hash=password_hash,
        )
        return await self._write(USER, user, req.create, f"user {account.username}")

    async def set_password(self, req: SetPassword) -> Saved:
        _own(req.institution, req.principal)
        user: User | None = await self.store.get(USER, req.username)
        domain.check_stored(user, "user", req.principal)
        assert user is not None
        if not domain.may_set_password(req.principal, user.account()):
            raise Refusal("forbidden", "you may not change that account's password")
        domain.check_password(req.password, self.common)
        password_hash = await self._hash(req.password)
        # Every token signed with the old password ends, on every gateway, for good.
        generation = domain.token_generation(user, user, new_password=True)
        await self.store.set_fields(
            USER, req.username, {"password_hash": password_hash, "token_generation": generation}
        )
        return await self._published(USER, req.username)

    async def sign_in(self, req: SignIn) -> Account:
        user: User | None = await self.store.get(USER, req.username)
        # argon2 takes tens of milliseconds of CPU: in a thread (it releases the GIL), so a
        # sign-in does not hold up this replica's other requests.
        matches = await self._verify(user.password_hash if user else _DECOY, req.password)
        if user is None or not matches:
            metrics.SIGN_INS.labels("refused").inc()
            raise Refusal("unauthorized", "wrong user name or password")
        if user.disabled:
            metrics.SIGN_INS.labels("disabled").inc()
            raise Refusal("unauthorized", "this account is disabled; ask your library's admin")
        metrics.SIGN_INS.labels("ok").inc()
        return user.account()
