"""`refdesk-admin backup` / `restore`: every collection of refdesk's database, as
mongodump and mongorestore would, for where those tools are not installed.

The layout is mongodump's: `<dir>/<database>/<collection>.bson` (the documents, BSON one
after another) and `<collection>.metadata.json` (its indexes, in extended JSON), so
`mongorestore --dir <dir>` reads it too; `--archive x.tar.gz` packs the same tree. A
restore goes into an empty database only (it refuses one that holds any refdesk document),
with the collections' indexes; the services reconcile indexes again at start, and the
directory rebuilds the configuration bucket from what was restored
(docs/operations.md, "Back up and restore").
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bson
from bson import json_util
from pymongo.asynchronous.database import AsyncDatabase

from shared import store
from shared.settings import CommonSettings

BATCH = 1000


class Failed(Exception):
    """What went wrong, said for the person running the tool."""


async def collections(db: AsyncDatabase[store.Document]) -> list[str]:
    names = await db.list_collection_names()
    return sorted(n for n in names if not n.startswith("system."))


async def dump(db: AsyncDatabase[store.Document], into: Path) -> dict[str, int]:
    """Write each collection of `db` under `into/<db>`; returns documents by collection."""
    folder = into / db.name
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in await collections(db):
        written = 0
        with (folder / f"{name}.bson").open("wb") as out:
            async for doc in db[name].find({}).sort("_id", 1):
                out.write(bson.encode(doc))
                written += 1
        listed = await (await db[name].list_indexes()).to_list()
        meta = {"options": {}, "indexes": [dict(i) for i in listed], "collectionName": name}
        (folder / f"{name}.metadata.json").write_text(json_util.dumps(meta))
        counts[name] = written
    return counts


def _index_specs(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The indexes to create, as `createIndexes` takes them: MongoDB lists a text index's
    key as `{_fts: text, _ftsx: 1}`, created from its fields (its `weights`)."""
    specs = []
    for listed in meta.get("indexes", []):
        if listed.get("name") == "_id_":
            continue
        spec = {k: v for k, v in listed.items() if k not in ("v", "ns", "textIndexVersion")}
        if "_fts" in dict(spec["key"]):
            spec["key"] = {field: "text" for field in spec.get("weights", {})}
        specs.append(spec)
    return specs


def _dumped(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.bson"))


def _databases(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


async def load(db: AsyncDatabase[store.Document], folder: Path) -> dict[str, int]:
    """Restore every collection found in `folder` (one database's dump) into `db`, which
    must be empty; returns documents by collection."""
    files = _dumped(folder)
    if not files:
        raise Failed(f"no collections (*.bson) in {folder}")
    for name in await collections(db):
        if await db[name].estimated_document_count():
            raise Failed(f"{db.name} is not empty ({name} has documents): restore into a new one")
    counts = {}
    for path in files:
        name = path.stem
        meta_path = folder / f"{name}.metadata.json"
        if meta_path.exists():
            specs = _index_specs(json_util.loads(meta_path.read_text()))
            if specs:
                await db.command({"createIndexes": name, "indexes": specs})
        counts[name] = 0
        batch: list[store.Document] = []
        with path.open("rb") as source:
            for doc in bson.decode_file_iter(source):
                batch.append(doc)
                if len(batch) >= BATCH:
                    counts[name] += await _insert(db, name, batch)
        counts[name] += await _insert(db, name, batch)
    return counts


async def _insert(db: AsyncDatabase[store.Document], name: str, batch: list[Any]) -> int:
    if not batch:
        return 0
    await db[name].insert_many(list(batch), ordered=True)
    done = len(batch)
    batch.clear()
    return done


async def backup(settings: CommonSettings, target: Path, archive: bool) -> dict[str, int]:
    client = store.connect(settings.mongodb_uri, "admin")
    try:
        db = store.database(client, settings.mongodb_db)
        if not archive:
            return await dump(db, target)
        with tempfile.TemporaryDirectory() as scratch:
            counts = await dump(db, Path(scratch))
            with tarfile.open(target, "w:gz") as tar:
                tar.add(Path(scratch) / db.name, arcname=db.name)
        return counts
    finally:
        await client.close()


@contextmanager
def _unpacked(source: Path) -> Iterator[Path]:
    """The folder of the dump's one database, from a folder or an archive."""
    if not source.exists():
        raise Failed(f"{source} does not exist")
    if source.is_dir():
        yield source
        return
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(source, "r:gz") as tar:
        tar.extractall(scratch, filter="data")
        yield Path(scratch)


async def restore(settings: CommonSettings, source: Path, from_db: str | None) -> dict[str, int]:
    """Restore the dump of `from_db` (the only one in it, if not given) into the
    settings' database."""
    with _unpacked(source) as root:
        dumped = _databases(root)
        name = from_db or (dumped[0] if len(dumped) == 1 else None)
        if name is None or name not in dumped:
            raise Failed(f"{source} holds databases {dumped}: say which with --from-db")
        client = store.connect(settings.mongodb_uri, "admin")
        try:
            return await load(store.database(client, settings.mongodb_db), root / name)
        finally:
            await client.close()


def summary(counts: dict[str, int]) -> str:
    return json.dumps(counts, sort_keys=True)
