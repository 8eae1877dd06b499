"""Configuration documents as stored in MongoDB; every one carries its `institution`."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import available_timezones

from pydantic import Field, field_validator, model_validator

from shared import names
from shared.schemas.base import Model

Role = Literal["consortium_admin", "institution_admin", "operator"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


class Institution(Model):
    name: str
    institution: str
    display_name: str
    timezone: str
    kind: Literal["library", "backup"] = "library"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in available_timezones():
            raise ValueError(f"unknown time zone {value!r}")
        return value


class User(Model):
    """A staff account. A consortium admin's `institution` is the consortium's name."""

    username: str
    institution: str
    role: Role
    display_name: str
    password_hash: str
    # Open chats this operator may own at once; None for no limit.
    max_chats: int | None = Field(default=None, ge=1, le=50)

    @model_validator(mode="after")
    def _named(self) -> User:
        if self.role == "consortium_admin":
            names.check_consortium_admin(self.username)
        else:
            names.check_user(self.username)
        return self


class HoursWindow(Model):
    """A weekly window in the queue's time zone; a close not after open runs past midnight."""

    day: Day
    open: str = Field(pattern=TIME_PATTERN)
    close: str = Field(pattern=TIME_PATTERN)


class Holidays(Model):
    calendar: str = "US"
    covered: bool = False
    closures: list[dt.date] = Field(default_factory=list)


class Queue(Model):
    name: str
    institution: str
    display_name: str
    timezone: str | None = None
    hours: list[HoursWindow] = Field(default_factory=list)
    holidays: Holidays = Field(default_factory=Holidays)
    fallback: list[str] = Field(default_factory=list)
    rollover_after_s: int | None = Field(default=None, ge=10)

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        return names.check_queue(value)


class Widget(Model):
    id: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    institution: str
    queue: str
    title: str
    allowed_origins: list[str] = Field(default_factory=list)
