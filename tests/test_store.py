"""The state file: group commit, durability of acknowledged writes, failure isolation."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
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
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    s.open()
    yield s
    s.close()


def test_wal_and_full_sync(store: Store) -> None:
    with store.reader() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_concurrent_writes_share_commits(store: Store) -> None:
    # Hold the writer so the next writes queue up behind it, as under concurrent load.
    async with Hold(store):
        writes = [asyncio.ensure_future(store.write(insert(f"k{i}"))) for i in range(50)]
        await asyncio.sleep(0)
        before = store.commits
    await asyncio.gather(*writes)
    assert store.commits - before <= 2  # 50 acknowledged writes, one or two fsyncs
    with store.reader() as conn:
        assert conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'k%'").fetchone()[0] == 50


async def test_a_failing_job_does_not_undo_its_batch_mates(store: Store) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('bad', 'x')")
        raise ValueError("job bug")

    async with Hold(store):
        good = asyncio.ensure_future(store.write(insert("good")))
        bad = asyncio.ensure_future(store.write(broken))
        await asyncio.sleep(0)
    await good
    with pytest.raises(ValueError, match="job bug"):
        await bad
    with store.reader() as conn:
        keys = {r[0] for r in conn.execute("SELECT key FROM meta")}
    assert "good" in keys
    assert "bad" not in keys


async def test_acknowledged_writes_survive_reopening(tmp_path: Path) -> None:
    first = Store(tmp_path / "state.db")
    first.open()
    await first.write(insert("durable"))
    first.close()
    second = Store(tmp_path / "state.db")
    second.open()
    with second.reader() as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'durable'").fetchone() == (
            "durable",
        )
    second.close()


async def test_unwritable_database_raises_store_unavailable(store: Store) -> None:
    await store.write(lambda conn: conn.execute("PRAGMA query_only = 1"))
    with pytest.raises(StoreUnavailable, match="readonly"):
        await store.write(insert("x"))


async def test_queue_limit_sheds_load(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", max_queue=2)
    store.open()
    async with Hold(store):
        queued = [asyncio.ensure_future(store.write(insert(f"q{i}"))) for i in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(StoreBusy, match="intake queue is full"):
            await store.write(insert("one too many"))
    await asyncio.gather(*queued)
    store.close()


async def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.write(insert("x"))
