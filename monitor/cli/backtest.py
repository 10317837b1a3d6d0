"""`monitor rules backtest`: what a rule change would have alerted, replayed on past articles."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from monitor import logs
from monitor.cli.common import err, load_rules_or_exit, load_settings, out, rules_app, usage_error


@rules_app.command("backtest")
def rules_backtest(
    rules: Annotated[
        Path,
        typer.Option("--rules", help="The rules to try (a rules directory).", show_default=False),
    ],
    input_: Annotated[
        str,
        typer.Option(
            "--input",
            help="Past articles: feed files or JSON exports (a file or a directory), "
            "state:PATH (the archive of `monitor run`) or kafka:TOPIC.",
            show_default=False,
        ),
    ],
    against: Annotated[
        Path | None,
        typer.Option(
            help="The rules to compare with. Default: the rules in force (MONITOR_RULES, "
            "else alert_rules)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only articles published from then: 2021-11-20, 2021-11-20T12:00Z, 7d."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only articles published before then (same forms).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of tables.")
    ] = False,
    limit: Annotated[int, typer.Option(min=0, help="Example stories per list (0: all).")] = 5,
) -> None:
    """Replay past articles through two rule sets and show what would change. Nothing is sent.

    Both rule sets see the same articles in publication order, each decided at its own
    publication time, with every route of each rule set active. Per rule: articles matched,
    alerted stories (by highest level); then stories gained (alerted only by --rules), lost
    (only by --against) and level changes, with examples. Exit 0; 2 on bad input or rules.

    --json keys (every old/new count is {"old": n, "new": n}; levels are low, medium, high,
    critical): input, since, until (ISO or null); old, new ({rules, version, routes});
    articles, exact_duplicates, undecodable, stories, mismatched_articles (articles the two
    replays put in different stories: 0 expected); scoring_changed, routes_changed; totals
    ({alerted_stories, levels: {LEVEL: old/new}, alerts: {opened, escalated, updated,
    resolved: old/new}, gained, lost, level_changes}); rules (list of {rule, status: added,
    removed, changed or unchanged, articles, alerted_stories, levels, gained, lost,
    level_changes}); gained, lost, level_changes (up to --limit stories each: {story_id, title,
    url, first_alert, old_level, new_level, old_rules, new_rules}); notes (list of strings).
    """
    import time
    from contextlib import nullcontext

    from rich.progress import Progress

    from monitor.backtest.compare import compare
    from monitor.backtest.replay import replay
    from monitor.backtest.report import Context, render, to_json
    from monitor.backtest.sources import InputError, Window, load_input, parse_when

    settings = load_settings()
    # The replays raise every alert they decide, and the pipeline logs each one: thousands of
    # lines about alerts that go nowhere. Only warnings and errors are worth showing here.
    if settings.log_level == "info":  # the default; asked for debug, you get it all
        logs.configure(settings.log_format, "warning")
    now = datetime.now(UTC)
    bounds: list[datetime | None] = []
    for flag, value in (("--since", since), ("--until", until)):
        try:
            bounds.append(parse_when(value, now) if value is not None else None)
        except ValueError as exc:
            usage_error(f"{flag}: {exc}")
    window = Window(*bounds)
    if window.since and window.until and window.since >= window.until:
        usage_error("--since must be before --until")
    old_dir = against if against is not None else settings.rules
    new_rules, old_rules = load_rules_or_exit(rules), load_rules_or_exit(old_dir)
    quiet = as_json or not err.is_terminal
    try:
        with nullcontext() if quiet else err.status(f"reading {input_}"):
            loaded = load_input(
                input_,
                window,
                kafka_bootstrap=settings.kafka_bootstrap,
                topic_prefix=settings.kafka_topic_prefix,
                now=now,
            )
    except InputError as exc:
        usage_error(str(exc))
    if not loaded.articles:
        loaded.notes.append("no articles to replay" + (" in that window" if since or until else ""))
    for note in loaded.notes:
        err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    started = time.perf_counter()
    with Progress(console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task(f"replaying {old_dir}", total=2 * len(loaded.articles))
        old = replay(old_rules, loaded.articles, lambda: bar.advance(task))
        bar.update(task, description=f"replaying {rules}")
        new = replay(new_rules, loaded.articles, lambda: bar.advance(task))
    seconds = time.perf_counter() - started
    comparison = compare(old_rules, new_rules, old, new)
    ctx = Context(
        input_, old_dir, rules, window.since, window.until, loaded.undecodable, loaded.notes
    )
    if as_json:
        typer.echo(json.dumps(to_json(comparison, ctx, limit), indent=2, ensure_ascii=False))
        return
    render(out, comparison, ctx, limit, seconds)
