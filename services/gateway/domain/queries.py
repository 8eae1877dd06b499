"""What staff may ask of the REST API beyond who they are, and how answers are shaped: the
span of a statistics or search request, where "today" starts, guest ids, statistics as a
spreadsheet, which reads go in another library's audit log, and what a follow-up ticket
takes from its chat."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.errors import Refusal
from shared.schemas.chat import Chat
from shared.schemas.privacy import GUEST_ID_PATTERN
from shared.schemas.requests import Stats, StatsFigures
from shared.schemas.tickets import SUBJECT_MAX, TicketSource

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


# The longest span a library's staff may ask statistics or a search for; a consortium admin
# may ask for more.
MAX_SPAN = timedelta(days=366)


def aware(field: str, *instants: datetime) -> None:
    """A span's edges must say their offset: a bare local time is ambiguous."""
    if any(instant.tzinfo is None for instant in instants):
        raise Refusal("invalid", f"{field}: give a time zone offset, e.g. Z")


def check_span(role: str, start: datetime | None, end: datetime | None) -> None:
    """The span a statistics or search request covers: edges with their offsets, the end
    after the start, and at most MAX_SPAN unless the caller is a consortium admin. Either
    edge may be left open."""
    if start is not None and end is not None:
        aware("from/to", start, end)
        if end <= start:
            raise Refusal("invalid", "to: must be after from")
        if role != "consortium_admin" and end - start > MAX_SPAN:
            raise Refusal("invalid", "from: a span is at most a year (366 days)")
    elif start is not None or end is not None:
        aware("from/to", *(t for t in (start, end) if t is not None))


def reads_to_audit(reader_institution: str, institution: str, ids: Sequence[str]) -> bool:
    """Whether records of `institution` served to a reader go in its audit log: any, read
    from outside it. The transcripts service keeps the log and applies the audit rule."""
    return institution != reader_institution and bool(ids)


@dataclass(frozen=True)
class FollowUp:
    """What a new ticket says, once the chat it follows up (if any) has filled in what staff
    left out."""

    source: TicketSource
    email: str
    name: str | None
    subject: str
    question: str


def follow_up(
    chat: Chat | None, email: str | None, name: str | None, subject: str | None, body: str | None
) -> FollowUp:
    """A ticket from a chat (`missed_chat` when it was missed) takes the chat's email, name
    and question where staff gave none, its subject the question on one line; without a
    chat, staff give them. The patron's email is needed either way: refused here, before
    the tickets service is asked, saying where it would have come from (the tickets service
    checks the address itself)."""
    source: TicketSource = "staff"
    question = body
    if chat is not None:
        source = "missed_chat" if chat.state == "missed" else "chat"
        email = email or chat.patron.email
        name = name or chat.patron.name
        asked = chat.question or "Follow-up"
        subject = subject or " ".join(asked.split())[:SUBJECT_MAX]
        question = question or asked
        if email is None:
            raise Refusal("invalid", "email: the chat has none; ask the patron for it")
    if email is None:
        raise Refusal("invalid", "email: a ticket needs the patron's email address")
    return FollowUp(source, email, name, subject or "", question or "")
