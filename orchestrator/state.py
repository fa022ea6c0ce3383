"""Render state in the object store (docs/architecture.md §5), laid out so that every write is O(1):

    renders/<id>/render.json         the record: request, state, progress, output, error (small; rewritten
                                     on a state change and at most a few times a second for progress)
    renders/<id>/tasks/<seq>.json    the task log: {task id: outputs} of the tasks finished since the
                                     previous entry (one object per group of completions, never rewritten)
    renders/_all/<shard>/<id>        listing index: one empty object per render (ids sort by creation time;
                                     <shard> = id[:5]/id[5:8], see `index_key`)
    renders/_state/<STATE>/<shard>/<id>   state index: one empty object per render in its current state
    renders/_idempotency/<sha256>.json
    renders/_new/<first id>.json     creation journal: the records of one group commit of CreateRender
                                     calls, one object (deleted once each record is written on its own)

A burst of new renders is saved by group commit into one journal object, and the callers are answered
once it is in the store; each record and its two index entries are written afterwards (`materialize`,
index entries first), and the journal is then deleted. Until then `load` finds a record in the journal
(this process keeps its own in memory), and a restarted orchestrator writes out what a journal still
holds (`replay_journals`) before it resumes. A restarted orchestrator lists `_state/QUEUED` and
`_state/RUNNING` only, and a resumed render reads its task log to recompute nothing that finished.
Writes go through `put_bytes`, atomic on both stores. A state change writes the record and its new
index entry, then deletes the old entry; a crash in between may leave an extra entry (readers check the
record's own state) or the record under its old entry only, which a restart repairs (`repair_index`;
an unfinished record is resumed whichever unfinished entry lists it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lihq.errors import FailedPrecondition, NotFound
from lihq.storage.base import ObjectStore, validate_key
from orchestrator.scheduler import TaskResult
from orchestrator.spec import Background, RenderSpec

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
STATES = (QUEUED, RUNNING, *TERMINAL)


log = logging.getLogger("lihq.orchestrator")


class CorruptRecord(FailedPrecondition):
    """A render record that does not parse (the store is untrusted): an error for that render only."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


_last_id = [0]
_id_lock = threading.Lock()


def new_render_id() -> str:
    """16 hex digits: milliseconds since the epoch (11) then randomness (5), so ids (and the listing
    index) sort by creation time; within one process strictly so (a second id in the same millisecond
    is made larger than the first)."""
    n = (time.time_ns() // 1_000_000) << 20 | int.from_bytes(os.urandom(3)) >> 4
    with _id_lock:
        n = _last_id[0] = max(n, _last_id[0] + 1)
    return f"{n:016x}"


_RENDER_ID = re.compile(r"[0-9a-f]{16}")
JOURNAL_PREFIX = "renders/_new/"
MAX_JOURNALS_READ = 1000  # a load that misses reads at most this many journals (normally: none or a few)

_NOT_SAVED = ("results", "saved_state", "queue_position")  # results live in the task log


@dataclass
class RenderRecord:
    render_id: str
    spec: RenderSpec
    state: str = QUEUED
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    progress: dict[str, list[int]] = field(default_factory=dict)  # stage -> [done, total]
    eta_s: float = 0.0
    output_key: str = ""
    error: str = ""
    error_code: str = ""
    error_stage: str = ""
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id -> outputs (task log)
    webhook_url: str = ""
    webhook: dict[str, Any] = field(default_factory=dict)  # delivery outcome: orchestrator/webhook.py
    tenant: str = ""  # who created it (lihq.auth); '' = before tenants / in-process
    playlist_key: str = ""  # renders/<id>/hls/index.m3u8 once a segment is listed (orchestrator/hls.py)
    first_playable_s: float = 0.0  # seconds from creation until then
    # not persisted: the state this record had when last read or written (which index entry to move),
    # and the position in this replica's queue (1 = next to start) while QUEUED
    saved_state: str = field(default="", repr=False, compare=False)
    queue_position: int = field(default=0, compare=False)

    def to_json(self) -> bytes:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_SAVED}
        d["spec"] = asdict(self.spec)
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RenderRecord:
        d = json.loads(data)
        spec = d.pop("spec")
        spec["background"] = Background(**spec.get("background", {}))
        spec["pads"] = tuple(spec.get("pads", (0, 20, 0, 0)))
        rec = cls(spec=RenderSpec(**spec), **d)  # "results" is only in records written before the task log
        rec.saved_state = rec.state
        return rec

    def task_results(self) -> dict[str, TaskResult]:
        return {k: TaskResult(v) for k, v in self.results.items()}


@functools.cache
def _io_pool() -> ThreadPoolExecutor:
    """Threads for the independent writes of one save (record + index entries): their latencies overlap."""
    return ThreadPoolExecutor(8, thread_name_prefix="lihq-state")


class RenderStore:
    """Render records, their task logs and indexes, plus the idempotency index, on any ObjectStore.

    Blocking (store I/O): the orchestrator calls these from a worker thread, never on its event loop."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        # this process's journaled records not yet written on their own: render id -> record body
        self._unstored: dict[str, bytes] = {}
        self._journals: dict[str, dict[str, bytes]] = {}  # journals read by `_journaled` (immutable)

    @staticmethod
    def key(render_id: str) -> str:
        return validate_key(f"renders/{render_id}/render.json")

    @staticmethod
    def state_prefix(state: str) -> str:
        return f"renders/_state/{state}/" if state else "renders/_all/"

    @classmethod
    def index_key(cls, state: str, render_id: str) -> str:
        """`<prefix><id[:5]>/<id[5:8]>/<id>`: ids start with the creation time in ms (hex), so a shard is
        ~4.7 h and a sub-shard ~4 s of creations; a page opens one or two small directories of a
        file store instead of one directory of every render (S3 lists by StartAfter either way)."""
        shard, sub = render_id[:5] or "_", render_id[5:8] or "_"
        return validate_key(f"{cls.state_prefix(state)}{shard}/{sub}/{render_id}")

    @staticmethod
    def _id_of(key: str) -> str:
        return key.rsplit("/", 1)[1]

    def _map(
        self, fn: Callable[[Any], Any], items: list[Any], pool: ThreadPoolExecutor | None = None
    ) -> Iterator[Any]:
        """fn over items, in order: at once on a store whose calls overlap (S3; on `pool`, default this
        module's), else one by one in the calling thread."""
        if self.store.concurrent_calls_help and len(items) > 1:
            return (pool or _io_pool()).map(fn, items)
        return map(fn, items)

    def save(self, rec: RenderRecord) -> None:
        """Write the record; on its first write and when its state changed, move its index entries."""
        rec.updated_at = now()
        self.write(rec.render_id, rec.to_json(), rec.state, rec.saved_state)
        rec.saved_state = rec.state

    def save_new(self, records: list[RenderRecord], pool: ThreadPoolExecutor | None = None) -> None:
        """Write never-saved records directly: each record and its two index entries (`_all`,
        `_state/<STATE>`: empty markers), independent writes (`_map`: at once on `pool` where calls
        overlap)."""
        writes = []
        for rec in records:
            body = rec.to_json()
            writes += [
                functools.partial(self.store.put_bytes, self.key(rec.render_id), body, "application/json"),
                functools.partial(self.store.put_marker, self.index_key("", rec.render_id)),
                functools.partial(self.store.put_marker, self.index_key(rec.state, rec.render_id)),
            ]
        for _ in self._map(lambda write: write(), writes, pool):
            pass
        for rec in records:
            rec.saved_state = rec.state

    def write(self, render_id: str, body: bytes, state: str, saved_state: str) -> None:
        """`save` with the record already serialised (by the event loop that owns it): the body and,
        when the state moved from `saved_state` ('' = never written), the new index entries, all at
        once; then the old entry is deleted. (Readers check the record's own state, so an index entry
        written before the record, or one left behind by a crash, is harmless.)"""
        keys = [self.key(render_id)]
        if saved_state != state:
            if not saved_state:
                keys.append(self.index_key("", render_id))
            keys.append(self.index_key(state, render_id))
        if len(keys) == 1:
            self.store.put_bytes(keys[0], body, "application/json")
        else:
            writes = [functools.partial(self.store.put_bytes, keys[0], body, "application/json")]
            writes += [functools.partial(self.store.put_marker, k) for k in keys[1:]]
            for _ in self._map(lambda write: write(), writes):
                pass
        if saved_state and saved_state != state:
            self.store.delete(self.index_key(saved_state, render_id))

    def drop_stale_index(self, render_id: str, state: str) -> None:
        """Delete a `_state/<state>` entry whose record has moved on (left by a crash between writes)."""
        self.store.delete(self.index_key(state, render_id))

    def repair_index(self, rec: RenderRecord, stale: str) -> None:
        """`rec` (as stored) is listed under `stale`, a state it left: list it under its own state (a
        crash between the record's write and its index move may have left that entry unwritten), then
        drop the stale entry."""
        self.store.put_marker(self.index_key(rec.state, rec.render_id))
        self.drop_stale_index(rec.render_id, stale)

    def load(self, render_id: str, results: bool = False) -> RenderRecord:
        """The record; with `results`, also every finished task's outputs from the task log. A record
        still in a creation journal (created a moment ago, perhaps by another replica) is read there."""
        try:
            data = self.store.get_bytes(self.key(render_id))
        except NotFound as exc:
            found = self._unstored.get(render_id) or self._journaled(render_id)
            if found is None:
                raise NotFound(f"no render {render_id!r}") from exc
            data = found
        try:
            rec = RenderRecord.from_json(data)
            if rec.state not in STATES or rec.render_id != render_id:
                raise ValueError("unknown state or another render's id")
        except Exception as exc:  # noqa: BLE001 - the store is untrusted: one bad record, one clear error
            raise CorruptRecord(
                f"render {render_id!r}: its record in the store is unreadable ({type(exc).__name__}); "
                "an operator must restore or delete renders/<id>/render.json"
            ) from exc
        if results:
            rec.results.update(self.load_results(render_id))
        return rec

    # -- creation journal ---------------------------------------------------------------------
    @staticmethod
    def journal_key(first_id: str) -> str:
        return validate_key(f"{JOURNAL_PREFIX}{first_id}.json")

    def write_journal(self, records: list[RenderRecord]) -> str:
        """Save never-written records as one object (one durable write for the whole batch); returns its
        key. The records are this process's (`load` finds them) until `materialize` writes them out."""
        bodies = [rec.to_json() for rec in records]
        key = self.journal_key(records[0].render_id)
        for rec, body in zip(records, bodies, strict=True):
            self._unstored[rec.render_id] = body
        try:
            self.store.put_bytes(key, b'{"records":[' + b",".join(bodies) + b"]}", "application/json")
        except BaseException:
            for rec in records:
                self._unstored.pop(rec.render_id, None)
            raise
        return key

    def materialize(self, journal: str, render_ids: list[str]) -> tuple[int, dict[str, str]]:
        """Write each journaled record on its own: every index entry first (a reader finds an entry
        whose record is not written yet in the journal, and a crash here leaves a journal whose replay
        finds the entries already there), then the records — except one already in the store, which is
        newer (cancelled through another replica, or written before a crash): that one keeps its record
        and is indexed under its own state — then delete the journal. Returns how many records it
        wrote, and {render id: stored state} of those it found stored in another state."""
        rows = [(rid, self._unstored.get(rid) or self._journaled(rid, journal)) for rid in render_ids]
        rows = [(rid, body, json.loads(body)["state"]) for rid, body in rows if body is not None]
        markers = []
        for rid, _, state in rows:
            markers += [self.index_key("", rid), self.index_key(state, rid)]
        for _ in self._map(self.store.put_marker, markers):
            pass

        def put(row: tuple[str, bytes, str]) -> str:
            rid, body, state = row
            stored = self._stored_state(rid)  # checked last thing before the write
            if not stored:
                self.store.put_bytes(self.key(rid), body, "application/json")
            elif stored != state:  # the stored record moved on: listed under its own state only
                self.store.put_marker(self.index_key(stored, rid))
                self.store.delete(self.index_key(state, rid))
            return stored

        found = list(self._map(put, rows))
        moved = {rid: st for (rid, _, state), st in zip(rows, found, strict=True) if st and st != state}
        self.store.delete(journal)
        self._journals.pop(journal, None)
        for rid, _, _ in rows:
            self._unstored.pop(rid, None)
        return found.count(""), moved

    def _stored_state(self, render_id: str) -> str:
        """The state of `render_id`'s record in the store; '' when there is none. A record that cannot
        be read is not replaced: it is indexed QUEUED, where a restart reports it (`load`)."""
        try:
            data = self.store.get_bytes(self.key(render_id))
        except NotFound:
            return ""
        try:
            state = json.loads(data)["state"]
            return state if state in STATES else QUEUED
        except Exception:  # noqa: BLE001 - untrusted bytes: kept for an operator (load reports it)
            return QUEUED

    def replay_journals(self) -> int:
        """Write out the records that journals left in the store still hold (an orchestrator stopped
        between answering CreateRender and writing them); returns how many were written."""
        n = 0
        for info in self.store.list_page(JOURNAL_PREFIX, "", MAX_JOURNALS_READ):
            bodies = self._read_journal(info.key)
            if bodies is None:
                continue
            self._journals[info.key] = bodies
            n += self.materialize(info.key, list(bodies))[0]  # index entries again: cheap, idempotent
        return n

    def _journaled(self, render_id: str, journal: str = "") -> bytes | None:
        """`render_id`'s body in a creation journal in the store (`journal`: that one only)."""
        if not _RENDER_ID.fullmatch(render_id):
            return None
        keys = (
            [journal]
            if journal
            else [i.key for i in self.store.list_page(JOURNAL_PREFIX, "", MAX_JOURNALS_READ)]
        )
        if not journal:  # forget journals deleted since they were read
            for gone in set(self._journals) - set(keys):
                self._journals.pop(gone, None)
        for key in keys:
            bodies = self._journals.get(key)
            if bodies is None:
                bodies = self._journals[key] = self._read_journal(key) or {}  # unreadable: read once
            if render_id in bodies:
                return bodies[render_id]
        return None

    def _read_journal(self, key: str) -> dict[str, bytes] | None:
        """{render id: record body} of one journal; None (and a warning) when it is gone or unreadable
        (the store is untrusted: a journal with any record that is not a render record is not read, and
        is left for an operator)."""
        try:
            doc = json.loads(self.store.get_bytes(key))
            out: dict[str, bytes] = {}
            for d in doc["records"]:
                body = json.dumps(d, sort_keys=True).encode()
                rec = RenderRecord.from_json(body)
                if not _RENDER_ID.fullmatch(rec.render_id) or rec.state not in STATES:
                    raise ValueError("a record with an unknown state or a malformed id")
                out[rec.render_id] = body
            return out
        except NotFound:
            return None
        except Exception as exc:  # noqa: BLE001 - one bad journal is reported, the others are read
            log.warning("creation journal %s is unreadable (%s): skipped", key, type(exc).__name__)
            return None

    # -- task log -----------------------------------------------------------------------------
    @staticmethod
    def _log_prefix(render_id: str) -> str:
        return f"renders/{render_id}/tasks/"

    def append_results(self, render_id: str, seq: int, results: dict[str, dict[str, Any]]) -> None:
        """Entry `seq` of the task log (a new object: the log is never rewritten)."""
        body = json.dumps(results, sort_keys=True).encode()
        self.store.put_bytes(
            validate_key(f"{self._log_prefix(render_id)}{seq:09d}.json"), body, "application/json"
        )

    def load_results(self, render_id: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for info in self.store.list(self._log_prefix(render_id)):
            out.update(json.loads(self.store.get_bytes(info.key)))
        return out

    def log_length(self, render_id: str) -> int:
        """The next free task-log sequence number."""
        last = 0
        for info in self.store.list(self._log_prefix(render_id)):
            last = max(last, int(info.key.rsplit("/", 1)[1].split(".")[0]) + 1)
        return last

    # -- listing ------------------------------------------------------------------------------
    def page(self, state: str = "", after: str = "", limit: int = 100) -> tuple[list[RenderRecord], str]:
        """Up to `limit` records in creation order after render id `after` (of `state` when given), read
        through the index; returns them and the id to continue after ('' at the end). Index entries
        whose record has moved on (a crash between the two writes) are skipped."""
        prefix = self.state_prefix(state)
        out: list[RenderRecord] = []
        cursor = self.index_key(state, after) if after else ""
        while True:
            want = limit - len(out)
            infos = self.store.list_page(prefix, cursor, want + 1)  # one more: is there a next page?
            page = infos[:want]
            if page:
                cursor = page[-1].key
            # the records of a page: at once where reads wait on the network, else one by one (_map)
            for rec in self._map(self._load_listed, [self._id_of(i.key) for i in page]):
                if rec is not None and (not state or rec.state == state):
                    out.append(rec)
            if len(infos) <= want:
                return out, ""
            if len(out) >= limit:
                return out, self._id_of(cursor)

    def _load_listed(self, render_id: str) -> RenderRecord | None:
        try:
            return self.load(render_id)
        except NotFound:
            return None
        except CorruptRecord as exc:  # listed calls go on; the bad record is reported
            log.warning("ListRenders skips %s", exc.message)
            return None

    def ids(self, state: str = "") -> list[str]:
        """Every render id in the index (of `state`), in creation order."""
        return [self._id_of(info.key) for info in self.store.list(self.state_prefix(state))]

    def list(self, state: str = "") -> list[RenderRecord]:
        out = []
        for rid in self.ids(state):
            try:
                rec = self.load(rid)
            except NotFound:
                continue
            except CorruptRecord as exc:
                log.warning("skipping %s", exc.message)
                continue
            if not state or rec.state == state:
                out.append(rec)
        return out

    INDEX_MARKER = "renders/_index/v1"

    def ensure_index(self) -> int:
        """Once per store: index the records written before the index existed (a walk of renders/),
        then leave a marker so later starts skip it. Returns how many records were indexed."""
        if self.store.exists(self.INDEX_MARKER):
            return 0
        n = self.reindex()
        self.store.put_bytes(self.INDEX_MARKER, b"", "application/octet-stream")
        return n

    def reindex(self) -> int:
        """Index records written before the index existed (a one-time upgrade); returns how many."""
        indexed = set(self.ids())
        n = 0
        for info in self.store.list("renders/"):
            parts = info.key.split("/")
            if len(parts) == 3 and parts[2] == "render.json" and not parts[1].startswith("_"):
                if parts[1] not in indexed:
                    rec = self.load(parts[1])
                    if rec.results:  # results inside render.json (the old layout): to the task log
                        self.append_results(rec.render_id, self.log_length(rec.render_id), rec.results)
                    rec.saved_state = ""
                    self.save(rec)
                    n += 1
        return n

    def _idem_key(self, idempotency_key: str) -> str:
        return f"renders/_idempotency/{hashlib.sha256(idempotency_key.encode()).hexdigest()}.json"

    def lookup_idempotent(self, idempotency_key: str) -> list[str] | None:
        if not idempotency_key:
            return None
        try:
            return json.loads(self.store.get_bytes(self._idem_key(idempotency_key)))["render_ids"]
        except NotFound:
            return None

    def remember_idempotent(self, idempotency_key: str, render_ids: list[str]) -> None:
        if idempotency_key:
            body = json.dumps({"render_ids": render_ids}).encode()
            self.store.put_bytes(self._idem_key(idempotency_key), body, "application/json")
