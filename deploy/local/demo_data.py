"""Demo data for `make run` and the tests: a consortium `demo` with two libraries and a backup
service. Loading it again changes nothing: every document is written only if absent.

    python -m deploy.local.demo_data   (uses REFDESK_MONGODB_URI / REFDESK_MONGODB_DB)
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from pymongo.asynchronous.database import AsyncDatabase

from shared import store
from shared.passwords import hash_password
from shared.schemas.records import Holidays, HoursWindow, Institution, Queue, User, Widget
from shared.settings import CommonSettings

CONSORTIUM = "demo"
DEFAULT_PASSWORD = "refdesk-demo"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
ALL_DAYS = (*WEEKDAYS, "sat", "sun")
ORIGINS = ["http://127.0.0.1:8000", "http://localhost:8000"]


def institutions() -> list[Institution]:
    return [
        Institution(
            name="hill",
            institution="hill",
            display_name="Hill College Library",
            timezone="America/Chicago",
        ),
        Institution(
            name="river",
            institution="river",
            display_name="River University Library",
            timezone="America/New_York",
        ),
        Institution(
            name="backup",
            institution="backup",
            display_name="Backup Service",
            timezone="America/Chicago",
            kind="backup",
        ),
    ]


def users(password: str) -> list[User]:
    rows = [
        ("demo-admin", CONSORTIUM, "consortium_admin", "Consortium Admin"),
        ("demo-hill-admin", "hill", "institution_admin", "Hill Admin"),
        ("demo-hill-ann", "hill", "operator", "Ann"),
        ("demo-hill-bob", "hill", "operator", "Bob"),
        ("demo-hill-eve", "hill", "operator", "Eve"),
        ("demo-river-cat", "river", "operator", "Cat"),
        ("demo-backup-dan", "backup", "operator", "Dan"),
    ]
    # Eve is a student assistant: one chat at a time.
    limits = {"demo-hill-eve": 1}
    hashed = hash_password(password)
    return [
        User(
            username=u,
            institution=i,
            role=r,
            display_name=n,
            password_hash=hashed,
            max_chats=limits.get(u),
        )
        for u, i, r, n in rows
    ]


def queues() -> list[Queue]:
    def window(day: str, open_: str, close: str) -> HoursWindow:
        return HoursWindow(day=day, open=open_, close=close)

    return [
        Queue(
            name="demo-hill",
            institution="hill",
            display_name="Hill Library",
            hours=[window(d, "00:00", "24:00") for d in ALL_DAYS],
            holidays=Holidays(calendar="US", covered=True),
        ),
        Queue(
            name="demo-river",
            institution="river",
            display_name="River Library",
            hours=[window(d, "09:00", "18:00") for d in WEEKDAYS],
            holidays=Holidays(calendar="US", covered=False),
            # Closed or unstaffed, River's chats go to the backup service; one left waiting
            # two minutes moves there too once the backup service is open.
            fallback=["demo-backup"],
            rollover_after_s=120,
        ),
        # The backup service works the consortium's nights and weekends (a real procedure:
        # Mon-Fri 5pm-8am, Sat 10am-10pm, Sun 10am to Monday 8am; no service on holidays).
        Queue(
            name="demo-backup",
            institution="backup",
            display_name="Backup Service",
            hours=[
                *(window(d, "17:00", "08:00") for d in WEEKDAYS),
                window("sat", "10:00", "22:00"),
                window("sun", "10:00", "08:00"),
            ],
            holidays=Holidays(calendar="US", covered=False),
        ),
    ]


def widgets() -> list[Widget]:
    return [
        Widget(
            id="hill",
            institution="hill",
            queue="demo-hill",
            title="Ask Hill Library",
            allowed_origins=ORIGINS,
        ),
        Widget(
            id="river",
            institution="river",
            queue="demo-river",
            title="Ask River Library",
            allowed_origins=ORIGINS,
        ),
    ]


async def _insert_absent(
    db: AsyncDatabase[store.Document], collection: str, key: str, items: list[BaseModel]
) -> int:
    added = 0
    for item in items:
        doc = item.model_dump(mode="json")
        result = await db[collection].update_one(
            {key: doc[key]}, {"$setOnInsert": doc}, upsert=True
        )
        added += 1 if result.upserted_id is not None else 0
    return added


async def load(db: AsyncDatabase[store.Document], password: str | None = None) -> int:
    """Insert the demo documents that are missing; returns how many were added."""
    pw = password or DEFAULT_PASSWORD
    added = 0
    added += await _insert_absent(db, "institutions", "name", list(institutions()))
    existing = {d["username"] async for d in db.users.find({}, {"username": 1})}
    missing = [u for u in users(pw) if u.username not in existing]
    added += await _insert_absent(db, "users", "username", list(missing))
    added += await _insert_absent(db, "queues", "name", list(queues()))
    added += await _insert_absent(db, "widgets", "id", list(widgets()))
    return added


async def _main() -> None:
    settings = CommonSettings()
    client = store.connect(settings.mongodb_uri, "demo-data")
    try:
        added = await load(store.database(client, settings.mongodb_db))
        print(f"demo data: {added} documents added")
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(_main())
