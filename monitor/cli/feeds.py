"""`monitor feeds`: check a feed list against the real servers, OPML in and out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.common import app, err, load_settings, out, usage_error
from monitor.errors import ConfigError, RuleLoadError
from monitor.feeds.sources import FeedSource, load_feeds, sample_feeds_path
from monitor.settings import Settings

feeds_app = typer.Typer(
    no_args_is_help=True, help="Check feed lists against their servers; OPML import and export."
)
app.add_typer(feeds_app, name="feeds")

FeedListArg = Annotated[
    Path, typer.Argument(help="Feed list (YAML) or OPML file.", show_default=False)
]
_CHECK_STYLE = {
    "ok": "green",
    "not_modified": "cyan",
    "error": "red",
    "timeout": "yellow",
}


def _feed_list_or_exit(path: Path) -> list[FeedSource]:
    """The enabled feeds of a YAML feed list or an OPML file; a bad file exits 2, naming it."""
    from monitor.feeds.opml import is_opml, read_opml

    try:
        if path.is_file() and is_opml(path):
            imported = read_opml(path)
            for skipped in imported.skipped:
                err.print(f"skipped: {skipped}", markup=False, highlight=False, soft_wrap=True)
            return imported.sources()
        return load_feeds(path)
    except RuleLoadError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False, soft_wrap=True)
        err.print(f"[red]{len(exc.issues)} problem(s) in {path}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    except ConfigError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@feeds_app.command("check")
def feeds_check(
    file: FeedListArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of a table.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds allowed for each feed's fetch.")
    ] = 30.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Feeds fetched at once.")] = 16,
) -> None:
    """Fetch every feed of a feed list or OPML file once and report what came back.

    Per feed: status (ok, not_modified, error, timeout), HTTP status, entries found, the feed's
    title, errors. Exit 1 if any feed failed, 2 if the file itself is bad.

    --json prints {file, seconds, summary: {feeds, ok, not_modified, error, timeout, failed},
    feeds: [{name, url, status, http_status (null for files), entries (articles the pipeline
    would get), entries_in_feed (all entries, empty or repeated ones too), title, final_url,
    content_type, format, encoding, seconds, errors, warnings}]}."""
    import asyncio
    import time

    from rich.progress import Progress

    from monitor.feeds.check import check_feeds, summary, to_json
    from monitor.feeds.fetch import FetchLimits

    sources = _feed_list_or_exit(file)
    limits = FetchLimits(
        total_timeout=timeout,
        connect_timeout=min(timeout, FetchLimits.connect_timeout),
        read_timeout=min(timeout, FetchLimits.read_timeout),
    )
    started = time.perf_counter()
    quiet = as_json or not err.is_terminal
    with Progress(console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task(f"checking {len(sources)} feeds", total=len(sources))
        settings = load_settings()
        results = asyncio.run(
            check_feeds(
                sources,
                limits,
                concurrency,
                lambda _: bar.advance(task),
                allowed=settings.allowed_networks(),
                contact_url=settings.fetch_contact_url,
            )
        )
    seconds = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps(to_json(str(file), results, seconds), indent=2, ensure_ascii=False))
    else:
        table = Table(title=f"feeds in {file}", title_justify="left")
        table.add_column("feed", overflow="fold")
        table.add_column("status", no_wrap=True)
        table.add_column("HTTP", justify="right")
        table.add_column("entries", justify="right")
        table.add_column("title / problem", overflow="fold")
        for r in results:
            # Titles and errors come from the servers: text, never markup.
            detail = Text("; ".join(r.errors), style="red") if r.failed else Text(r.title)
            for warning in r.warnings:
                detail.append(f"\n{warning}", style="dim")
            if r.websub_hubs and not r.failed:
                detail.append(f"\npush: WebSub hub {r.websub_hubs[0]}", style="dim")
            table.add_row(
                Text(r.name),
                Text(r.status, style=_CHECK_STYLE.get(r.status, "")),
                Text("" if r.http_status is None else str(r.http_status)),
                Text(str(r.entries) if not r.failed else ""),
                detail,
            )
        out.print(table)
        counts = summary(results)
        out.print(
            f"{counts['feeds']} feeds: {counts['ok']} ok, {counts['not_modified']} not modified, "
            f"{counts['error']} errors, {counts['timeout']} timeouts ({seconds:.1f}s)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if any(r.failed for r in results):
        raise typer.Exit(1)


@feeds_app.command("import")
def feeds_import(
    opml: Annotated[Path, typer.Argument(help="OPML file to import.", show_default=False)],
    into: Annotated[
        Path | None,
        typer.Option(
            help="Feed list (YAML) to add the feeds to; created if missing. Default: print it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Turn an OPML subscription list into a feed list (YAML).

    xmlUrl becomes the url, title (or text) the name, folders and categories the labels. Names
    are made unique; feeds already in --into (same url) are not added twice, and its comments
    are kept. Outlines that are not feeds are listed as skipped. The result is validated before
    anything is written. Exit 1 if the file has no new feeds, 2 if it is not OPML."""
    import os
    import tempfile

    import yaml

    from monitor.feeds.opml import OpmlError, append_entries, feeds_yaml, read_opml

    existing = ""
    names: list[str] = []
    urls: list[str] = []
    if into is not None and into.exists():
        try:
            existing = into.read_text(encoding="utf-8")
            data = yaml.safe_load(existing)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            usage_error(f"--into {into}: cannot read it as YAML: {exc}")
        listed = data.get("feeds") if isinstance(data, dict) else None
        for entry in listed if isinstance(listed, list) else []:
            if isinstance(entry, dict):
                names.append(str(entry.get("name", "")))
                urls.append(str(entry.get("url", "")))
    try:
        imported = read_opml(opml, names, urls)
        for skipped in imported.skipped:
            err.print(f"skipped: {skipped}", markup=False, highlight=False, soft_wrap=True)
        if not imported.feeds:
            err.print(
                f"error: no new feeds in {opml} (outlines with an xmlUrl)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1)
        header = (
            f"Imported from {opml.name} by `monitor feeds import` on {datetime.now(UTC):%Y-%m-%d}."
            "\nCheck the feeds answer with: monitor feeds check FILE"
        )
        if existing.strip():
            assert into is not None
            text = append_entries(existing, imported.feeds, str(into))
        else:
            text = feeds_yaml(imported.feeds, header)
    except OpmlError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    # Validated as the poller will read it, from where it will live (relative urls), before
    # anything is replaced: a failed import leaves --into as it was.
    folder = into.resolve().parent if into is not None else Path(tempfile.gettempdir())
    fd, temp = tempfile.mkstemp(prefix=".feeds-import-", suffix=".yaml", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            load_feeds(temp)
        except RuleLoadError as exc:
            for issue in exc.issues:
                err.print(str(issue), markup=False, highlight=False, soft_wrap=True)
            err.print("error: the imported feed list would be invalid; nothing written")
            raise typer.Exit(2) from None
        if into is not None:
            os.replace(temp, into)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    if into is None:
        typer.echo(text, nl=False)
    err.print(
        f"imported {len(imported.feeds)} feeds from {opml}"
        + (f" into {into}" if into is not None else "")
        + f"; {len(imported.skipped)} outline(s) skipped",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@feeds_app.command("export")
def feeds_export(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Feed list (YAML). Default: MONITOR_FEEDS, else the bundled samples.",
            show_default=False,
        ),
    ] = None,
    opml: Annotated[
        bool, typer.Option("--opml/--yaml", help="OPML 2.0, or the feed list as YAML.")
    ] = True,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here instead of printing.", show_default=False),
    ] = None,
) -> None:
    """Write a feed list as OPML 2.0, for feed readers and other tools.

    A folder per first label, other labels as categories; name, reliability, interval and
    enabled as monitor* attributes, which `monitor feeds import` reads back. Disabled feeds are
    included. Relative paths become file:// URLs."""
    from monitor.feeds.opml import feed_entry, feeds_yaml, to_opml
    from monitor.feeds.sources import FeedList
    from monitor.yamlfile import load_model

    path = file or Settings().feeds or sample_feeds_path()
    _feed_list_or_exit(path)  # every problem reported, exit 2
    model, _, _ = load_model(path, FeedList)
    assert model is not None
    feeds = [
        f
        if "://" in f.url
        else f.model_copy(update={"url": (path.parent / f.url).resolve().as_uri()})
        for f in model.feeds
    ]
    if opml:
        text = to_opml(feeds, title=f"news-monitor feeds ({path.name})")
    else:
        text = feeds_yaml([feed_entry(f) for f in feeds], f"Exported from {path} by monitor.")
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        usage_error(f"--output {output}: {exc.strerror or exc}")
    err.print(
        f"wrote {len(feeds)} feeds to {output}", markup=False, highlight=False, soft_wrap=True
    )
