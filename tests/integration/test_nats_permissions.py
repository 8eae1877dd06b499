"""What each service's NATS user may and may not publish and subscribe to, on a real
nats-server configured as `make run` configures it (deploy/local/nats_auth.py).

Allowed: an admin subscriber hears the message. Refused: the server answers with a
permissions violation (nats-py hands it to the error callback) and nobody hears it.
Subjects use the token `permtest`, which no service serves, so the session's system
is not disturbed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from deploy.local import nats_auth
from shared.bus import flushed
from tests.client import eventually
from tests.servers import Servers

ALLOWED = {
    "gateway": [
        "routing.permtest.permtest",
        "directory.permtest.permtest",
        "chat.permtest.x.typing",
    ],
    "routing": ["queue.permtest.evt", "widget.permtest.x.status"],
    "presence": ["presence.permtest.evt"],
    "transcripts": [],
    "tickets": ["ticket.permtest.evt", "$KV.acknowledgements.permtest"],
    "directory": ["$KV.config.permtest"],
}
REFUSED = {
    # Only routing writes chat events; only the directory writes configuration.
    "gateway": ["chat.permtest.x.evt", "$KV.config.permtest", "presence.permtest.evt"],
    # Only the gateway makes client-facing requests.
    "routing": ["routing.permtest.claim", "directory.permtest.save_user", "$KV.config.permtest"],
    "presence": ["chat.permtest.x.evt", "routing.permtest.permtest", "$KV.config.permtest"],
    "transcripts": ["chat.permtest.x.evt", "transcripts.permtest.get", "$KV.presence.permtest"],
    "tickets": ["chat.permtest.x.evt", "tickets.permtest.create", "$KV.throttle.permtest"],
    "directory": ["chat.permtest.x.evt", "presence.permtest.evt"],
}
# Streams and buckets a service has no use for, through the JetStream API; and
# destroying any.
STREAM_REFUSED = {
    "tickets": ["$JS.API.DIRECT.GET.CHAT_EVENTS", "$JS.API.STREAM.UPDATE.KV_presence"],
    "directory": ["$JS.API.CONSUMER.CREATE.CHAT_EVENTS", "$JS.API.DIRECT.GET.KV_presence"],
    "presence": ["$JS.API.STREAM.MSG.GET.CHAT_EVENTS", "$JS.API.STREAM.UPDATE.KV_config"],
    "gateway": [
        "$JS.API.STREAM.PURGE.CHAT_EVENTS",
        "$JS.API.STREAM.DELETE.CHAT_EVENTS",
        "$JS.API.DIRECT.GET.KV_desks",
    ],
    "routing": ["$JS.API.STREAM.MSG.DELETE.CHAT_EVENTS", "$JS.API.CONSUMER.CREATE.KV_throttle"],
    # Transcripts purges chats from the chat stream (retention, erasure), nothing else.
    "transcripts": [
        "$JS.API.DIRECT.GET.KV_presence",
        "$JS.API.STREAM.LIST",
        "$JS.API.STREAM.PURGE.KV_config",
        "$JS.API.STREAM.DELETE.CHAT_EVENTS",
    ],
}


class Connection:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Client | None = None

    async def open(self, url: str) -> Connection:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc))

        self.nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False)
        return self

    async def violated(self, subject: str, what: str = "publish") -> bool | None:
        # nats-py hands the server's message on in lower case.
        said = f'permissions violation for {what} to "{subject.lower()}"'
        return True if any(said in e.lower() for e in self.errors) else None


def url_of(servers: Servers, user: str) -> str:
    return nats_auth.url_for(servers.nats_url, user, servers.nats_users[user])


@pytest_asyncio.fixture
async def admin(servers: Servers) -> AsyncIterator[Client]:
    nc = await nats.connect(servers.nats_url)
    yield nc
    await nc.close()


@pytest.mark.parametrize("service", nats_auth.SERVICES)
async def test_each_service_publishes_only_what_it_must(
    servers: Servers, admin: Client, service: str
):
    user = await Connection().open(url_of(servers, service))
    assert user.nc is not None
    try:
        for subject in ALLOWED[service]:
            sub = await admin.subscribe(subject)
            await flushed(admin)
            await user.nc.publish(subject, b"permtest")
            await user.nc.flush()
            heard = await sub.next_msg(timeout=5)
            assert heard.data == b"permtest", subject
            await sub.unsubscribe()
        for subject in REFUSED[service] + STREAM_REFUSED.get(service, []):
            await user.nc.publish(subject, b"permtest")
            await user.nc.flush()
            await eventually(lambda s=subject: user.violated(s), f"{service} refused {subject}")
    finally:
        await user.nc.close()


async def test_a_service_cannot_listen_to_another_services_requests(servers: Servers):
    for service, subject in (("gateway", "routing.*.*"), ("tickets", "chat.*.*.evt")):
        user = await Connection().open(url_of(servers, service))
        assert user.nc is not None
        try:
            await user.nc.subscribe(subject)
            await user.nc.flush()
            await eventually(
                lambda s=subject, u=user: u.violated(s, "subscription"),
                f"{service} refused a subscription to {subject}",
            )
        finally:
            await user.nc.close()


async def test_a_client_without_credentials_is_refused(servers: Servers):
    bare = servers.nats_url.split("@", 1)[1]
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await asyncio.wait_for(
            nats.connect(f"nats://{bare}", allow_reconnect=False, max_reconnect_attempts=0),
            timeout=10,
        )
