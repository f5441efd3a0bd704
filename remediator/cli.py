"""The ``remediator`` command: serve, check rules, read the audit trail, list actions."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from remediator import __version__
from remediator.actions import REGISTRY
from remediator.audit import OUTCOMES, AuditQuery, AuditRecord, AuditRecordError, query
from remediator.errors import NoCluster
from remediator.rules import RuleSetError, load_rules, parse_duration
from remediator.settings import SETTINGS, ConfigError, settings_from
from remediator.store import Store, StoreError

DESCRIPTION = """\
remediator turns Prometheus Alertmanager alerts into safe, audited Kubernetes remediation.
Alertmanager posts to POST /api/v1/alerts; each alert is matched against the YAML rules in
--rules-dir; matched actions run behind guardrails (dedup, cooldowns, rate limits, namespace
allowlist, dry-run), and every decision is written to the audit trail.
"""

SERVE_EPILOG = """\
Every option can also be set by the environment variable shown in brackets; a flag wins over
its variable. Without webhook credentials the service refuses to start unless
--insecure-no-auth is given. With no cluster configured, everything runs dry-run.

example:
  REMEDIATOR_BEARER_TOKEN_FILE=/etc/remediator/token \\
    remediator serve --listen 0.0.0.0:9095 --allow-namespaces 'shop,payments'
"""


def _serve_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the webhook service",
        description="Run the webhook service.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for setting in SETTINGS:
        help_text = f"{setting.help} [{setting.env}]"
        if setting.kind == "bool":
            parser.add_argument(
                setting.flag, dest=setting.name, action="store_true", default=None, help=help_text
            )
            continue
        converter: Any = {"int": int, "path": Path}.get(setting.kind, str)
        metavar = {"int": "N", "path": "PATH", "list": "LIST"}.get(setting.kind, "VALUE")
        parser.add_argument(
            setting.flag,
            dest=setting.name,
            type=converter,
            default=None,
            metavar=metavar,
            help=help_text,
        )


def _check_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "check",
        help="validate a rules directory (every error at once; exit 1 if any)",
        description="Validate every rule file in RULES_DIR with the same code the service "
        'uses. Prints every error as FILE:LINE:COL: rule "NAME": KEY: MESSAGE and exits 1 if '
        "there is any; otherwise lists the rules and exits 0.",
    )
    parser.add_argument(
        "rules_dir",
        type=Path,
        metavar="RULES_DIR",
        nargs="?",
        default=Path(os.environ.get("REMEDIATOR_RULES_DIR", "rules")),
    )


def _audit_parser(sub: Any) -> None:
    audit = sub.add_parser(
        "audit", help="read the audit trail", description="Read the audit trail in the state file."
    )
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    listing = audit_sub.add_parser(
        "list",
        help="list audit records, newest first",
        description="List audit records, newest first, filtered.",
        epilog="examples:\n  remediator audit list --since 1h --outcome failed\n"
        "  remediator audit list --rule checkout-high-cpu --json | jq .",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listing.add_argument(
        "--state-file",
        type=Path,
        default=Path(os.environ.get("REMEDIATOR_STATE_FILE", "remediator.db")),
        help="SQLite state file [REMEDIATOR_STATE_FILE] (default ./remediator.db)",
    )
    listing.add_argument(
        "--since",
        metavar="WHEN",
        help="records at or after WHEN: a duration back from now (30m, 2h, 7d) or an ISO 8601 time",
    )
    listing.add_argument("--until", metavar="WHEN", help="records before WHEN (same forms)")
    listing.add_argument("--rule", help="only this rule")
    listing.add_argument(
        "--target",
        metavar="KIND/NAMESPACE/NAME",
        help="only this target, e.g. Deployment/shop/checkout",
    )
    listing.add_argument("--outcome", choices=OUTCOMES, help="only this outcome")
    listing.add_argument(
        "--limit", type=int, default=100, metavar="N", help="at most N records (default 100)"
    )
    listing.add_argument(
        "--json", action="store_true", help="one JSON object per line, every field of each record"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remediator",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"remediator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    _check_parser(sub)
    _audit_parser(sub)
    sub.add_parser(
        "actions",
        help="list the action types with parameters, RBAC and an example",
        description="List every action type a rule can use.",
    )
    return parser


def parse_when(text: str, now: datetime) -> datetime:
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{text!r} is neither a duration (30m, 2h) nor an ISO 8601 time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_check(rules_dir: Path, out: TextIO) -> int:
    try:
        ruleset = load_rules(rules_dir)
    except RuleSetError as exc:
        print(str(exc), file=out)
        return 1
    for loaded in sorted(ruleset.all(), key=lambda r: r.source):
        rule = loaded.rule
        steps = " then ".join(step.type for step in rule.all_steps)
        mode = " (dry-run)" if rule.dry_run else ""
        print(f"{loaded.source}: {rule.name}: {rule.match.alertname} -> {steps}{mode}", file=out)
    files = len(ruleset.files)
    print(f"OK: {ruleset.count} rules in {files} file{'s' if files != 1 else ''}", file=out)
    return 0


def _row(record: AuditRecord) -> str:
    detail = record.reason or record.error or ""
    if record.outcome in ("executed", "dry_run"):
        notes = "; ".join(step.note for step in record.steps if step.note)
        change = f"{record.before} -> {record.after}" if record.before != record.after else ""
        detail = " ".join(part for part in (change, notes) if part)
    at = record.at.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{record.id:>6}  {at}  {record.outcome:<8}  {record.rule:<28}  "
        f"{record.action:<16}  {record.target or '-':<36}  {detail}"
    )


def cmd_audit_list(args: argparse.Namespace, out: TextIO) -> int:
    if not args.state_file.is_file():
        print(f"remediator: no state file at {args.state_file}", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    q = AuditQuery(
        since=parse_when(args.since, now) if args.since else None,
        until=parse_when(args.until, now) if args.until else None,
        rule=args.rule,
        target=args.target,
        outcome=args.outcome,
        limit=args.limit,
    )
    with Store(args.state_file).reader() as conn:
        records = query(conn, q)
    if args.json:
        for record in records:
            print(record.model_dump_json(), file=out)
        return 0
    print(
        f"{'ID':>6}  {'TIME (UTC)':<19}  {'OUTCOME':<8}  {'RULE':<28}  {'ACTION':<16}  "
        f"{'TARGET':<36}  DETAIL",
        file=out,
    )
    for record in records:
        print(_row(record), file=out)
    return 0


def cmd_actions(out: TextIO) -> int:
    for name, action in sorted(REGISTRY.items()):
        print(
            f"{name}\n  {textwrap.fill(action.description, 94, subsequent_indent='  ')}", file=out
        )
        print(f"  targets: {', '.join(sorted(action.target_kinds))}", file=out)
        schema = action.params_model.model_json_schema()
        params = ", ".join(schema.get("properties", {})) or "(none)"
        print(f"  params: {params}", file=out)
        print(f"  rbac: {json.dumps([r.as_dict() for r in action.rbac])}", file=out)
        print("  example:\n" + textwrap.indent(action.example, "    "), file=out)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from remediator.app import create_app
    from remediator.logs import configure

    values = {s.name: getattr(args, s.name) for s in SETTINGS}
    settings = settings_from(values, dict(os.environ))
    configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    # Everything built so far lives as long as the process: move it out of the collector's
    # reach, so collections during request handling scan only request garbage (this cut the
    # p99 intake latency by more than half in bench/intake.py).
    gc.collect()
    gc.freeze()
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        handle_signals=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "check":
            return cmd_check(args.rules_dir, sys.stdout)
        if args.command == "audit":
            return cmd_audit_list(args, sys.stdout)
        return cmd_actions(sys.stdout)
    except RuleSetError as exc:
        print(f"remediator: refusing to start: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, NoCluster, StoreError, AuditRecordError) as exc:
        print(f"remediator: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `remediator audit list | head`: the reader left, not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
