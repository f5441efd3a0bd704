"""The pipeline behind the webhook: decide, guard, record durably, then act and audit.

Owns: the order of the steps and what is written when. ``intake`` runs matching (pure),
then, inside one store transaction, the guardrails and the records: an allowed decision is
stored as *pending* and a denied or unmatched one as a *skipped* audit record. Only after that
transaction commits does ``intake`` return, so the HTTP layer answers 2xx only for durable
decisions. The :class:`Executor` carries out pending decisions afterwards and on restart.
Must not: know about HTTP or import ``kubernetes``.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from remediator import store as db
from remediator.actions import REGISTRY, StepContext
from remediator.actions.base import Gateway
from remediator.audit import AuditLog, Outcome, StepRecord, StoredRecord
from remediator.clock import Clock, utc_text
from remediator.errors import GatewayError
from remediator.guardrails import GuardrailPolicy, evaluate, lookup
from remediator.matching import Decision, decide
from remediator.metrics import Metrics
from remediator.payload import Notification
from remediator.rules import RuleSet
from remediator.targets import Target

log = structlog.get_logger("remediator.engine")


def audit_head(decision: Decision, dry_run: bool, decided_at: str) -> dict[str, Any]:
    """What every audit record of ``decision`` says about it, JSON-ready. ``decided_at`` is
    ``decision.decided_at`` as :func:`~remediator.clock.utc_text` writes it (the caller formats
    it once for all the decisions of a notification)."""
    alert = decision.alert
    target = decision.target
    return {
        **decision.rule.audit_fields,  # rule, rule_hash, rule_source, action, params
        "target": str(target) if target is not None else None,
        "dry_run": dry_run,
        "alertname": alert.alertname,
        "alert_status": alert.status,
        "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at_key,
        "group_key": decision.group_key,
        "receiver": decision.receiver,
        "value": decision.value,
        "decided_at": decided_at,
    }


def plan_of(head: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """Everything needed to carry out and audit a decision, as JSON: stored with a pending
    decision so execution after a restart needs neither the payload nor the rule set."""
    return {"head": head, "steps": [step.as_dict() for step in decision.steps]}


# The decision fields of a plan stored before plans had a "head" (remediator 0.1.0 as first
# landed): recover() converts such plans, so decisions pending across an upgrade still run.
_FLAT_PLAN_HEAD = (
    "rule", "rule_hash", "rule_source", "action", "target", "dry_run", "alertname",
    "alert_status", "fingerprint", "starts_at", "group_key", "receiver", "value", "decided_at",
)  # fmt: skip


def stored_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan as read back from the state file, in the current form."""
    if "head" in plan:
        return plan
    head = {key: plan[key] for key in _FLAT_PLAN_HEAD if plan.get(key) is not None}
    head["params"] = [step["params"] for step in plan["steps"]]
    return {"head": head, "steps": plan["steps"]}


def audit_record(
    head: Mapping[str, Any], *, at: str, outcome: Outcome, **fields: Any
) -> dict[str, Any]:
    """The fields of one audit record (see :meth:`AuditLog.stage`): when, what came of it,
    the decision's ``head`` and the outcome's own fields (reason, steps, error, ...; no head
    field is one of them)."""
    return {"at": at, "outcome": outcome, **head, **fields}


@dataclass(frozen=True)
class Recorded:
    """What intake wrote for one decision: a pending decision (with its plan), or a skipped
    audit record."""

    plan: dict[str, Any] | None = None
    decision_id: int | None = None
    skipped: StoredRecord | None = None


@dataclass(frozen=True)
class IntakeResult:
    alerts: int
    decisions: int
    accepted: int  # decisions recorded as pending: they will be carried out
    skipped: int


class Executor:
    """Carries out pending decisions, at most ``concurrency`` at a time."""

    def __init__(
        self,
        *,
        store: db.Store,
        audit: AuditLog,
        gateway: Gateway | None,
        clock: Clock,
        metrics: Metrics,
        concurrency: int,
    ) -> None:
        self._store = store
        self._audit = audit
        self._gateway = gateway
        self._clock = clock
        self._metrics = metrics
        self._concurrency = concurrency
        self._queue: asyncio.Queue[tuple[int, dict[str, Any]] | None] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0
        metrics.queue_depth("actions").set_function(self._queue.qsize)  # read when scraped

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"executor-{i}")
            for i in range(self._concurrency)
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Finish what is running (up to ``grace`` seconds); what is left stays pending in the
        store and is carried out after the next start."""
        while not self._queue.empty():  # not started yet: still pending in the store
            self._queue.get_nowait()
        for _ in self._workers:
            self._queue.put_nowait(None)
        if self._workers:
            _, late = await asyncio.wait(self._workers, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._workers = []

    def submit(self, decision_id: int, plan: dict[str, Any]) -> None:
        if not self._workers:
            return  # not running: the decision stays pending in the store for the next start
        self._idle.clear()
        self._queue.put_nowait((decision_id, plan))

    async def drained(self) -> None:
        """Wait until every submitted decision has been carried out (tests, shutdown)."""
        await self._idle.wait()

    async def recover(self) -> int:
        """Resume after a restart: pending decisions run; a decision that was running when the
        process died is audited as failed and not run again (its effect is unknown, and running
        it twice could double a relative scale)."""
        open_ = await self._store.write(db.open_decisions)
        for decision_id, state, stored in open_:
            plan = stored_plan(stored)
            if state == "pending":
                self.submit(decision_id, plan)
                continue
            record = audit_record(
                plan["head"],
                at=utc_text(self._clock.now()),
                outcome="failed",
                decision_id=decision_id,
                error="interrupted: the service stopped while this decision was being carried "
                "out; its effect is unknown, so it is not retried",
            )
            await self._finish(decision_id, record)
        if open_:
            log.info("recovered decisions", count=len(open_))
        return len(open_)

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            self._busy += 1
            self._metrics.inflight.inc()
            try:
                await self._execute(*item)
            except Exception as exc:  # never let one decision kill the worker
                log.exception("decision failed unexpectedly", decision_id=item[0])
                await self._fail_unexpectedly(*item, exc)
            finally:
                self._busy -= 1
                self._metrics.inflight.dec()
                if self._busy == 0 and self._queue.empty():
                    self._idle.set()

    async def _fail_unexpectedly(
        self, decision_id: int, plan: dict[str, Any], exc: Exception
    ) -> None:
        """Close a decision that raised where no step error was expected (a plan this version
        cannot carry out, a bug): audited as failed, not left running, not retried."""
        record = audit_record(
            plan["head"],
            at=utc_text(self._clock.now()),
            outcome="failed",
            decision_id=decision_id,
            error=f"unexpected error, effect unknown, not retried: {type(exc).__name__}: {exc}",
        )
        try:
            await self._finish(decision_id, record)
        except Exception:  # the store is down too: the next start audits it as interrupted
            log.exception("could not audit the failed decision", decision_id=decision_id)

    async def _execute(self, decision_id: int, plan: dict[str, Any]) -> None:
        await self._store.write(lambda c: db.set_decision_state(c, decision_id, "running"))
        started = time.monotonic()
        head = plan["head"]
        ctx = StepContext(gateway=self._gateway, dry_run=head["dry_run"], now=self._clock.now())
        steps: list[StepRecord] = []
        error: str | None = None
        for index, step in enumerate(plan["steps"], start=1):
            action = REGISTRY[step["action"]]
            target = Target(**step["target"])
            base = {"action": step["action"], "target": str(target), "params": step["params"]}
            try:
                result = await action.run(
                    action.params_model.model_validate(step["params"]), target, ctx
                )
            except GatewayError as exc:
                steps.append(StepRecord(**base, error=str(exc)))
                error = f"step {index} ({step['action']}) failed: {exc}"
                break
            steps.append(
                StepRecord(
                    **base,
                    before=result.before,
                    after=result.after,
                    request=result.request,
                    note=result.note,
                )
            )
        duration = time.monotonic() - started
        outcome: Outcome = "failed" if error else ("dry_run" if head["dry_run"] else "executed")
        self._metrics.action_duration(head["action"]).observe(duration)
        record = audit_record(
            head,
            at=utc_text(self._clock.now()),
            outcome=outcome,
            decision_id=decision_id,
            steps=steps,
            before=steps[0].before if steps else {},
            after=steps[0].after if steps else {},
            error=error,
            duration_ms=round(duration * 1000, 3),
        )
        await self._finish(decision_id, record)

    async def _finish(self, decision_id: int, record: dict[str, Any]) -> None:
        def job(conn: sqlite3.Connection) -> StoredRecord:
            db.set_decision_state(conn, decision_id, "done")
            return self._audit.stage(conn, record)

        def committed(stored: StoredRecord) -> None:  # even if stop() cancelled this task
            self._audit.publish(stored)
            self._metrics.decisions(record["rule"], record["action"], record["outcome"]).inc()

        await self._store.write(job, committed)


class Engine:
    """Intake: notification in, durable decisions out."""

    def __init__(
        self,
        *,
        rules: RuleSet,
        store: db.Store,
        audit: AuditLog,
        executor: Executor,
        policy: GuardrailPolicy,
        clock: Clock,
        metrics: Metrics,
        dry_run: bool,
    ) -> None:
        self.rules = rules
        self._store = store
        self._audit = audit
        self.executor = executor
        self._policy = policy
        self._clock = clock
        self._metrics = metrics
        self.dry_run = dry_run
        metrics.queue_depth("store").set_function(lambda: store.depth)

    async def intake(self, notification: Notification) -> IntakeResult:
        for alert in notification.alerts:
            self._metrics.alerts_received(alert.status).inc()
        now = self._clock.now()
        decisions = decide(notification, self.rules, now)
        if not decisions:
            return IntakeResult(len(notification.alerts), 0, 0, 0)
        recorded = await self._store.write(
            functools.partial(self._record, decisions, now), self._committed
        )
        accepted = sum(1 for item in recorded if item.decision_id is not None)
        return IntakeResult(
            len(notification.alerts), len(decisions), accepted, len(decisions) - accepted
        )

    def _committed(self, recorded: list[Recorded]) -> None:
        """Once the records are durable, whether or not the request still waits for them:
        publish the skipped ones and hand the pending ones to the executor."""
        for item in recorded:
            if item.skipped is not None:
                self._audit.publish(item.skipped)
                record = item.skipped.fields
                self._metrics.decisions(record["rule"], record["action"], "skipped").inc()
                if record.get("guardrail"):
                    self._metrics.denials(record["guardrail"]).inc()
            elif item.decision_id is not None and item.plan is not None:
                self.executor.submit(item.decision_id, item.plan)

    def _record(
        self, decisions: list[Decision], now: datetime, conn: sqlite3.Connection
    ) -> list[Recorded]:
        """A store job: guardrails read their state and the outcome is written in the same
        transaction, so concurrent notifications cannot both pass one limit."""
        out: list[Recorded] = []
        decided_at = utc_text(now)
        for decision in decisions:
            head = audit_head(decision, self.dry_run or decision.rule.rule.dry_run, decided_at)
            reason, guardrail = decision.skip_reason, None
            if reason is None:
                query = lookup(decision, now)
                verdict = evaluate(decision, db.guardrail_state(conn, query), self._policy, now)
                if verdict.allowed:
                    plan = plan_of(head, decision)
                    out.append(Recorded(plan, decision_id=db.insert_decision(conn, query, plan)))
                    continue
                reason, guardrail = verdict.reason, verdict.guardrail
            record = audit_record(
                head, at=decided_at, outcome="skipped", reason=reason, guardrail=guardrail
            )
            out.append(Recorded(skipped=self._audit.stage(conn, record)))
        return out
