"""The directory's rules, pure: scope, the naming convention, roles, passwords, and the
consortium's last admin."""

from __future__ import annotations

import pytest

from services.directory import domain
from shared.errors import Refusal
from shared.schemas.directory import Principal
from shared.schemas.records import Account, Institution, Queue

ADMIN = Principal(username="demo-admin", institution="demo", role="consortium_admin")
HILL_ADMIN = Principal(username="demo-hill-admin", institution="hill", role="institution_admin")
ANN = Principal(username="demo-hill-ann", institution="hill", role="operator")
INSTITUTIONS = {
    name: Institution(name=name, institution=name, display_name=name, timezone="UTC")
    for name in ("hill", "river")
}


def account(username: str, institution: str, role: str = "operator", **more) -> Account:
    return Account(username=username, institution=institution, role=role, display_name="X", **more)


def refusal(check, *args) -> Refusal:  # type: ignore[no-untyped-def]
    with pytest.raises(Refusal) as refused:
        check(*args)
    return refused.value


def test_a_queue_name_starts_with_its_consortium_and_institution():
    domain.check_queue_name(Queue(name="demo-hill", institution="hill", display_name="H"), "demo")
    domain.check_queue_name(
        Queue(name="demo-hill-maps", institution="hill", display_name="H"), "demo"
    )
    for name in ("demo-river-squat", "other-hill", "demo-hillside"):
        squat = Queue(name=name, institution="hill", display_name="H")
        found = refusal(domain.check_queue_name, squat, "demo")
        assert found.code == "invalid" and "'demo-hill' or 'demo-hill-<suffix>'" in found.message


def test_who_may_hold_which_role_where():
    domain.check_account(account("demo-hill-new", "hill"), HILL_ADMIN, "demo", INSTITUTIONS)
    domain.check_account(
        account("demo-hill-boss", "hill", "institution_admin"), ADMIN, "demo", INSTITUTIONS
    )
    domain.check_account(
        account("demo-chief", "demo", "consortium_admin"), ADMIN, "demo", INSTITUTIONS
    )
    cases = [
        (account("demo-river-new", "hill"), HILL_ADMIN, "invalid", "'demo-hill-<name>'"),
        (account("demo-river-new", "river"), HILL_ADMIN, "not_found", "no institution river"),
        (account("demo-hill-boss", "hill", "institution_admin"), HILL_ADMIN, "forbidden", "role"),
        (account("demo-chief", "demo", "consortium_admin"), HILL_ADMIN, "forbidden", "role"),
        (account("demo-hill-new", "hill"), ANN, "forbidden", "only admins"),
        (account("demo-lake-new", "lake"), ADMIN, "invalid", "no institution lake"),
        (account("demo-hill-chief", "hill", "consortium_admin"), ADMIN, "invalid", "institution"),
    ]
    for change, principal, code, words in cases:
        found = refusal(domain.check_account, change, principal, "demo", INSTITUTIONS)
        assert (found.code, words in found.message) == (code, True), (change, found.message)


def test_the_last_enabled_consortium_admin_stays():
    chief = account("demo-admin", "demo", "consortium_admin")
    other = account("demo-deputy", "demo", "consortium_admin")
    off = chief.model_copy(update={"disabled": True})
    assert refusal(domain.check_keeps_consortium_admin, off, [chief]).code == "conflict"
    assert (
        refusal(
            domain.check_keeps_consortium_admin,
            off,
            [chief, other.model_copy(update={"disabled": True})],
        ).code
        == "conflict"
    )
    domain.check_keeps_consortium_admin(off, [chief, other])
    domain.check_keeps_consortium_admin(chief.model_copy(update={"display_name": "Y"}), [chief])


def test_passwords_are_long_and_uncommon():
    common = frozenset({"librarian1234"})
    domain.check_password("tall-stacks-quiet-reading-room", common)
    assert "12" in refusal(domain.check_password, "short-one", common).message
    assert "common" in refusal(domain.check_password, "Librarian1234", common).message


def test_who_may_set_whose_password():
    ann = account("demo-hill-ann", "hill")
    assert domain.may_set_password(ANN, ann)
    assert domain.may_set_password(HILL_ADMIN, ann)
    assert domain.may_set_password(ADMIN, ann)
    assert not domain.may_set_password(ANN, account("demo-hill-bob", "hill"))
    assert not domain.may_set_password(HILL_ADMIN, account("demo-river-cat", "river"))
    assert not domain.may_set_password(
        HILL_ADMIN, account("demo-hill-boss", "hill", "institution_admin")
    )


def test_another_institutions_record_does_not_exist_for_its_neighbour():
    cat = account("demo-river-cat", "river")
    there = refusal(domain.check_stored, cat, "user", HILL_ADMIN)
    nowhere = refusal(domain.check_stored, None, "user", HILL_ADMIN)
    assert (
        (there.code, there.message)
        == (nowhere.code, nowhere.message)
        == ("not_found", "no such user")
    )
    domain.check_stored(cat, "user", ADMIN)


def test_snippets_belong_to_a_library_or_the_consortium_and_say_so_in_their_name():
    from shared import subjects
    from shared.schemas.records import Snippet

    hills = Snippet(name="hill (renewals)", institution="hill", body="Renew online.")
    domain.check_snippet(hills, HILL_ADMIN, "demo", INSTITUTIONS)
    everyone = Snippet(name="demo (hours)", institution="demo", body="8 to 8.")
    domain.check_snippet(everyone, ADMIN, "demo", INSTITUTIONS)
    assert refusal(domain.check_snippet, everyone, HILL_ADMIN, "demo", INSTITUTIONS).code == (
        "forbidden"
    )
    squat = Snippet(name="river (renewals)", institution="hill", body="x")
    assert (
        "'hill (<description>)'"
        in refusal(domain.check_snippet, squat, HILL_ADMIN, "demo", INSTITUTIONS).message
    )
    # Its name is not a key as it stands; the bucket key encodes it and gives it back.
    key = subjects.config_key("snippet", hills.name)
    assert " " not in key and subjects.config_kind(key) == ("snippet", "hill (renewals)")


def test_a_library_admin_changes_their_own_settings_but_not_its_kind():
    hill = Institution(name="hill", institution="hill", display_name="Hill", timezone="UTC")
    admin = Principal(username="demo-hill-admin", institution="hill", role="institution_admin")
    domain.check_institution(hill.model_copy(update={"require_tag": True}), admin, "demo", hill)
    for record, stored in (
        (hill.model_copy(update={"kind": "backup"}), hill),  # what kind of member it is
        (hill, None),  # creating one
    ):
        with pytest.raises(Refusal) as refused:
            domain.check_institution(record, admin, "demo", stored)
        assert refused.value.code == "forbidden"
    river = Institution(name="river", institution="river", display_name="R", timezone="UTC")
    with pytest.raises(Refusal):
        domain.check_institution(river, admin, "demo", river)


def test_a_new_password_disabling_or_another_role_ends_every_earlier_token_for_good():
    ann = account("demo-hill-ann", "hill", token_generation=3)
    same = ann.model_copy(update={"display_name": "Ann B.", "max_chats": 2})
    assert domain.token_generation(None, ann, new_password=True) == 0  # a new account
    assert domain.token_generation(ann, same, new_password=False) == 3
    assert domain.token_generation(ann, same, new_password=True) == 4
    disabled = ann.model_copy(update={"disabled": True})
    assert domain.token_generation(ann, disabled, new_password=False) == 4
    # Enabling again moves nothing back: the tokens disabling ended stay ended.
    enabled = disabled.model_copy(update={"disabled": False, "token_generation": 3})
    after_disable = disabled.model_copy(update={"token_generation": 4})
    assert domain.token_generation(after_disable, enabled, new_password=False) == 4
    promoted = ann.model_copy(update={"role": "institution_admin"})
    assert domain.token_generation(ann, promoted, new_password=False) == 4
    # What the client sent is never taken.
    forged = same.model_copy(update={"token_generation": 0})
    assert domain.token_generation(ann, forged, new_password=False) == 3
