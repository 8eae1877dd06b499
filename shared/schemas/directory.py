"""Requests to the directory service, the one owner of configuration, and its replies.

Every request carries the `Principal` it is made for: the gateway checks a caller's scope
before asking, and the directory checks it again on its own (defence in depth).
"""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import Model
from shared.schemas.records import (
    Account,
    Institution,
    Partnership,
    Principal,
    Queue,
    Snippet,
    Widget,
)

MAX_PASSWORD = 256

__all__ = ["Principal"]  # re-exported: requests here carry one


class SaveInstitution(Model):
    institution: str
    principal: Principal
    record: Institution
    create: bool


class SaveQueue(Model):
    institution: str
    principal: Principal
    record: Queue
    create: bool


class DeleteQueue(Model):
    institution: str
    principal: Principal
    name: str


class SaveWidget(Model):
    institution: str
    principal: Principal
    record: Widget
    create: bool


class DeleteWidget(Model):
    institution: str
    principal: Principal
    id: str


class SaveUser(Model):
    """Create (a password is then required) or replace an account."""

    institution: str
    principal: Principal
    record: Account
    password: str | None = Field(default=None, max_length=MAX_PASSWORD)
    create: bool


class SetPassword(Model):
    institution: str
    principal: Principal
    username: str
    password: str = Field(max_length=MAX_PASSWORD)


class SignIn(Model):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class SavePartnership(Model):
    institution: str
    principal: Principal
    record: Partnership
    create: bool


class DeletePartnership(Model):
    institution: str
    principal: Principal
    name: str


class SaveSnippet(Model):
    institution: str
    principal: Principal
    record: Snippet
    create: bool


class DeleteSnippet(Model):
    institution: str
    principal: Principal
    name: str


class Saved(Model):
    """A change is stored and published: `revision` is its entry in the config bucket, which
    a replica has applied once its view reaches that revision."""

    revision: int
