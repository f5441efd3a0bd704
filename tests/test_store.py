"""The state file: group commit, durability of acknowledged writes, failure isolation."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from remediator.store import Store, StoreBusy, StoreUnavailable
from tests.conftest import Hold


def insert(value: str) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        cursor = conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (value, value))
        return int(cursor.lastrowid or 0)

    return job


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(tmp_path / "state.db")
    s.open()
    yield s
    await s.close()


def keys(store: Store) -> set[str]:
    with store.reader() as conn:
        return {row[0] for row in conn.execute("SELECT key FROM meta")}


async def test_state_file_uses_wal(store: Store) -> None:
    with store.reader() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_concurrent_writes_share_commits(store: Store) -> None:
    async with Hold(store) as hold:  # a commit in flight: new writes queue behind it
        first = asyncio.ensure_future(store.write(insert("first")))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        writes = [asyncio.ensure_future(store.write(insert(f"k{i}"))) for i in range(50)]
        await hold.queued(50)
        before = store.commits
    await asyncio.gather(first, *writes)
    assert store.commits - before == 2  # 51 acknowledged writes: the stalled commit + one more
    assert len(keys(store)) == 51


async def test_a_write_returns_only_after_its_commit(store: Store) -> None:
    async with Hold(store):
        write = asyncio.ensure_future(store.write(insert("pending")))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not write.done()
        assert "pending" not in keys(store)  # not committed, so not visible, not acknowledged
    await write
    assert "pending" in keys(store)


async def test_a_failing_job_does_not_undo_its_batch_mates(store: Store) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('bad', 'x')")
        raise ValueError("job bug")

    good = asyncio.ensure_future(store.write(insert("good")))
    bad = asyncio.ensure_future(store.write(broken))
    await good
    with pytest.raises(ValueError, match="job bug"):
        await bad
    assert "good" in keys(store)
    assert "bad" not in keys(store)


async def test_committed_hook_runs_after_the_commit_and_before_the_caller_resumes(
    store: Store,
) -> None:
    seen: list[tuple[int, bool]] = []

    def committed(row_id: int) -> None:
        seen.append((row_id, "hooked" in keys(store)))  # visible to another connection: durable

    async with Hold(store):
        write = asyncio.ensure_future(store.write(insert("hooked"), committed))
        for _ in range(20):
            await asyncio.sleep(0)
        assert seen == []  # not committed yet
    row_id = await write
    assert seen == [(row_id, True)]


async def test_committed_hook_runs_even_if_the_caller_was_cancelled(store: Store) -> None:
    seen: list[int] = []
    async with Hold(store):
        write = asyncio.ensure_future(store.write(insert("orphan"), seen.append))
        for _ in range(20):
            await asyncio.sleep(0)
        write.cancel()
    await store.write(insert("after"))  # batches settle in order: the orphan's came first
    assert write.cancelled()
    assert "orphan" in keys(store)
    assert len(seen) == 1


async def test_committed_hook_never_runs_for_a_failed_job_or_commit(store: Store) -> None:
    seen: list[object] = []

    def broken(conn: sqlite3.Connection) -> None:
        raise ValueError("job bug")

    with pytest.raises(ValueError, match="job bug"):
        await store.write(broken, seen.append)
    await store.write(lambda conn: conn.execute("PRAGMA query_only = 1"))
    with pytest.raises(StoreUnavailable):
        await store.write(insert("refused"), seen.append)
    assert seen == []


async def test_a_failing_hook_is_reported_to_the_caller_though_the_write_is_durable(
    store: Store,
) -> None:
    def hook(row_id: int) -> None:
        raise RuntimeError("hook bug")

    with pytest.raises(RuntimeError, match="hook bug"):
        await store.write(insert("kept"), hook)
    assert "kept" in keys(store)


async def test_acknowledged_writes_survive_reopening(tmp_path: Path) -> None:
    first = Store(tmp_path / "state.db")
    first.open()
    await first.write(insert("durable"))
    await first.close()
    second = Store(tmp_path / "state.db")
    second.open()
    assert "durable" in keys(second)
    await second.close()


async def test_unwritable_database_raises_store_unavailable(store: Store) -> None:
    await store.write(lambda conn: conn.execute("PRAGMA query_only = 1"))
    with pytest.raises(StoreUnavailable, match="readonly"):
        await store.write(insert("x"))


async def test_queue_limit_sheds_load(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", max_queue=2)
    store.open()
    async with Hold(store) as hold:
        in_flight = asyncio.ensure_future(store.write(insert("in-flight")))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        queued = [asyncio.ensure_future(store.write(insert(f"q{i}"))) for i in range(2)]
        await hold.queued(2)
        with pytest.raises(StoreBusy, match=r"intake queue is full \(2 writes waiting\)"):
            await store.write(insert("one too many"))
    await asyncio.gather(in_flight, *queued)
    assert "one too many" not in keys(store)
    await store.close()


async def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.write(insert("x"))
