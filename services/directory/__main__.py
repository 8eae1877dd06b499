"""Start the directory service, the one owner of configuration: `python -m services.directory`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.directory.handlers import DirectoryHandlers
from services.directory.passwords import common_passwords
from services.directory.settings import DirectorySettings
from services.directory.store import ConfigStore
from shared import subjects
from shared.runtime import Runtime, run_service
from shared.version import VERSION

log = logging.getLogger(__name__)


@asynccontextmanager
async def start(runtime: Runtime) -> AsyncIterator[None]:
    kv = await runtime.bus.key_value(subjects.CONFIG_BUCKET, runtime.settings.stream_replicas)
    store = ConfigStore(runtime.db, kv)
    await store.ensure_indexes()
    # A replica that stopped between a MongoDB write and its projection left the bucket
    # behind; so did any change made to MongoDB directly (a restore, the demo loader).
    revision = await store.sync()
    log.info("configuration published up to revision %d", revision)
    handlers = DirectoryHandlers(store, runtime.settings.consortium, common_passwords())
    await runtime.bus.serve("directory", VERSION, handlers.endpoints())
    yield


if __name__ == "__main__":
    run_service("directory", DirectorySettings(), start, chat_stream=False)
