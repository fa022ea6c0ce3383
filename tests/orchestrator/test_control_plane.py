"""The control plane at scale (issue #13): O(1) store writes per task, none on the event loop; paged,
state-filtered listing through the store index with validated page tokens; a restart that reads only
unfinished renders; bounded creation (per-request limit, FIFO queue with positions, RESOURCE_EXHAUSTED);
a Serve proxy's "application not found" retried as transient."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest

from lihq.auth import Authenticator
from lihq.errors import InvalidInput, ResourceExhausted, Unavailable
from lihq.grpc.errors import AppDeploying, error_from_rpc
from lihq.storage import FileStore
from lihq.v1 import render_pb2, render_pb2_grpc
from orchestrator.core import Admission, Orchestrator
from orchestrator.scheduler import Limits, RetryPolicy
from orchestrator.servicer import RenderServicer
from orchestrator.spec import RenderSpec
from orchestrator.state import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    RenderRecord,
    RenderStore,
    new_render_id,
)
from tests.orchestrator.test_core import FakeStages
from tests.plaingrpc import plain_server

SPEC = RenderSpec(face_key="inputs/f.png", audio_key="inputs/a.wav", segment_frames=10)
FAST = RetryPolicy(attempts=2, base_s=0.001)


class CountingStore(FileStore):
    """A FileStore that records every write and read (key, thread name)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.puts: list[tuple[str, str]] = []
        self.gets: list[str] = []

    def put_bytes(self, key, data, content_type=None):
        self.puts.append((key, threading.current_thread().name))
        return super().put_bytes(key, data, content_type)

    def put_marker(self, key):
        self.puts.append((key, threading.current_thread().name))
        return super().put_marker(key)

    def get_bytes(self, key):
        self.gets.append(key)
        return super().get_bytes(key)


def make(tmp_path, stages, **adm):
    store = CountingStore(tmp_path / "store", "lihq")
    orch = Orchestrator(store, stages, Limits(default_concurrency=4), FAST, admission=Admission(**adm))
    return orch, store


def test_a_long_render_writes_its_record_a_bounded_number_of_times_and_never_on_the_loop(tmp_path):
    async def go():
        orch, store = make(tmp_path, FakeStages(duration=60.0), progress_interval_s=3600)
        [rec] = await orch.create([SPEC])
        done = await orch.wait(rec.render_id)
        return done, store

    done, store = asyncio.run(go())
    tasks = sum(t for _, t in done.progress.values())
    assert done.state == SUCCEEDED and tasks > 300
    record_writes = [k for k, _ in store.puts if k.endswith("/render.json")]
    assert len(record_writes) <= 4  # created, RUNNING, SUCCEEDED (+ at most one progress write)
    log = [k for k, _ in store.puts if "/tasks/" in k]
    assert 1 <= len(log) <= tasks  # the task log: grouped appends, never a rewrite
    assert len(set(log)) == len(log)
    assert {t for _, t in store.puts} and "MainThread" not in {t for _, t in store.puts}
    saved = RenderStore(store).load(done.render_id, results=True)
    assert set(saved.results) >= {"encode", "speech", "face"} and len(saved.results) == tasks


def test_concurrent_creations_are_journaled_by_group_commit_off_the_loop_and_durable_when_answered(tmp_path):
    """50 CreateRender calls at once: each answered render is already in the store (in a creation
    journal: another replica reads it there), the burst costs one journal object per group of calls,
    not three writes per render; once written out, each render has its record and two index markers
    and the journals are gone. Every write ran on the creation threads (not the loop, not the
    journals' threads), and the renders started do not write RUNNING meanwhile."""

    class SlowStages(FakeStages):
        async def run(self, task, deps):
            await asyncio.sleep(30)

    async def go():
        orch, store = make(tmp_path, SlowStages(), progress_interval_s=3600)
        answered = []

        async def one(i):
            [rec] = await orch.create([SPEC], idempotency_key=f"k{i}" if i % 2 else "")
            fresh = RenderStore(FileStore(tmp_path / "store", "lihq"))  # what another replica sees
            answered.append((rec.render_id, fresh.load(rec.render_id).state))
            if i % 2:
                assert fresh.lookup_idempotent(f"k{i}") == [rec.render_id]

        await asyncio.gather(*(one(i) for i in range(50)))
        burst = list(store.puts)
        await orch._commit.drain()  # noqa: SLF001 - written out (a listing here waits for it too)
        writes = list(store.puts)
        index = RenderStore(FileStore(tmp_path / "store", "lihq"))
        listed = (set(index.ids()), set(index.ids(QUEUED)))
        left = [i.key for i in FileStore(tmp_path / "store", "lihq").list("renders/_new/")]
        for task, _ in orch._running.values():  # noqa: SLF001 - stop the renders started
            task.cancel()
        return answered, burst, writes, listed, left

    answered, burst, writes, (every, queued), left = asyncio.run(go())
    assert len(answered) == 50 and {s for _, s in answered} == {QUEUED}
    journals = [k for k, _ in burst if k.startswith("renders/_new/")]
    assert 1 <= len(journals) < 50  # grouped: one object per batch of calls
    assert len([k for k, _ in burst if "/_idempotency/" in k]) == 25
    assert every == {rid for rid, _ in answered} == queued and left == []
    records = [k for k, _ in writes if k.endswith("/render.json")]
    assert sorted(records) == sorted(f"renders/{rid}/render.json" for rid, _ in answered)  # once each
    assert len([k for k, _ in writes if "/_all/" in k or "/_state/" in k]) == 2 * 50
    assert all(t.startswith("lihq-create") for _, t in writes), {t for _, t in writes}


def test_a_marker_is_an_empty_object_that_replaces_what_was_there(tmp_path):
    store = FileStore(tmp_path, "lihq")
    store.put_bytes("a/b", b"old content")
    info = store.put_marker("a/b")
    assert info.size == 0 and store.get_bytes("a/b") == b"" and store.stat("a/b").size == 0
    store.put_marker("a/c")
    assert [i.key for i in store.list("a/")] == ["a/b", "a/c"]
    with pytest.raises(Exception, match="directory of other objects"):
        store.put_marker("a")


def test_a_failed_write_of_progress_is_not_lost_and_the_final_record_wins(tmp_path):
    """Progress rewrites (throttled) and the final state go through one writer: the last write is the
    terminal record, whatever the interleaving."""

    async def go():
        orch, store = make(tmp_path, FakeStages(duration=20.0), progress_interval_s=0.0)
        recs = await orch.create([SPEC, SPEC, SPEC])
        return [await orch.wait(r.render_id) for r in recs], store

    recs, store = asyncio.run(go())
    for rec in recs:
        assert RenderStore(store).load(rec.render_id).state == SUCCEEDED
        assert RenderStore(store).ids(SUCCEEDED).count(rec.render_id) == 1
    assert RenderStore(store).ids(RUNNING) == [] and RenderStore(store).ids(QUEUED) == []


@pytest.fixture(scope="module")
def listing(tmp_path_factory):
    """25 finished renders and 3 that fail, served by a plain gRPC RenderService (auth off)."""
    store = CountingStore(tmp_path_factory.mktemp("listing") / "store", "lihq")

    class FailSome(FakeStages):
        async def run(self, task, deps):
            if task.id == "face" and task.params.get("key") == "inputs/bad.png":
                raise InvalidInput("no face found in the image")
            return await super().run(task, deps)

    stages = FailSome()
    orch = Orchestrator(store, stages, Limits(default_concurrency=8), FAST)
    bad = RenderSpec(face_key="inputs/bad.png", audio_key="inputs/a.wav", segment_frames=10)

    async def fill():
        ids = []
        for i in range(28):
            [r] = await orch.create([bad if i % 10 == 5 else SPEC])
            ids.append(r.render_id)
        for rid in ids:
            await orch.wait(rid)
        return ids

    ids = asyncio.run(fill())
    svc = RenderServicer(Orchestrator(store, stages, Limits(), FAST), auth=Authenticator(enabled=False))
    with plain_server(svc, [render_pb2.DESCRIPTOR.services_by_name["RenderService"]]) as ch:
        yield render_pb2_grpc.RenderServiceStub(ch), ids, store


def test_list_renders_pages_in_creation_order_with_opaque_tokens(listing):
    stub, ids, store = listing
    seen, token, pages = [], "", 0
    while True:
        r = stub.ListRenders(render_pb2.ListRendersRequest(page_size=10, page_token=token), timeout=30)
        seen += [x.render_id for x in r.renders]
        pages += 1
        token = r.next_page_token
        if not token:
            break
        assert not token.isdigit()  # opaque, not an offset
    assert seen == ids and pages == 3  # every render once, oldest first; no empty last page


def test_list_renders_filters_by_state_reading_only_the_records_it_returns(listing):
    stub, ids, store = listing
    store.gets.clear()
    r = stub.ListRenders(
        render_pb2.ListRendersRequest(state=render_pb2.RENDER_STATE_FAILED, page_size=2), timeout=30
    )
    assert [x.state for x in r.renders] == [render_pb2.RENDER_STATE_FAILED] * 2
    assert [x.render_id for x in r.renders] == [ids[5], ids[15]] and r.next_page_token
    assert len([k for k in store.gets if k.endswith("/render.json")]) == 2  # not 28
    last = stub.ListRenders(
        render_pb2.ListRendersRequest(
            state=render_pb2.RENDER_STATE_FAILED, page_size=2, page_token=r.next_page_token
        ),
        timeout=30,
    )
    assert [x.render_id for x in last.renders] == [ids[25]] and not last.next_page_token
    assert last.renders[0].error_stage == "face" and last.renders[0].error_code == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "req, needle",
    [
        (render_pb2.ListRendersRequest(page_size=-1), "page_size"),
        (render_pb2.ListRendersRequest(page_token="12"), "page_token"),
        (render_pb2.ListRendersRequest(page_token="not a token!"), "page_token"),
        (render_pb2.ListRendersRequest(page_token="eyJ2IjoxLCJzIjoiIiwiYSI6Ii4uLyJ9"), "page_token"),
    ],
)
def test_bad_page_requests_are_invalid_argument(listing, req, needle):
    stub, _, _ = listing
    with pytest.raises(grpc.RpcError) as ei:
        stub.ListRenders(req, timeout=30)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in ei.value.details()


def test_a_page_token_is_only_good_for_the_filter_it_was_made_for(listing):
    stub, _, _ = listing
    r = stub.ListRenders(render_pb2.ListRendersRequest(page_size=2), timeout=30)
    with pytest.raises(grpc.RpcError) as ei:
        stub.ListRenders(
            render_pb2.ListRendersRequest(state=render_pb2.RENDER_STATE_FAILED, page_token=r.next_page_token),
            timeout=30,
        )
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "FAILED" in ei.value.details()


def test_a_restarted_orchestrator_reads_only_unfinished_renders(tmp_path):
    async def first():
        done, _ = make(tmp_path, FakeStages())
        for _ in range(6):
            [r] = await done.create([SPEC])
            await done.wait(r.render_id)
        orch, _ = make(tmp_path, FakeStages(stall_on="gfpgan2/1"))
        [rec] = await orch.create([SPEC])
        while "gfpgan2/0" not in orch.get(rec.render_id).results:
            await asyncio.sleep(0.01)
        return rec.render_id  # the loop ends here: the orchestrator "dies" mid-render

    rid = asyncio.run(first())
    fresh = FakeStages()

    async def second():
        orch, store = make(tmp_path, fresh)
        store.gets.clear()
        assert await orch.resume_all() == [rid]
        reads = [k for k in store.gets if k.endswith("/render.json")]
        return await orch.wait(rid), reads

    rec, reads = asyncio.run(second())
    assert rec.state == SUCCEEDED and reads == [f"renders/{rid}/render.json"]  # not the 6 finished ones
    assert fresh.calls["gfpgan2/0"] == 0 and fresh.calls["face"] == 0  # nothing finished ran again


def test_renders_past_the_running_limit_wait_queued_first_in_first_out(tmp_path):
    class Gate(FakeStages):
        def __init__(self):
            super().__init__()
            self.open = asyncio.Event()
            self.order: list[str] = []

        def for_render(self, rec):
            gate = self

            class Bound:
                async def run(self, task, deps):
                    if task.id == "face":
                        gate.order.append(rec.render_id)
                        await gate.open.wait()
                    return await gate.run(task, deps)

            return Bound()

    async def go():
        stages = Gate()
        orch, _ = make(tmp_path, stages, max_running=1, max_queued=3, max_renders_per_request=3)
        a = (await orch.create([SPEC]))[0].render_id
        b, c = [r.render_id for r in await orch.create([SPEC, SPEC])]
        await asyncio.sleep(0.05)
        got = {rid: orch.get(rid) for rid in (a, b, c)}
        states = {rid: (r.state, r.queue_position) for rid, r in got.items()}
        with pytest.raises(InvalidInput, match="at most 3"):
            await orch.create([SPEC] * 4)
        await orch.create([SPEC])  # the queue holds 3 now
        with pytest.raises(ResourceExhausted, match="queued"):
            await orch.create([SPEC])
        cancelled = await orch.cancel(c)
        stages.open.set()
        for rid in (a, b):
            await orch.wait(rid)
        return states, stages.order, (a, b, c), cancelled

    states, order, (a, b, c), cancelled = asyncio.run(go())
    assert states == {a: (RUNNING, 0), b: (QUEUED, 1), c: (QUEUED, 2)}
    assert cancelled.state == CANCELLED and order[:2] == [a, b] and c not in order


def test_queue_position_reaches_the_client_in_get_render(tmp_path):
    async def go():
        orch = Orchestrator(
            FileStore(tmp_path / "store", "lihq"),
            FakeStages(stall_on="face"),
            Limits(),
            FAST,
            admission=Admission(max_running=1),
        )
        svc = RenderServicer(orch, auth=Authenticator(enabled=False))
        ids = [(await orch.create([SPEC]))[0].render_id for _ in range(3)]
        await asyncio.sleep(0.02)
        got = [await svc.GetRender(render_pb2.GetRenderRequest(render_id=r)) for r in ids]
        for r in ids:
            await orch.cancel(r)
        return got

    got = asyncio.run(go())
    assert [g.queue_position for g in got] == [0, 1, 2]
    assert [g.state for g in got] == [render_pb2.RENDER_STATE_RUNNING] + [render_pb2.RENDER_STATE_QUEUED] * 2


class _Rpc(grpc.RpcError):
    def __init__(self, code, details):
        self._c, self._d = code, details

    def code(self):
        return self._c

    def details(self):
        return self._d


def test_a_serve_app_that_is_still_deploying_is_transient_but_a_missing_object_is_not():
    deploying = error_from_rpc(
        _Rpc(
            grpc.StatusCode.NOT_FOUND,
            "Application 'fomm' not found. Ping /ray.serve.RayServeAPIService/ListApplications for "
            "available applications.",
        )
    )
    assert isinstance(deploying, Unavailable) and deploying.retryable and "fomm" in deploying.message
    missing = error_from_rpc(_Rpc(grpc.StatusCode.NOT_FOUND, "no object at key 'inputs/x.png'"))
    assert missing.code == "NOT_FOUND" and not missing.retryable


class DeployingFor(FakeStages):
    """Every call answers `err` until `n` calls have been made, then works."""

    def __init__(self, n: int, err: type) -> None:
        super().__init__()
        self.n, self.err, self.seen = n, err, 0

    async def run(self, task, deps):
        self.seen += 1
        if self.seen <= self.n:
            raise self.err("Application 'fomm' not found.")
        return await super().run(task, deps)


@pytest.mark.parametrize("err, ok", [(AppDeploying, True), (Unavailable, False)])
def test_a_render_waits_out_a_stage_app_that_is_deploying_past_its_retry_attempts(tmp_path, err, ok):
    async def go():
        stages = DeployingFor(6, err)
        orch = Orchestrator(
            FileStore(tmp_path / "store", "lihq"), stages, Limits(), RetryPolicy(attempts=2, base_s=0.001)
        )
        [rec] = await orch.create([SPEC])
        return await orch.wait(rec.render_id)

    rec = asyncio.run(go())
    assert rec.state == (SUCCEEDED if ok else FAILED), rec.error
    if not ok:
        assert rec.error_code == "UNAVAILABLE" and rec.error_stage == "face"


def test_a_store_from_before_the_index_is_indexed_once_and_its_renders_resume(tmp_path):
    """Records of the old layout (results inside render.json, no index): the first start indexes them,
    moves their results to the task log, and resumes the unfinished one without recomputing."""
    import json

    store = CountingStore(tmp_path / "store", "lihq")

    async def first():  # a render stalled mid-way, then its record rewritten in the old layout
        orch = Orchestrator(store, FakeStages(stall_on="gfpgan2/1"), Limits(), FAST)
        [rec] = await orch.create([SPEC])
        while "gfpgan2/0" not in orch.get(rec.render_id).results:
            await asyncio.sleep(0.01)
        return rec.render_id

    rid = asyncio.run(first())
    results = RenderStore(store).load_results(rid)
    old = json.loads(store.get_bytes(f"renders/{rid}/render.json")) | {"results": results}
    for info in list(store.list("renders/")):
        if info.key != f"renders/{rid}/render.json":
            store.delete(info.key)
    store.put_bytes(f"renders/{rid}/render.json", json.dumps(old).encode())
    fresh = FakeStages()

    async def second():
        orch = Orchestrator(store, fresh, Limits(), FAST)
        assert await orch.resume_all() == [rid]
        done = await orch.wait(rid)
        again = await Orchestrator(store, fresh, Limits(), FAST).resume_all()
        return done, again, await orch.page()

    done, again, (listed, _) = asyncio.run(second())
    assert done.state == SUCCEEDED and again == [] and [r.render_id for r in listed] == [rid]
    assert not set(fresh.calls) & set(results)  # nothing recorded in the old layout ran again
    assert store.exists(RenderStore.INDEX_MARKER)
    assert set(results) <= set(RenderStore(store).load_results(rid))  # moved to the task log


def test_each_tenants_queued_and_running_count_follows_creation_cancel_and_the_end(tmp_path):
    """What CreateRender's running quota reads (Orchestrator.unfinished_count, a counter per tenant):
    queued and running renders of that tenant only; a cancelled or finished render leaves it."""

    async def go():
        stages = FakeStages(stall_on="face")
        orch, _ = make(tmp_path, stages, max_running=1)
        a1, a2 = [r.render_id for r in await orch.create([SPEC, SPEC], tenant="a")]
        [b1] = [r.render_id for r in await orch.create([SPEC], tenant="b")]
        counts = [(orch.unfinished_count("a"), orch.unfinished_count("b"), orch.unfinished_count())]
        await orch.cancel(a2)  # queued
        counts.append((orch.unfinished_count("a"), orch.unfinished_count("b"), orch.unfinished_count()))
        await orch.cancel(a1)  # running
        await orch.cancel(b1)
        counts.append((orch.unfinished_count("a"), orch.unfinished_count("b"), orch.unfinished_count()))
        stages.stall_on = None
        [c] = [r.render_id for r in await orch.create([SPEC], tenant="a")]
        counts.append((orch.unfinished_count("a"), orch.unfinished_count("c"), orch.unfinished_count()))
        assert (await orch.wait(c)).state == SUCCEEDED
        counts.append((orch.unfinished_count("a"), orch.unfinished_count("b"), orch.unfinished_count()))
        return counts

    assert asyncio.run(go()) == [(2, 1, 3), (1, 1, 2), (0, 0, 0), (1, 0, 1), (0, 0, 0)]


def test_renders_answered_but_not_yet_written_out_survive_a_crash_and_resume(tmp_path, monkeypatch):
    """The orchestrator dies after CreateRender answered (the records are in the creation journal
    only): a restarted one writes them out, indexes them, runs them to the end and deletes the
    journal; meanwhile another replica already reads them from the journal."""

    async def crash_before_write_out():
        orch, _ = make(tmp_path, FakeStages())
        monkeypatch.setattr(RenderStore, "materialize", lambda *a: (_ for _ in ()).throw(OSError("killed")))
        recs = await orch.create([SPEC] * 3)  # more than a lone creation writes directly: journaled
        await asyncio.sleep(0.05)
        return [r.render_id for r in recs]

    ids = asyncio.run(crash_before_write_out())
    monkeypatch.undo()
    raw = FileStore(tmp_path / "store", "lihq")
    assert [i.key for i in raw.list("renders/_new/")] and not raw.exists(RenderStore.key(ids[0]))
    other = RenderStore(raw)  # another replica: reads the journal
    assert [other.load(r).state for r in ids] == [QUEUED] * 3 and other.ids() == []

    async def restart():
        orch, _ = make(tmp_path, FakeStages())
        resumed = await orch.resume_all()
        return resumed, [await orch.wait(r) for r in ids]

    resumed, done = asyncio.run(restart())
    assert resumed == sorted(ids) and [r.state for r in done] == [SUCCEEDED] * 3
    assert list(raw.list("renders/_new/")) == [] and RenderStore(raw).ids() == sorted(ids)


def test_a_hostile_or_broken_creation_journal_is_skipped_never_trusted(tmp_path, caplog):
    raw = FileStore(tmp_path / "store", "lihq")
    good = b'{"records":[' + RenderRecord("0" * 16, SPEC).to_json() + b"]}"
    raw.put_bytes("renders/_new/aaa.json", b"not json")
    raw.put_bytes("renders/_new/bbb.json", b'{"records":[{"render_id":"../../x","state":"QUEUED"}]}')
    raw.put_bytes("renders/_new/ccc.json", good.replace(b'"QUEUED"', b'"HACKED"'))
    raw.put_bytes("renders/_new/ddd.json", good)
    rs = RenderStore(raw)
    with pytest.raises(Exception, match="'..' segment"):
        rs.load("../../x")
    with pytest.raises(Exception, match="no render"):
        rs.load("1" * 16)
    assert rs.load("0" * 16).state == QUEUED  # the well-formed journal is read
    assert rs.replay_journals() == 1 and rs.ids() == ["0" * 16]
    assert caplog.text.count("unreadable") >= 3
    assert sorted(i.key for i in raw.list("renders/_new/")) == [  # left for an operator, never trusted
        "renders/_new/aaa.json",
        "renders/_new/bbb.json",
        "renders/_new/ccc.json",
    ]


def test_a_render_cancelled_through_another_replica_before_it_is_written_out_stays_cancelled(tmp_path):
    """One render of a journaled batch is cancelled through another replica while its record is only
    in the creation journal: the write-out keeps the stored CANCELLED (listed as such) and the render
    never starts here; the others of the batch start once written out."""

    async def go():
        orch, store = make(tmp_path, FakeStages(stall_on="face"))
        gate = threading.Event()
        real = RenderStore.materialize
        wrote_out = []

        def slow(self, journal, ids):
            gate.wait(10)
            wrote_out.append(ids)
            return real(self, journal, ids)

        orch.renders.materialize = slow.__get__(orch.renders)
        rec, *rest = await orch.create([SPEC] * 3)  # journaled (more than a lone creation writes directly)
        other = Orchestrator(FileStore(tmp_path / "store", "lihq"), FakeStages(), Limits(), FAST)
        cancelled = await other.cancel(rec.render_id)  # reads it from the journal, writes CANCELLED
        gate.set()
        await orch._commit.drain()  # noqa: SLF001
        await asyncio.sleep(0.05)
        index = RenderStore(FileStore(tmp_path / "store", "lihq"))
        here = ((await orch.wait(rec.render_id)).state, [orch.get(r.render_id).state for r in rest])
        started = ["face" in orch.get(r.render_id).results or r.render_id in orch._running for r in rest]  # noqa: SLF001
        listed = (index.ids(), index.ids(CANCELLED), index.ids(QUEUED))
        return cancelled, index.load(rec.render_id), wrote_out, listed, here, started, orch.executor.calls

    cancelled, stored, wrote_out, (every, ended, queued), here, started, calls = asyncio.run(go())
    assert cancelled.state == CANCELLED and stored.state == CANCELLED  # the write-out did not undo it
    assert wrote_out and stored.render_id in wrote_out[0]
    assert stored.render_id in every and ended == [stored.render_id]  # listed, and as cancelled only
    assert stored.render_id not in queued
    assert here == (CANCELLED, [RUNNING, RUNNING]) and started == [True, True]
    assert calls["face"] == 2  # the cancelled render never started: only the other two ran a task


def test_the_creation_journal_on_each_store(store_factory):
    """On the file store and on S3 (rclone serve s3): a lone creation is written directly (indexed
    when answered, no journal); 10 requests of 3 renders at once are answered from journals another
    replica already reads; once written out every render is indexed and no journal is left."""

    async def go():
        store = store_factory()
        orch = Orchestrator(store, FakeStages(stall_on="face"), Limits(), FAST)
        [lone] = await orch.create([SPEC])  # written directly: record and index, no journal
        direct = (RenderStore(store_factory()).ids(), [i.key for i in store.list("renders/_new/")])
        batches = await asyncio.gather(*(orch.create([SPEC] * 3) for _ in range(10)))
        ids = [r.render_id for recs in batches for r in recs]
        other = RenderStore(store_factory())  # another replica, its own client
        answered = [other.load(rid).state for rid in ids]
        await orch._commit.drain()  # noqa: SLF001
        indexed, left = other.ids(), [i.key for i in store.list("renders/_new/")]
        for rid in [lone.render_id, *ids]:
            await orch.cancel(rid)
        return lone.render_id, direct, ids, answered, indexed, left

    lone, direct, ids, answered, indexed, left = asyncio.run(go())
    assert direct == ([lone], [])
    assert answered == [QUEUED] * 30 and indexed == sorted([lone, *ids]) and left == []


def test_a_restart_repairs_an_index_left_behind_by_a_crash_between_a_record_and_its_index_move(
    tmp_path, caplog
):
    """Three renders as a crash between a record's write and its index move leaves them: one RUNNING
    still listed QUEUED (resumed and finished), one SUCCEEDED still listed RUNNING (not run again,
    listed as SUCCEEDED), one whose record is not a record (skipped with a warning, the others go on)."""
    raw = FileStore(tmp_path / "store", "lihq")
    rs = RenderStore(raw)
    moved, ended, broken = (RenderRecord(new_render_id(), SPEC) for _ in range(3))
    for rec, state in ((moved, QUEUED), (ended, RUNNING), (broken, QUEUED)):
        rec.state = state
        rs.save(rec)
    moved.state, ended.state = RUNNING, SUCCEEDED
    raw.put_bytes(rs.key(moved.render_id), moved.to_json())  # the record only: then the "crash"
    raw.put_bytes(rs.key(ended.render_id), ended.to_json())
    raw.put_bytes(rs.key(broken.render_id), b"\x00 not a record")
    stages = FakeStages()

    async def restart():
        orch, _ = make(tmp_path, stages)
        resumed = await orch.resume_all()
        return resumed, await orch.wait(moved.render_id)

    resumed, done = asyncio.run(restart())
    assert resumed == [moved.render_id] and done.state == SUCCEEDED and stages.calls["encode"] == 1
    assert rs.ids(SUCCEEDED) == sorted([moved.render_id, ended.render_id])
    assert rs.ids(RUNNING) == [] and rs.ids(QUEUED) == [broken.render_id]  # left for an operator
    assert "not resumed" in caplog.text and broken.render_id in caplog.text


def test_a_journal_replayed_after_its_render_was_written_indexes_the_stored_state(tmp_path):
    """A crash after a journaled render's record was written on its own (here: it already ended) but
    before the journal's deletion: the replay keeps the stored record and lists it under its own
    state, not the journal's QUEUED."""
    raw = FileStore(tmp_path / "store", "lihq")
    first, second = RenderRecord(new_render_id(), SPEC), RenderRecord(new_render_id(), SPEC)
    RenderStore(raw).write_journal([first, second])
    first.state = SUCCEEDED
    raw.put_bytes(RenderStore.key(first.render_id), first.to_json())
    rs = RenderStore(raw)  # a restarted orchestrator's
    assert rs.replay_journals() == 1  # only the one not in the store yet
    assert rs.load(first.render_id).state == SUCCEEDED and rs.load(second.render_id).state == QUEUED
    assert rs.ids(SUCCEEDED) == [first.render_id] and rs.ids(QUEUED) == [second.render_id]
    assert rs.ids() == sorted([first.render_id, second.render_id]) and not list(raw.list("renders/_new/"))


def test_waiting_on_a_render_run_here_returns_its_stored_record_without_reading_it_back(tmp_path):
    async def go():
        orch, store = make(tmp_path, FakeStages())
        [rec] = await orch.create([SPEC])
        store.gets.clear()
        done = await orch.wait(rec.render_id)
        return rec.render_id, done, list(store.gets)

    rid, done, reads = asyncio.run(go())
    assert done.state == SUCCEEDED and f"renders/{rid}/render.json" not in reads
    assert RenderStore(FileStore(tmp_path / "store", "lihq")).load(rid, results=True) == done  # as stored


def test_under_render_actors_a_render_cancelled_before_its_write_out_gets_no_actor(tmp_path):
    from orchestrator.actors import ActorOrchestrator

    async def go():
        orch = ActorOrchestrator(lambda: make(tmp_path, FakeStages())[0])
        launched = []
        orch.launch = launched.append  # no Ray here: which actors would be launched
        gate = threading.Event()
        real = RenderStore.materialize
        orch.renders.materialize = lambda journal, ids: (gate.wait(10), real(orch.renders, journal, ids))[1]
        rec, *rest = await orch.create([SPEC] * 3)  # journaled: the actors wait for the write-out
        other = Orchestrator(FileStore(tmp_path / "store", "lihq"), FakeStages(), Limits(), FAST)
        await other.cancel(rec.render_id)
        before = list(launched)
        gate.set()
        await orch._commit.drain()  # noqa: SLF001
        return before, launched, sorted(r.render_id for r in rest)

    before, launched, rest = asyncio.run(go())
    assert before == [] and sorted(launched) == rest
