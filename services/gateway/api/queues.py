"""Queues: hours, time zone and calendar are checked by the schema (422 naming the field),
scope, name and fallback chain by the directory."""

from services.gateway import domain
from services.gateway.api.records import collection
from shared.schemas.directory import DeleteQueue, SaveQueue
from shared.schemas.records import Queue

router = collection(
    "/queues",
    Queue,
    "name",
    lambda view: view.queues,
    lambda queue, claims, _: domain.sees_institution(claims, queue.institution),
    ("save_queue", "delete_queue"),
    (SaveQueue, DeleteQueue),
)
