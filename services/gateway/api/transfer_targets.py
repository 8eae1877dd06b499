"""Where an operator can transfer a chat now: colleagues online and queues in reach."""

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.gateway import domain
from services.gateway.api.common import Gw, Staff
from shared import subjects
from shared.errors import Refusal
from shared.schemas.base import Model
from shared.schemas.requests import Staffing, StaffingQuery

router = APIRouter()


class TransferTarget(Model):
    """Somewhere a chat can be transferred: an operator online, or a queue (online when
    someone monitors it). `relation`: the caller's own library, the patron's, a partner's
    or a backup service's; anything but `own` needs the explicit cross-library choice."""

    kind: Literal["operator", "queue"]
    name: str
    display_name: str
    institution: str
    relation: domain.Relation
    online: bool


class TransferTargets(Model):
    targets: list[TransferTarget]


@router.get("/transfer-targets", response_model=TransferTargets)
async def transfer_targets(
    gw: Gw, claims: Staff, chat_id: Annotated[str, Query(pattern=r"^[a-f0-9]{32}$")]
) -> TransferTargets:
    """Who and where a chat can go now: operators online (not the caller) and queues,
    own library first."""
    found = await gw.bus.last_chat_record(chat_id)
    if found is None or not found[0].state.chat.visible_to(claims.institution):
        raise Refusal("not_found", f"no chat {chat_id}")
    view = gw.view
    reach = domain.reachable_institutions(
        claims.institution,
        found[0].state.chat.institution,
        view.partners_of(claims.institution),
        view.backups(),
    )
    queues = sorted(
        (q for q in view.queues.values() if q.institution in reach),
        key=lambda q: (list(reach).index(q.institution), q.name),
    )
    staffed = await asyncio.gather(
        *(
            gw.bus.request(
                subjects.presence(q.institution, "staffing"),
                StaffingQuery(institution=q.institution, queue=q.name),
                Staffing,
            )
            for q in queues
        )
    )
    targets: list[TransferTarget] = []
    people: dict[str, TransferTarget] = {}
    for queue, staffing in zip(queues, staffed, strict=True):
        relation = reach[queue.institution]
        targets.append(
            TransferTarget(
                kind="queue",
                name=queue.name,
                display_name=queue.display_name,
                institution=queue.institution,
                relation=relation,
                online=bool(staffing.operators),
            )
        )
        for name in staffing.operators:
            account = view.account(name)
            if name == claims.username or account is None or name in people:
                continue
            if account.institution not in reach:
                continue  # a consortium admin monitoring the queue, say
            people[name] = TransferTarget(
                kind="operator",
                name=name,
                display_name=account.display_name,
                institution=account.institution,
                relation=reach[account.institution],
                online=True,
            )
    order = list(reach)
    colleagues = sorted(people.values(), key=lambda t: (order.index(t.institution), t.display_name))
    return TransferTargets(targets=[*colleagues, *targets])
