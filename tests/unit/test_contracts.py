"""Names, subjects and frame schemas: the contracts every service relies on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared import names, subjects
from shared.schemas.protocol import OPERATOR_FRAME, PATRON_FRAME, SERVER_FRAME
from shared.schemas.records import User


@pytest.mark.parametrize("good", ["mobius-mobstate-janedoe", "demo-hill-ann", "a1-b2-c3"])
def test_user_names_follow_convention(good: str):
    assert names.check_user(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "demo-hill",
        "Demo-hill-ann",
        "demo-hill-ann-x",
        "demo_hill_ann",
        "demo-hill-",
        "démo-hill-ann",
    ],
)
def test_bad_user_names_show_expected_form(bad: str):
    with pytest.raises(names.NameError_) as refused:
        names.check_user(bad)
    assert "<consortium>-<institution>-<name>" in str(refused.value)


def test_queue_and_snippet_names():
    assert names.check_queue("mobius-mobstate") == "mobius-mobstate"
    assert names.check_queue("mobius-mobstate-healthsciences")
    assert names.institution_of_queue("demo-river") == "river"
    assert names.check_snippet("mobstate (renewals)")
    with pytest.raises(names.NameError_):
        names.check_queue("mobius")
    with pytest.raises(names.NameError_):
        names.check_snippet("renewals")


def test_consortium_admin_may_have_two_part_name_but_operator_may_not():
    User(
        username="demo-admin",
        institution="demo",
        role="consortium_admin",
        display_name="A",
        password_hash="x",
    )
    with pytest.raises(ValidationError):
        User(
            username="demo-admin",
            institution="demo",
            role="operator",
            display_name="A",
            password_hash="x",
        )


def test_subjects_carry_institution_and_refuse_bad_tokens():
    assert subjects.chat_events("hill", "abc") == "chat.hill.abc.evt"
    assert subjects.institution_of(subjects.routing("river", "claim")) == "river"
    assert subjects.chat_events_all() == "chat.*.*.evt"
    assert subjects.routing_endpoint("claim") == "routing.*.claim"
    for bad in ("a.b", "*", ">", "with space", ""):
        with pytest.raises(ValueError):
            subjects.chat_events(bad, "abc")


def test_client_frames_refuse_unknown_fields_and_types():
    PATRON_FRAME.validate_python({"type": "message", "chat_id": "abc", "body": "hi"})
    with pytest.raises(ValidationError):
        PATRON_FRAME.validate_python({"type": "message", "chat_id": "abc", "body": "hi", "x": 1})
    with pytest.raises(ValidationError):
        PATRON_FRAME.validate_python({"type": "chat.claim", "chat_id": "abc"})
    with pytest.raises(ValidationError):
        OPERATOR_FRAME.validate_python({"type": "status.set", "status": "sleeping"})
    with pytest.raises(ValidationError):
        OPERATOR_FRAME.validate_python({"type": "chat.claim", "chat_id": "../etc"})


def test_server_frames_have_a_model_each():
    SERVER_FRAME.validate_python({"type": "ack", "ref": "1", "anything": True})
    SERVER_FRAME.validate_python(
        {
            "type": "error",
            "ref": None,
            "code": "conflict",
            "message": "taken",
            "owner": "demo-hill-ann",
        }
    )
    with pytest.raises(ValidationError):
        SERVER_FRAME.validate_python({"type": "error", "code": "nope", "message": "x"})
    with pytest.raises(ValidationError):
        SERVER_FRAME.validate_python({"type": "mystery"})


def test_every_client_frame_has_its_own_ack_model():
    from typing import get_args

    from shared.schemas.protocol import ACK_OF, Ack, OperatorFrame, PatronFrame

    kinds = set()
    for union in (PatronFrame, OperatorFrame):
        members = get_args(get_args(union)[0])
        kinds |= {get_args(m.model_fields["type"].annotation)[0] for m in members}
    assert kinds == set(ACK_OF)
    for model in ACK_OF.values():
        assert issubclass(model, Ack)
        assert model.model_config.get("extra") == "forbid"
