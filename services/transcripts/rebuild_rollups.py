"""Rebuild the statistics rollups from the stored transcripts:

    python -m services.transcripts.rebuild_rollups --yes

Every ended chat is counted again from its stored document, and every chat no longer
stored (deleted by retention or at a patron's request) from its ledger entry, each in its
library's local day in the time zones as the directory has them now; then every rollup
document is replaced. Run it with the transcripts service stopped (its events wait in the
chat stream meanwhile): after a library's time zone changed, after a fault left counts in
doubt, or to remove the markers a writer that was taken over left behind.

It reads MongoDB directly (REFDESK_MONGODB_URI, REFDESK_MONGODB_DB, as the services do).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from tqdm import tqdm

from services.transcripts.domain import Members
from services.transcripts.rollup_store import RollupStore
from shared import store
from shared.clock import SystemClock
from shared.schemas.records import Institution
from shared.settings import CommonSettings


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(
        prog="python -m services.transcripts.rebuild_rollups", description=__doc__
    )
    made.add_argument(
        "--yes", action="store_true", help="replace the rollups (the transcripts service is off)"
    )
    made.add_argument("--quiet", action="store_true", help="no progress bar")
    return made


async def rebuild(settings: CommonSettings, progress: bool) -> dict[str, int]:
    client = store.connect(settings.mongodb_uri, "rebuild-rollups")
    try:
        db = client[settings.mongodb_db]
        # The directory's copy of the institutions: their time zones and kinds now.
        found = await db.institutions.find({}, {"_id": 0}).to_list()
        members = Members.of({d["name"]: Institution.model_validate(d) for d in found})
        rollups = RollupStore(db, lambda: members, SystemClock())
        with tqdm(unit="chat", file=sys.stderr, disable=not progress) as bar:
            return await rollups.rebuild(bar.update)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.yes:
        print("this replaces every rollup: stop the transcripts service, then add --yes")
        return 2
    counted = asyncio.run(rebuild(CommonSettings(), not args.quiet))
    print(
        f"rollups rebuilt: {counted['stored'] + counted['ledger_only']} chats "
        f"({counted['ledger_only']} no longer stored), {counted['documents']} documents"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
