"""Start the transcripts service: `python -m services.transcripts`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.transcripts.handlers import TranscriptHandlers
from services.transcripts.settings import TranscriptsSettings
from services.transcripts.store import TranscriptStore
from shared.runtime import Runtime, run_service

VERSION = "0.1.0"


@asynccontextmanager
async def start(runtime: Runtime) -> AsyncIterator[None]:
    settings = runtime.settings
    assert isinstance(settings, TranscriptsSettings)
    store = TranscriptStore(runtime.db)
    await store.ensure_indexes()
    handlers = TranscriptHandlers(runtime.bus, store, settings.fetch_batch, settings.fetch_linger_s)
    await handlers.start_consuming()
    await runtime.bus.serve("transcripts", VERSION, handlers.endpoints())
    try:
        yield
    finally:
        await handlers.stop()


if __name__ == "__main__":
    run_service("transcripts", TranscriptsSettings(), start)
