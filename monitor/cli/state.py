"""`monitor state`: check the state of `monitor run` or `monitor worker`; start again from
damage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.common import app, err, load_settings, out, usage_error
from monitor.errors import StateError
from monitor.state.recovery import damaged_state

state_app = typer.Typer(
    no_args_is_help=True,
    help="Check the state file of `monitor run` or a worker's tables; rebuild a damaged one.",
)
app.add_typer(state_app, name="state")

StatePathOption = Annotated[
    Path | None,
    typer.Option("--state", help="SQLite state file of `monitor run` (default: MONITOR_STATE)."),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory of `monitor worker` (its RocksDB tables)."),
]


@state_app.command("check")
def state_check(state: StatePathOption = None, data_dir: DataDirOption = None) -> None:
    """Check the state file of `monitor run`, or a worker's tables.

    The state file: SQLite's integrity check. --data-dir: each table opened and read through
    (safe while the worker runs). Exit 0 if sound, 1 if damaged (with the way out), 2 if
    there is nothing to check."""
    from monitor.state.recovery import check_state, check_tables, damaged_tables, table_dirs

    if data_dir is not None:
        tables = table_dirs(data_dir)
        if not tables:
            usage_error(f"{data_dir}: no worker tables there")
        damaged = check_tables(data_dir, read_all=True)
        if damaged:
            err.print(f"error: {damaged_tables(data_dir, damaged)}", markup=False, soft_wrap=True)
            raise typer.Exit(1)
        out.print(f"{data_dir}: {len(tables)} tables, all readable", markup=False)
    if data_dir is None or state is not None:
        path = load_settings(state=state).state
        try:
            problems = check_state(path)
        except StateError as exc:
            usage_error(str(exc))
        if problems:
            for problem in problems[:20]:
                out.print(problem, markup=False, highlight=False, soft_wrap=True)
            err.print(f"error: {damaged_state(path, problems[0])}", markup=False, soft_wrap=True)
            raise typer.Exit(1)
        out.print(f"{path}: integrity check ok", markup=False, highlight=False)


@state_app.command("rebuild")
def state_rebuild(state: StatePathOption = None, data_dir: DataDirOption = None) -> None:
    """Start again from a damaged state file or damaged worker tables.

    With --data-dir (a worker, stopped): move the directory aside; the next start rebuilds every
    table from its changelog topic in Kafka. Nothing is lost or sent again.

    The state file of `monitor run` (stopped): move it aside and write a fresh one with every
    table that can still be read whole; for each table that cannot, it says what is lost."""
    from monitor.state.recovery import LOSSES, rebuild_state, rebuild_tables

    try:
        if data_dir is not None:
            moved = rebuild_tables(data_dir)
            out.print(
                f"moved {data_dir} aside to {moved}; the next `monitor worker --data-dir "
                f"{data_dir}` rebuilds its tables from their changelog topics in Kafka (nothing "
                f"is lost or sent again). Delete {moved} once the worker runs.",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        if data_dir is None or state is not None:
            path = load_settings(state=state).state
            salvage = rebuild_state(path)
    except StateError as exc:
        usage_error(str(exc))
    if data_dir is not None and state is None:
        return
    out.print(f"moved {path} aside to {salvage.moved_to}", markup=False, highlight=False)
    kept = ", ".join(f"{t} ({n} rows)" for t, n in sorted(salvage.kept.items()))
    out.print(f"kept in a fresh {path}: {kept or 'nothing'}", markup=False, soft_wrap=True)
    for table, error in sorted(salvage.lost.items()):
        cost = LOSSES.get(table, "")
        out.print(
            f"LOST {table} ({error})" + (f": {cost}" if cost else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if "(every table)" in salvage.lost:
        out.print(
            "nothing could be read: the next run starts afresh, as on a first start",
            markup=False,
        )
