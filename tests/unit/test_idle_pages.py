"""The rules behind a library page with no socket: invitations listed under a key, newest
first and bounded, gone when they expire; the status body's ETag and conditional GETs;
each widget's page-view allowance."""

from __future__ import annotations

from datetime import UTC, datetime

from services.gateway import domain
from services.gateway.domain.idle_pages import MAX_LISTED
from services.gateway.idle_pages import Invitations, PageViewAllowance
from shared.clock import FixedClock

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_an_invite_key_is_the_same_everywhere_and_tells_nothing_of_the_guest():
    key = domain.invite_key("0123456789abcdef0123456789abcdef")
    assert key == domain.invite_key("0123456789abcdef0123456789abcdef")
    assert key != domain.invite_key("0123456789abcdef0123456789abcdee")
    assert len(key) == 16 and "0123456789abcdef" not in key


def test_invitations_are_listed_newest_first_until_they_expire():
    clock = FixedClock(T0)
    invitations = Invitations(clock, keep_s=600)
    invitations.add("hill", "guest-a", "chat-aaaaaaaaaaaa")
    clock.advance(60)
    invitations.add("hill", "guest-b", "chat-bbbbbbbbbbbb")
    key_a, key_b = domain.invite_key("guest-a"), domain.invite_key("guest-b")
    assert invitations.listed("hill") == [f"{key_b}.chat-bbb", f"{key_a}.chat-aaa"]
    assert invitations.listed("river") == []
    clock.advance(560)
    assert invitations.listed("hill") == [f"{key_b}.chat-bbb"]
    clock.advance(60)
    assert invitations.listed("hill") == []


def test_a_widget_lists_at_most_its_newest_invitations():
    clock = FixedClock(T0)
    invitations = Invitations(clock, keep_s=600)
    for i in range(MAX_LISTED + 5):
        invitations.add("hill", f"guest-{i}", f"c{i:07d}")
        clock.advance(1)
    listed = invitations.listed("hill")
    assert len(listed) == MAX_LISTED
    assert listed[0] == f"{domain.invite_key(f'guest-{MAX_LISTED + 4}')}.c{MAX_LISTED + 4:07d}"


def test_the_etag_follows_the_bytes_and_a_conditional_get_matches_it():
    tag = domain.entity_tag(b'{"online":true}')
    assert tag == domain.entity_tag(b'{"online":true}') != domain.entity_tag(b'{"online":false}')
    assert tag.startswith('"') and tag.endswith('"')
    assert domain.not_modified(tag, tag)
    assert domain.not_modified(f'"other", W/{tag}', tag)
    assert domain.not_modified("*", tag)
    assert not domain.not_modified(None, tag)
    assert not domain.not_modified('"other"', tag)


def test_each_widget_has_its_own_page_view_allowance():
    clock = FixedClock(T0)
    allowance = PageViewAllowance(clock, rate=1.0, burst=3)
    assert [allowance.take("hill") for _ in range(4)] == [True, True, True, False]
    assert allowance.take("river")  # another site's views are not hill's
    clock.advance(1)
    assert allowance.take("hill") and not allowance.take("hill")
