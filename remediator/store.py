"""The state file: one SQLite database (WAL) holding decisions, guardrail history and audit.

Owns: the schema, group commit, and the SQL for decisions and guardrail counts. Every write
is a job; the jobs queued while a commit is in flight run together in the next transaction, so
one fsync serves many concurrent requests. A job's caller is resumed only after the commit
that holds its writes succeeded: that is the durability promise behind a 2xx to Alertmanager.
Must not: decide anything (jobs are handed in by the engine) or log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from remediator.clock import utc_text
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


@dataclass
class _Job(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    committed: Callable[[T], None] | None = None


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class Store:
    """Owns the write connection. Use :meth:`write` from the event loop that opened it.

    Group commit: the jobs written while a commit is in flight wait in a list; when it ends,
    they all run (on the loop thread, each in its own savepoint, so one failing job does not
    undo the others) inside one transaction, and that transaction's COMMIT (the fsync) runs on
    a dedicated thread so the loop keeps serving requests meanwhile. The connection is used by
    one thread at a time: the loop while jobs run, the commit thread while it commits.
    """

    def __init__(self, path: Path, *, max_queue: int = 1000) -> None:
        self.path = path
        self.max_queue = max_queue
        self._conn: sqlite3.Connection | None = None
        self._committer: ThreadPoolExecutor | None = None
        self._waiting: list[_Job[Any]] = []
        self._flushing = False
        self._idle: asyncio.Event | None = None
        self.commits = 0  # transactions committed: batches, not jobs

    # ---------------------------------------------------------------- lifecycle

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the state file {self.path}: {exc}") from exc
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
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="store-commit")

    async def close(self) -> None:
        """Finish what is queued, then close."""
        if self._idle is not None:
            await self._idle.wait()
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def depth(self) -> int:
        return len(self._waiting)

    # ---------------------------------------------------------------- writing

    async def write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        committed: Callable[[T], None] | None = None,
    ) -> T:
        """Run ``fn`` in the next transaction; return its result once that is committed.

        ``committed``, if given, is called with the result as soon as the transaction has
        committed, before the caller resumes and even if the caller was cancelled meanwhile:
        what must follow a durable write whether or not anyone still waits for it (an audit
        line, a decision handed to the executor) goes there. If it raises, the caller gets
        that error, though the write is durable.
        """
        if self._conn is None:
            raise StoreUnavailable("the store is closed")
        if len(self._waiting) >= self.max_queue:
            raise StoreBusy(f"intake queue is full ({self.max_queue} writes waiting)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append(_Job(fn, future, committed))
        if not self._flushing:
            self._flushing = True
            if self._idle is None:
                self._idle = asyncio.Event()
            self._idle.clear()
            # call_soon, not now: the writes of this loop iteration join the same batch.
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        conn, committer = self._conn, self._committer
        if conn is None or committer is None:
            self._settle(batch, [(False, StoreUnavailable("the store is closed"))] * len(batch))
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._settle(batch, [(False, StoreUnavailable(f"{self.path}: {exc}"))] * len(batch))
            return
        outcomes = self._run_batch(conn, batch)
        commit = asyncio.get_running_loop().run_in_executor(committer, self._commit, conn)
        commit.add_done_callback(lambda done: self._committed(batch, outcomes, done))

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Job[Any]]
    ) -> list[tuple[bool, Any]]:
        """Run every job; normally as one plain transaction. Only if a job fails is the batch
        rolled back and run again with a savepoint per job, so the failure undoes only its own
        writes (savepoints cost two statements per job, so they are kept off the fast path)."""
        try:
            return [(True, job.fn(conn)) for job in batch]
        except Exception:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(False, StoreUnavailable(f"{self.path}: {exc}"))] * len(batch)
        return [self._run_job(conn, job) for job in batch]

    def _run_job(self, conn: sqlite3.Connection, job: _Job[Any]) -> tuple[bool, Any]:
        try:
            conn.execute("SAVEPOINT job")
        except sqlite3.Error as exc:
            return False, StoreUnavailable(f"{self.path}: {exc}")
        try:
            result = job.fn(conn)
        except Exception as exc:  # the job's own failure: undo only its writes
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            if isinstance(exc, sqlite3.Error):
                exc = StoreUnavailable(f"{self.path}: {exc}")
            return False, exc
        try:
            conn.execute("RELEASE job")
        except sqlite3.Error as exc:
            return False, StoreUnavailable(f"{self.path}: {exc}")
        return True, result

    def _commit(self, conn: sqlite3.Connection) -> None:
        """Runs on the commit thread."""
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def _committed(
        self,
        batch: list[_Job[Any]],
        outcomes: list[tuple[bool, Any]],
        done: asyncio.Future[None],
    ) -> None:
        error = done.exception() if not done.cancelled() else StoreUnavailable("commit cancelled")
        if error is not None:
            failure = StoreUnavailable(f"{self.path}: {error}")
            outcomes = [(False, failure)] * len(batch)
        else:
            self.commits += 1
        self._settle(batch, outcomes)

    def _settle(self, batch: list[_Job[Any]], outcomes: list[tuple[bool, Any]]) -> None:
        """Resume the callers. An outcome is ok only if its job ran and its transaction
        committed; then the job's ``committed`` hook runs first, waiter or not."""
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if ok and job.committed is not None:
                try:
                    job.committed(value)
                except Exception as exc:  # the caller's own failure: report it to the caller
                    ok, value = False, exc
            if job.future.done():  # cancelled while it waited
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._flushing = False
            if self._idle is not None:
                self._idle.set()

    # ---------------------------------------------------------------- reading

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A separate read connection (WAL lets it read while the writer writes)."""
        conn = _connect(self.path)
        try:
            yield conn
        finally:
            conn.close()


# -------------------------------------------------------------------- decision SQL (jobs)


_GUARDRAIL_STATE = """
SELECT
    (SELECT id FROM decisions
      WHERE rule = ?1 AND fingerprint = ?2 AND starts_at = ?3 AND status = ?4),
    (SELECT max(at) FROM decisions WHERE rule = ?1 AND target = ?5 AND at > ?6),
    CASE WHEN ?7 IS NULL THEN 0
         ELSE (SELECT count(*) FROM decisions WHERE target = ?5 AND at > ?7) END,
    (SELECT count(*) FROM decisions WHERE at > ?8)
"""


def guardrail_state(conn: sqlite3.Connection, lookup: Lookup) -> GuardrailState:
    """Everything the guardrails need about one decision, in one statement (each part is an
    index lookup)."""
    duplicate_of, last, target_actions, global_actions = conn.execute(
        _GUARDRAIL_STATE,
        (
            *lookup.episode,
            lookup.target,
            lookup.cooldown_since,
            lookup.target_since,
            lookup.global_since,
        ),
    ).fetchone()
    return GuardrailState(
        duplicate_of=duplicate_of,
        last_action_at=datetime.fromtimestamp(last, UTC) if last is not None else None,
        target_actions=target_actions,
        global_actions=global_actions,
    )


def insert_decision(conn: sqlite3.Connection, lookup: Lookup, plan: dict[str, Any]) -> int:
    """Record an allowed decision as pending, at ``lookup.at``."""
    rule, fingerprint, starts_at, status = lookup.episode
    cursor = conn.execute(
        "INSERT INTO decisions (at, state, rule, target, fingerprint, starts_at, status, plan)"
        " VALUES (?, 'pending', ?, ?, ?, ?, ?, ?)",
        (
            lookup.at,
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
        (utc_text(now),),
    )
