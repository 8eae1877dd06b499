"""What the services ask of MongoDB when they write: a majority, and journaling as the
deployment configures it."""

from __future__ import annotations

from shared import store


async def test_writes_wait_for_a_majority_and_leave_journaling_to_the_server():
    # A replica set journals majority writes by default; asking again from the client
    # made the embedded local server flush its file once per document.
    client = store.connect("mongodb://127.0.0.1:9/", "tests")
    try:
        assert client.write_concern.document == {"w": "majority"}
    finally:
        await client.close()


async def test_a_standalone_server_can_be_asked_to_journal_each_write_in_the_uri():
    client = store.connect("mongodb://127.0.0.1:9/?journal=true", "tests")
    try:
        assert client.write_concern.document == {"w": "majority", "j": True}
    finally:
        await client.close()
