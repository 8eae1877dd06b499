"""Start the transcripts service: `python -m services.transcripts`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from services.transcripts.domain import Members
from services.transcripts.handlers import TranscriptHandlers
from services.transcripts.retention import RetentionJob
from services.transcripts.settings import TranscriptsSettings
from services.transcripts.store import TranscriptStore
from shared.runtime import Runtime, run_service
from shared.version import VERSION


@asynccontextmanager
async def start(runtime: Runtime) -> AsyncIterator[None]:
    settings = runtime.settings
    assert isinstance(settings, TranscriptsSettings)
    # Time zones and kinds of members: local days and hours, and who answered a chat.
    view = await runtime.config_view()
    store = TranscriptStore(runtime.db, lambda: Members.of(view.institutions), runtime.clock)
    await store.ensure_indexes()
    handlers = TranscriptHandlers(
        runtime.bus,
        store,
        view,
        settings.consortium,
        runtime.clock,
        settings.fetch_batch,
        settings.fetch_linger_s,
    )
    await handlers.start_consuming()
    retention = RetentionJob(
        store,
        lambda: view.institutions,
        runtime.bus.forget_chat,
        runtime.clock,
        every=timedelta(seconds=settings.retention_every_s),
        stream_max_age=timedelta(hours=settings.stream_max_age_hours),
    )
    retention.start()
    await runtime.bus.serve("transcripts", VERSION, handlers.endpoints())
    try:
        yield
    finally:
        await retention.stop()
        await handlers.stop()
        await view.stop()


if __name__ == "__main__":
    run_service("transcripts", TranscriptsSettings(), start)
