"""Configuration documents as stored in MongoDB; every one carries its `institution`."""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from typing import Literal
from zoneinfo import available_timezones

import holidays
from pydantic import Field, ValidationInfo, field_validator, model_validator

from shared import names
from shared.schemas.base import Model
from shared.schemas.chat import TAG_PATTERN, normal_tag

Role = Literal["consortium_admin", "institution_admin", "operator"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"
MAX_FALLBACK = 10
MAX_ORIGINS = 20
ORIGIN_PATTERN = r"https?://[a-z0-9.-]+(:[0-9]{1,5})?"


@cache
def _zones() -> frozenset[str]:
    # available_timezones() walks the tz database on disk at every call.
    return frozenset(available_timezones())


def check_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"unknown time zone {value!r}; use an IANA name like 'America/Chicago'")
    return value


@cache
def _calendars() -> dict[str, list[str]]:
    return holidays.list_supported_countries()


def calendar_parts(value: str) -> tuple[str, str | None]:
    """`US` -> ("US", None); `US-TX` -> ("US", "TX"): a country, or one of its subdivisions,
    as the `holidays` package knows them."""
    country, _, subdiv = value.partition("-")
    known = _calendars()
    if country not in known:
        raise ValueError(f"unknown holiday calendar {value!r}; use a country code like 'US'")
    if subdiv and subdiv not in known[country]:
        raise ValueError(
            f"unknown holiday calendar {value!r}: {country} has no subdivision {subdiv!r}"
        )
    return country, subdiv or None


MAX_TAG_LIST = 200
RetentionAction = Literal["anonymise", "delete"]


class Institution(Model):
    name: str
    institution: str
    display_name: str
    timezone: str
    kind: Literal["library", "backup"] = "library"
    # The library's tag list for its staff (empty: any tag), and whether they must tag a
    # chat before closing it.
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAG_LIST)
    require_tag: bool = False
    # How long its patrons' transcripts are kept, and what happens after: anonymised
    # (patron details and text removed, figures kept) or deleted.
    retention_days: int = Field(default=365, ge=1, le=3650)
    retention_action: RetentionAction = "anonymise"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    def retention_cutoff(self, now: dt.datetime) -> dt.datetime:
        """The library's patron records (chats, closed tickets) created before this
        instant are due for its retention action."""
        return now - dt.timedelta(days=self.retention_days)

    @field_validator("tags")
    @classmethod
    def _plain_tags(cls, value: list[str]) -> list[str]:
        """Kept as chats carry them: lower case, single spaces, each listed once."""
        clean: dict[str, None] = {}
        for tag in value:
            normal = normal_tag(tag)
            if not re.match(TAG_PATTERN, normal):
                raise ValueError(f"{normal[:40]!r}: up to 40 letters, digits, -, _ or spaces")
            clean.setdefault(normal, None)
        return list(clean)


class Principal(Model):
    """Who a request is made for, as their signed token says; it travels with requests so
    that each service checks scope itself."""

    username: str
    institution: str
    role: Role

    def may_act_in(self, institution: str) -> bool:
        """Whether a request may concern `institution` for this person at all: their own,
        or any for a consortium admin. (What they may do there is each service's rule.)"""
        return self.role == "consortium_admin" or self.institution == institution

    def may_manage(self, institution: str) -> bool:
        """Whether this is an admin of `institution` (a consortium admin: of every one)."""
        if self.role == "consortium_admin":
            return True
        return self.role == "institution_admin" and self.institution == institution


class Account(Model):
    """A staff account as every replica sees it: everything but the password hash, which
    only the directory service holds."""

    # The role first: which form the user name takes depends on it.
    role: Role
    username: str
    institution: str
    display_name: str = Field(min_length=1, max_length=80)
    # Open chats this operator may own at once; None for no limit.
    max_chats: int | None = Field(default=None, ge=1, le=50)
    # A disabled account keeps its name on transcripts but can no longer sign in.
    disabled: bool = False
    # Which of the account's tokens are honoured: those signed in at this generation or
    # later. The directory raises it when every earlier token and session must end for
    # good: a new password, disabling (enabling again brings none back), another role.
    # Set by refdesk alone: what a client sends is ignored.
    token_generation: int = Field(default=0, ge=0)

    @field_validator("username")
    @classmethod
    def _named(cls, value: str, info: ValidationInfo) -> str:
        role = info.data.get("role")
        if role == "consortium_admin":
            return names.check_consortium_admin(value)
        if role is not None:  # an unknown role is refused on its own
            names.check_user(value)
        return value


class User(Account):
    """A staff account as stored. A consortium admin's `institution` is the consortium's
    name."""

    password_hash: str

    def account(self) -> Account:
        return Account.model_validate(self.model_dump(exclude={"password_hash"}))


class HoursWindow(Model):
    """A weekly window in the queue's time zone; a close not after open runs past midnight."""

    day: Day
    open: str = Field(pattern=TIME_PATTERN)
    close: str = Field(pattern=TIME_PATTERN)


class Holidays(Model):
    """A holiday of `calendar` closes the queue for the whole local day unless `covered`;
    `closures` are extra closed days (a snow day, the day before a holiday)."""

    calendar: str = "US"
    covered: bool = False
    closures: list[dt.date] = Field(default_factory=list, max_length=366)

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        calendar_parts(value)
        return value


class Queue(Model):
    name: str
    institution: str
    display_name: str
    timezone: str | None = None
    hours: list[HoursWindow] = Field(default_factory=list, max_length=70)
    holidays: Holidays = Field(default_factory=Holidays)
    # Queues tried next, in order, when this one is closed or unstaffed (see shared.chains).
    fallback: list[str] = Field(default_factory=list, max_length=MAX_FALLBACK)
    # An unclaimed chat moves on to the next open, staffed queue of its chain after this.
    rollover_after_s: int | None = Field(default=None, ge=5, le=86_400)

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        return names.check_queue(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_zone(value)

    @field_validator("fallback")
    @classmethod
    def _fallback_names(cls, value: list[str]) -> list[str]:
        for name in value:
            names.check_queue(name)
        if len(set(value)) != len(value):
            raise ValueError("a queue can appear in the fallback list only once")
        return value

    @model_validator(mode="after")
    def _not_own_fallback(self) -> Queue:
        if self.name in self.fallback:
            raise ValueError(f"fallback: {self.name} cannot fall back to itself")
        return self


WIDGET_ID_PATTERN = r"^[a-z0-9-]{1,40}$"


class Widget(Model):
    """A library's chat widget: the queue it routes to (whose chain brings in the backup
    service) and the web origins allowed to call its public endpoints."""

    id: str = Field(pattern=WIDGET_ID_PATTERN)
    institution: str
    queue: str
    title: str = Field(min_length=1, max_length=80)
    allowed_origins: list[str] = Field(default_factory=list, max_length=MAX_ORIGINS)
    # The loader opens the chat frame, and its socket, on every page view (invitations
    # reach a page at once) instead of when the patron opens the widget (invitations reach
    # it on its next status refresh, within 30 s). docs/operations.md says what it costs.
    live_socket: bool = False

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        # Browsers send the Origin header as scheme, host and port only, in lower case;
        # anything else could never match it.
        for origin in value:
            if not re.fullmatch(ORIGIN_PATTERN, origin):
                raise ValueError(
                    f"{origin!r} is not an origin like 'https://library.example.org' "
                    "(scheme, lower-case host and optional port; no path)"
                )
        if len(set(value)) != len(value):
            raise ValueError("an origin can be listed only once")
        return value


class Partnership(Model):
    """Libraries that cover for each other (shared coverage, as consortia arrange it): each
    one's operators may monitor and answer the others' queues, a chat answered so is visible
    to both libraries, and transfers between them are allowed with `cross_institution`.
    Set by the consortium admin; its `institution` is the consortium."""

    name: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=60)
    institution: str
    display_name: str = Field(min_length=1, max_length=80)
    institutions: list[str] = Field(min_length=2, max_length=20)

    @field_validator("institutions")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        for name in value:
            names.check_part(name, "institution")
        if len(set(value)) != len(value):
            raise ValueError("an institution can be listed only once")
        return value


class Snippet(Model):
    """Canned text an operator inserts by name: `<institution> (<description>)`, of one
    library (its `institution`) or of the whole consortium (`institution`: the consortium)."""

    name: str = Field(max_length=120)
    institution: str
    body: str = Field(min_length=1, max_length=4000)

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        return names.check_snippet(value)
