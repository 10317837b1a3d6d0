"""`monitor rules`: check, test and publish alert rules; the JSON Schemas of the YAML files."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.common import (
    err,
    load_rules_or_exit,
    load_settings,
    out,
    require_kafka,
    rules_app,
)
from monitor.durations import parse_duration
from monitor.errors import MonitorError, RuleLoadError
from monitor.rules.ruleset import load_ruleset
from monitor.rules.testing import run_rule_tests

RulesDir = Annotated[Path, typer.Argument(help="Rules directory.")]


RulesDirs = Annotated[
    list[Path] | None,
    typer.Argument(help="Rules directories (default: alert_rules).", show_default=False),
]


@rules_app.command("check")
def rules_check(paths: RulesDirs = None) -> None:
    """Validate rule, route and scoring files and lint them: every problem of every file in one
    run, as path:line:col: field: message. Exit 1 on an error; warnings alone exit 0."""
    from monitor.rules.ruleset import check_ruleset

    failed = False
    for path in paths or [Path("alert_rules")]:
        issues, ruleset = check_ruleset(path)
        for issue in sorted(issues, key=lambda i: (i.path, i.line, i.col)):
            out.print(str(issue), markup=False, highlight=False, soft_wrap=True)
        errors = sum(i.severity == "error" for i in issues)
        warnings = f", {len(issues) - errors} warning(s)" if len(issues) > errors else ""
        if ruleset is None:
            failed = True
            out.print(f"[red]{path}: {errors} error(s){warnings}[/red]", soft_wrap=True)
            continue
        out.print(
            f"{path}: {len(ruleset.rules)} rules, {len(ruleset.routes)} routes, "
            f"{len(ruleset.tests)} test cases — OK (version {ruleset.version}){warnings}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if failed:
        raise typer.Exit(1)


@rules_app.command("test")
def rules_test(paths: RulesDirs = None) -> None:
    """Run the test cases carried by the rule files: each example must fire exactly the rules
    in its `expect` (and reach its `level`, when it gives one). Exit 1 on a failure."""
    failed_any = False
    for path in paths or [Path("alert_rules")]:
        try:
            ruleset = load_ruleset(path)
        except RuleLoadError as exc:
            for issue in exc.issues:
                err.print(str(issue), markup=False, highlight=False, soft_wrap=True)
            err.print(f"[red]{len(exc.issues)} problem(s) in {path} (monitor rules check)[/red]")
            failed_any = True
            continue
        results = run_rule_tests(ruleset)
        table = Table(title=f"rule tests in {path}")
        for column in ("result", "where", "example", "expected", "level", "fired / reason"):
            table.add_column(column, overflow="fold")
        failed = [r for r in results if not r.ok]
        for r in failed + [r for r in results if r.ok]:
            title, body = r.test.case.as_title_body
            expected = ", ".join(r.test.case.expect) or "(none)"
            if r.test.case.level is not None:
                expected += f"; level {r.test.case.level}"
            table.add_row(
                "[green]pass[/green]" if r.ok else "[red]FAIL[/red]",
                Text(r.where),
                Text((title or body)[:70]),
                Text(expected),
                Text(f"{r.level.name} ({r.score:g})"),
                Text(", ".join(r.fired) or "(none)" if r.ok else r.reason),
            )
        out.print(table)
        for r in failed:  # one line each, whatever the terminal width: editors jump to them
            out.print(f"FAIL {r.where}: {r.reason}", markup=False, highlight=False, soft_wrap=True)
        summary = f"{path}: {len(results) - len(failed)} passed, {len(failed)} failed"
        out.print(summary, markup=False, highlight=False, soft_wrap=True)
        failed_any = failed_any or bool(failed)
    if failed_any:
        raise typer.Exit(1)


class SchemaKind(StrEnum):
    rules = "rules"
    routes = "routes"
    scoring = "scoring"
    feeds = "feeds"


@rules_app.command("schema")
def rules_schema(
    kind: Annotated[
        SchemaKind,
        typer.Option(help="rules: a rule file; routes.yaml; scoring.yaml; feeds: a feed list."),
    ] = SchemaKind.rules,
    write: Annotated[
        Path | None,
        typer.Option(
            help="Write every kind's schema into this directory (<kind>.schema.json) instead.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of a kind of YAML file, for editors (yaml-language-server) to
    check files as they are typed."""
    from monitor.rules.schema import schema_text, write_schemas

    if write is not None:
        for written in write_schemas(write):
            out.print(f"wrote {written}", markup=False, highlight=False, soft_wrap=True)
        return
    typer.echo(schema_text(kind.value), nl=False)


@rules_app.command("publish")
def rules_publish(
    path: RulesDir = Path("alert_rules"),
    delay: Annotated[
        str, typer.Option(help="How far ahead every worker switches, together (e.g. 10s).")
    ] = "10s",
) -> None:
    """Validate a rules directory and publish it to Kafka (news.rules): every worker switches
    to it at the same moment, without a restart. Invalid rules are refused; nothing changes."""
    import asyncio

    from monitor.runtime.published_rules import publish_rules
    from monitor.runtime.topics import Topics

    settings = load_settings()
    bootstrap = require_kafka(settings)
    try:
        wait = parse_duration(delay)
    except ValueError as exc:
        err.print(f"error: --delay: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    load_rules_or_exit(path, code=1)  # every problem printed, exit 1, nothing published
    names = Topics(settings.kafka_topic_prefix)
    try:
        published = asyncio.run(
            publish_rules(bootstrap, names, settings.kafka_replication, path, wait)
        )
    except MonitorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    out.print(
        f"published {path} as version {published.version} to {names.rules}; workers switch at "
        f"{published.effective_at:%Y-%m-%d %H:%M:%S} UTC",
        markup=False,
        highlight=False,
    )
