"""Widget status follows the calendar by itself: nobody acts, the clock crosses midnight
into Thanksgiving in Chicago, and River's widget goes offline.

The system runs on its own servers with every clock shifted to a few seconds before
Thursday 26 November 2026, 00:00 in Chicago (06:00 UTC). Thanksgiving has already begun in
New York, so River is closed for the holiday and its chats fall back to the backup service,
which is still open for Wednesday night until its own midnight.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from deploy.local.system import LocalSystem
from tests.client import operator, patron, widget_says
from tests.conftest import start_system
from tests.servers import Servers

MIDNIGHT_IN_CHICAGO = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
# Time enough for the services to start and the operator and patron to connect.
LEAD_S = 15.0


@pytest.fixture(scope="module")
def before_midnight(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalSystem, float]]:
    """The system, and the monotonic instant at which its clocks reach the midnight."""
    shift = (MIDNIGHT_IN_CHICAGO - datetime.now(UTC)).total_seconds() - LEAD_S
    edge = time.monotonic() + LEAD_S
    running = start_system(
        servers,
        tmp_path_factory.mktemp("midnight"),
        db="refdesk_midnight",
        env={"REFDESK_CLOCK_SHIFT_S": f"{shift:.3f}"},
        own_nats=True,
    )
    try:
        yield running, edge
    finally:
        running.stop()


async def test_a_holiday_starting_takes_the_widget_offline_within_two_seconds(
    before_midnight: tuple[LocalSystem, float],
):
    system, edge = before_midnight
    dan = await operator(system.gateway_url, "demo-backup-dan", ["demo-backup"])
    pat = await patron(system.gateway_url, "river")
    try:
        # Dan has just come online: the widget says so at once or within a tick.
        await widget_says(
            pat,
            {
                "online": True,
                "queue": "demo-backup",
                "reason": "fallback: holiday: Thanksgiving Day",
            },
        )
        assert time.monotonic() < edge, "the system took too long to start"
        offline = await pat.expect(
            lambda f: f["type"] == "widget.status" and f["online"] is False, timeout=LEAD_S + 5
        )
        late = time.monotonic() - edge
        print(f"widget.status offline {late:.2f} s after midnight")
        assert offline == {
            "type": "widget.status",
            "online": False,
            "queue": None,
            "reason": "closed: holiday: Thanksgiving Day",
        }
        assert -0.5 < late < 2.0
        refused = await pat.request({"type": "chat.start", "question": "Open today?"})
        assert refused["code"] == "unavailable" and "Thanksgiving" in refused["message"]
    finally:
        await pat.close()
        await dan.close()
