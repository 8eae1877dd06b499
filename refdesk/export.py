"""Export a library's transcripts as JSON Lines, one transcript (chat, messages, routing
decisions) a line, oldest first:

    python -m refdesk.export transcripts --institution hill --since 2026-11-01 > hill.jsonl

It reads MongoDB directly (REFDESK_MONGODB_URI, REFDESK_MONGODB_DB, as the services do),
so it needs no running service; a progress bar goes to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import UTC, datetime
from typing import TextIO

from tqdm import tqdm

from services.transcripts.domain import Members
from services.transcripts.store import TranscriptStore
from shared import names, store
from shared.settings import CommonSettings


def instant(text: str) -> datetime:
    """A day (its midnight, UTC) or an ISO instant with its offset."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (2026-11-01)") from None
    if parsed.tzinfo is None:
        if len(text) > 10:
            raise argparse.ArgumentTypeError(f"give the offset of {text!r} (…Z or …+01:00)")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def institution(text: str) -> str:
    try:
        names.check_part(text, "institution")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="python -m refdesk.export", description=__doc__)
    what = made.add_subparsers(dest="what", required=True)
    transcripts = what.add_parser("transcripts", help="a library's transcripts as JSON Lines")
    transcripts.add_argument("--institution", required=True, type=institution)
    transcripts.add_argument(
        "--since", required=True, type=instant, help="a day (UTC midnight) or an ISO instant"
    )
    transcripts.add_argument("--output", "-o", help="a file to write (default: standard output)")
    transcripts.add_argument("--quiet", action="store_true", help="no progress bar")
    return made


async def export_transcripts(
    settings: CommonSettings, inst: str, since: datetime, out: TextIO, progress: bool
) -> int:
    """Write the transcripts; returns how many."""
    client = store.connect(settings.mongodb_uri, "export")
    try:
        # Members only shape what transcripts write; an export reads.
        transcripts = TranscriptStore(client[settings.mongodb_db], lambda: Members({}, frozenset()))
        total = await transcripts.count_since(inst, since)
        written = 0
        with tqdm(total=total, unit="chat", file=sys.stderr, disable=not progress) as bar:
            async for batch in transcripts.export(inst, since):
                for transcript in batch:
                    out.write(transcript.model_dump_json(by_alias=True))
                    out.write("\n")
                written += len(batch)
                bar.update(len(batch))
        return written
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = CommonSettings()
    with contextlib.ExitStack() as files:
        out = sys.stdout
        if args.output is not None:
            out = files.enter_context(open(args.output, "w", encoding="utf-8"))
        written = asyncio.run(
            export_transcripts(settings, args.institution, args.since, out, not args.quiet)
        )
    since = args.since.isoformat()
    print(f"{written} transcripts of {args.institution} since {since}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
