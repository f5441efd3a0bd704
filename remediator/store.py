"""The state file: one SQLite database (WAL) holding decisions, guardrail history and audit.

Owns: the schema, the single writer thread with group commit, and the SQL for decisions and
guardrail counts. Every write is a job run on the writer thread; the jobs queued while a
commit is in flight run together in the next transaction, so one fsync serves many concurrent
requests. A job's caller is resumed only after the commit that holds its writes succeeded:
that is the durability promise behind a 2xx to Alertmanager.
Must not: decide anything (jobs are handed in by the engine) or log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from remediator.guardrails import GuardrailState, Lookup

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One row per decision that guardrails allowed: the episode ledger (dedup), the history
-- guardrails count (cooldown, per-target window, global budget) and the work queue that
-- survives a restart (state pending -> running -> done).
CREATE TABLE IF NOT EXISTS decisions (
    id          INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done')),
    rule        TEXT NOT NULL,
    target      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    status      TEXT NOT NULL,
    plan        TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS decisions_episode
    ON decisions (rule, fingerprint, starts_at, status);
CREATE INDEX IF NOT EXISTS decisions_rule_target_at ON decisions (rule, target, at);
CREATE INDEX IF NOT EXISTS decisions_target_at ON decisions (target, at);
CREATE INDEX IF NOT EXISTS decisions_at ON decisions (at);
CREATE INDEX IF NOT EXISTS decisions_open ON decisions (state) WHERE state != 'done';
-- Append-only audit trail: one row per decision outcome; `record` is the full JSON record.
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    rule        TEXT NOT NULL,
    target      TEXT,
    outcome     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    decision_id INTEGER,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE INDEX IF NOT EXISTS audit_rule_at ON audit (rule, at);
CREATE INDEX IF NOT EXISTS audit_target_at ON audit (target, at);
CREATE INDEX IF NOT EXISTS audit_outcome_at ON audit (outcome, at);
"""


class StoreError(Exception):
    """Base of the store's errors; the HTTP layer answers 503 for all of them."""


class StoreUnavailable(StoreError):
    """The database did not take the write (read-only, disk full, I/O error, closed)."""


class StoreBusy(StoreError):
    """More writes are queued than the configured limit: shed load instead of queueing."""


def timestamp(when: datetime) -> str:
    """Fixed-width UTC ISO 8601, so text order is time order in SQL."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Job(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


_STOP = object()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class Store:
    """Owns the writer connection and thread. Use :meth:`write` from the event loop."""

    def __init__(self, path: Path, *, max_queue: int = 1000, max_batch: int = 512) -> None:
        self.path = path
        self.max_queue = max_queue
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job[Any] | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.commits = 0  # transactions committed: batches, not jobs

    # ---------------------------------------------------------------- lifecycle

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(f"{self.path}: cannot switch to WAL (got {mode})")
            # FULL: in WAL mode, NORMAL may lose the last commits on power loss, and a 2xx
            # promises the decision is on disk.
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(f"{self.path}: {exc}") from exc
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # ---------------------------------------------------------------- writing

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in the next transaction; return its result once that is committed."""
        if self._thread is None:
            raise StoreUnavailable("the store is closed")
        if self._queue.qsize() >= self.max_queue:
            raise StoreBusy(f"intake queue is full ({self.max_queue} writes waiting)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, loop, future))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Job[Any]] = [first]  # type: ignore[list-item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Job[Any]]) -> None:
        conn = self._conn
        assert conn is not None
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = job.fn(conn)
                except Exception as exc:  # the job's own failure: undo only its writes
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    if isinstance(exc, sqlite3.Error):
                        exc = StoreUnavailable(f"{self.path}: {exc}")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failure = StoreUnavailable(f"{self.path}: {exc}")
            outcomes = [(False, failure)] * len(batch)
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            job.loop.call_soon_threadsafe(_settle, job.future, ok, value)

    # ---------------------------------------------------------------- reading

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A separate read connection (WAL lets it read while the writer writes)."""
        conn = _connect(self.path)
        try:
            yield conn
        finally:
            conn.close()


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


# -------------------------------------------------------------------- decision SQL (jobs)


def guardrail_state(conn: sqlite3.Connection, lookup: Lookup) -> GuardrailState:
    row = conn.execute(
        "SELECT id FROM decisions WHERE rule = ? AND fingerprint = ? AND starts_at = ?"
        " AND status = ?",
        lookup.episode,
    ).fetchone()
    duplicate_of = int(row[0]) if row else None
    last = conn.execute(
        "SELECT max(at) FROM decisions WHERE rule = ? AND target = ? AND at > ?",
        (lookup.rule, lookup.target, lookup.cooldown_since.timestamp()),
    ).fetchone()[0]
    target_actions = 0
    if lookup.target_since is not None:
        target_actions = conn.execute(
            "SELECT count(*) FROM decisions WHERE target = ? AND at > ?",
            (lookup.target, lookup.target_since.timestamp()),
        ).fetchone()[0]
    global_actions = conn.execute(
        "SELECT count(*) FROM decisions WHERE at > ?", (lookup.global_since.timestamp(),)
    ).fetchone()[0]
    return GuardrailState(
        duplicate_of=duplicate_of,
        last_action_at=datetime.fromtimestamp(last, UTC) if last is not None else None,
        target_actions=int(target_actions),
        global_actions=int(global_actions),
    )


def insert_decision(
    conn: sqlite3.Connection, at: datetime, lookup: Lookup, plan: dict[str, Any]
) -> int:
    rule, fingerprint, starts_at, status = lookup.episode
    cursor = conn.execute(
        "INSERT INTO decisions (at, state, rule, target, fingerprint, starts_at, status, plan)"
        " VALUES (?, 'pending', ?, ?, ?, ?, ?, ?)",
        (
            at.timestamp(),
            rule,
            lookup.target,
            fingerprint,
            starts_at,
            status,
            json.dumps(plan, separators=(",", ":")),
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def set_decision_state(conn: sqlite3.Connection, decision_id: int, state: str) -> None:
    conn.execute("UPDATE decisions SET state = ? WHERE id = ?", (state, decision_id))


def open_decisions(conn: sqlite3.Connection) -> list[tuple[int, str, dict[str, Any]]]:
    """Decisions not done yet: (id, state, plan), oldest first."""
    rows = conn.execute(
        "SELECT id, state, plan FROM decisions WHERE state != 'done' ORDER BY id"
    ).fetchall()
    return [(int(i), str(s), json.loads(p)) for i, s, p in rows]


def probe(conn: sqlite3.Connection, now: datetime) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('probe', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (timestamp(now),),
    )
