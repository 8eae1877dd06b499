"""Index commands in the embedded MongoDB server as MongoDB answers them.

nx-27017 keeps indexes in SQLite and forgets what MongoDB remembers: their names, key
directions and options (`sparse`), so `listIndexes` cannot be compared with what a store
wants; it takes any `createIndexes` (a changed TTL silently replaces the old one, where
MongoDB refuses IndexOptionsConflict); and it answers `collMod`, like any command it does
not know, `ok` without doing anything. Upgrades reconcile indexes (shared/indexes.py), and
a local run must fail where production would. So this layer keeps each index's spec as
MongoDB would (a table beside the collections) and answers from it:

- `createIndexes`: an identical index is a no-op; the same name with another key is
  IndexKeySpecsConflict (86); the same name or key with other options IndexOptionsConflict
  (85); anything else is built by nx-27017 and its spec kept.
- `listIndexes`: the kept specs (nx-27017's own answer for a collection with none kept).
- `dropIndexes` by name, or `*`: forgets the spec and drops nx-27017's index.
- `listCollections`: without the specs' table.
- `collMod` with `index: {name | keyPattern, expireAfterSeconds}`: changes the TTL of a TTL
  index (IndexNotFound, 27; InvalidOptions, 72, for an index without one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nx_27017.handler import NeoSQLiteHandler

TABLE = "refdesk_index_specs"
Reply = tuple[int, dict[str, Any]]


def _error(request_id: int, code: int, name: str, message: str) -> Reply:
    return request_id, {"ok": 0, "code": code, "codeName": name, "errmsg": message}


def _pairs(key: Any) -> list[list[Any]]:
    return [[k, v] for k, v in dict(key).items()]


class IndexSpecs:
    """The specs kept for one database, in its own SQLite file."""

    def __init__(self, sqlite: Any) -> None:
        self.sql = sqlite
        self.sql.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (collection TEXT NOT NULL, name TEXT NOT NULL, "
            "spec TEXT NOT NULL, PRIMARY KEY (collection, name))"
        )

    def all(self, collection: str) -> list[dict[str, Any]]:
        rows = self.sql.execute(
            f"SELECT spec FROM {TABLE} WHERE collection = ? ORDER BY rowid", (collection,)
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def put(self, collection: str, spec: dict[str, Any]) -> None:
        self.sql.execute(
            f"INSERT OR REPLACE INTO {TABLE} (collection, name, spec) VALUES (?, ?, ?)",
            (collection, spec["name"], json.dumps(spec)),
        )
        self.sql.commit()

    def forget(self, collection: str, name: str | None = None) -> None:
        if name is None:
            self.sql.execute(f"DELETE FROM {TABLE} WHERE collection = ?", (collection,))
        else:
            self.sql.execute(
                f"DELETE FROM {TABLE} WHERE collection = ? AND name = ?", (collection, name)
            )
        self.sql.commit()


def _kept(spec: dict[str, Any]) -> dict[str, Any]:
    """A requested index as MongoDB lists it."""
    kept = {k: v for k, v in spec.items() if k not in ("key", "name", "background")}
    return {"v": 2, "key": _pairs(spec["key"]), "name": spec["name"], **kept}


def _listed(spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "key": dict((k, v) for k, v in spec["key"])}


def _conflict(request_id: int, wanted: dict[str, Any], kept: list[dict[str, Any]]) -> Reply | None:
    for spec in kept:
        if spec["name"] == wanted["name"] and spec["key"] != wanted["key"]:
            return _error(
                request_id,
                86,
                "IndexKeySpecsConflict",
                f"An existing index has the same name as the requested index but a "
                f"different key: {wanted['name']}",
            )
        if (spec["name"] == wanted["name"] or spec["key"] == wanted["key"]) and spec != wanted:
            return _error(
                request_id,
                85,
                "IndexOptionsConflict",
                f"An existing index has the same name or key as the requested index but "
                f"different options: {spec['name']}",
            )
    return None


def _built_before(wanted: dict[str, Any], reply: Reply) -> bool:
    """nx-27017 refuses to build a full-text index it has (one a data directory made before
    specs were kept): it is there, so it is kept now."""
    text = any(v == "text" for _, v in wanted["key"])
    return text and "constraint failed" in str(reply[1].get("errmsg", ""))


class IndexCommands:
    """The index commands answered as MongoDB does; everything else is nx-27017's."""

    def __init__(self, handler: NeoSQLiteHandler, original: Callable[..., Reply]) -> None:
        self.handler = handler
        self.original = original

    def specs(self, db_name: str) -> IndexSpecs:
        return IndexSpecs(self.handler.get_database(db_name).db)

    def __call__(self, msg: dict[str, Any]) -> Reply:
        body = next((doc for kind, doc in msg["sections"] if kind == "body"), None) or {}
        db_name = str(body.get("$db", "test"))
        for command, answer in (
            ("createIndexes", self.create),
            ("listIndexes", self.list),
            ("dropIndexes", self.drop),
            ("collMod", self.coll_mod),
        ):
            if command in body:
                return answer(msg, body, db_name)
        reply = self.original(self.handler, msg)
        if "drop" in body and reply[1].get("ok"):
            self.specs(db_name).forget(str(body["drop"]))
        if "listCollections" in body and reply[1].get("ok"):
            # The specs' table is the server's own, not a collection.
            batch = reply[1]["cursor"]["firstBatch"]
            batch[:] = [c for c in batch if c.get("name") != TABLE]
        return reply

    def _nx(self, msg: dict[str, Any], body: dict[str, Any]) -> Reply:
        sections = [(k, body if k == "body" else d) for k, d in msg["sections"]]
        return self.original(self.handler, {**msg, "sections": sections})

    def create(self, msg: dict[str, Any], body: dict[str, Any], db_name: str) -> Reply:
        collection = str(body["createIndexes"])
        specs = self.specs(db_name)
        kept = specs.all(collection)
        new = []
        for requested in body.get("indexes", []):
            wanted = _kept(requested)
            refused = _conflict(msg["request_id"], wanted, kept)
            if refused is not None:
                return refused
            if wanted not in kept:
                new.append((requested, wanted))
        reply: Reply = msg["request_id"], {"ok": 1, "note": "all indexes already exist"}
        for requested, wanted in new:
            reply = self._nx(msg, {**body, "indexes": [requested]})
            if not reply[1].get("ok") and not _built_before(wanted, reply):
                return reply
            specs.put(collection, wanted)
        return reply

    def list(self, msg: dict[str, Any], body: dict[str, Any], db_name: str) -> Reply:
        collection = str(body["listIndexes"])
        kept = self.specs(db_name).all(collection)
        if not kept:
            return self.original(self.handler, msg)
        batch = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}, *map(_listed, kept)]
        ns = f"{db_name}.{collection}"
        return msg["request_id"], {"ok": 1, "cursor": {"id": 0, "ns": ns, "firstBatch": batch}}

    def drop(self, msg: dict[str, Any], body: dict[str, Any], db_name: str) -> Reply:
        collection, index = str(body["dropIndexes"]), body.get("index", "*")
        specs = self.specs(db_name)
        kept = specs.all(collection)
        if index == "*":
            specs.forget(collection)
            return self._nx(msg, body)
        spec = next((s for s in kept if s["name"] == index), None)
        if spec is None:
            return self._nx(msg, body)
        specs.forget(collection, spec["name"])
        # nx-27017 names its index after the key's fields.
        fields = "_".join(k for k, _ in spec["key"]).replace(".", "_")
        return self._nx(msg, {**body, "index": f"idx_{collection}_{fields}"})

    def coll_mod(self, msg: dict[str, Any], body: dict[str, Any], db_name: str) -> Reply:
        collection, change = str(body["collMod"]), dict(body.get("index") or {})
        request_id = msg["request_id"]
        specs = self.specs(db_name)
        spec = next(
            (
                s
                for s in specs.all(collection)
                if s["name"] == change.get("name")
                or ("keyPattern" in change and s["key"] == _pairs(change["keyPattern"]))
            ),
            None,
        )
        if spec is None:
            return _error(request_id, 27, "IndexNotFound", f"cannot find index {change}")
        if "expireAfterSeconds" not in change or "expireAfterSeconds" not in spec:
            return _error(request_id, 72, "InvalidOptions", "no expireAfterSeconds to change")
        old, new = spec["expireAfterSeconds"], int(change["expireAfterSeconds"])
        # nx-27017 takes a second creation as the new TTL, which its sweeper follows.
        requested = {"key": dict(spec["key"]), "name": spec["name"], "expireAfterSeconds": new}
        self._nx(msg, {"createIndexes": collection, "indexes": [requested], "$db": db_name})
        specs.put(collection, {**spec, "expireAfterSeconds": new})
        return request_id, {"ok": 1, "expireAfterSeconds_old": old, "expireAfterSeconds_new": new}


def install() -> None:
    """Answer index commands as MongoDB does in every handler nx-27017 makes from now on."""
    original = NeoSQLiteHandler.handle_command

    def handle_command(self: NeoSQLiteHandler, msg: dict[str, Any]) -> Reply:
        return IndexCommands(self, original)(msg)

    NeoSQLiteHandler.handle_command = handle_command
