"""The ``monitor`` command line."""

from __future__ import annotations

# Imported for the commands they register, in this order: the order `monitor --help` and
# `monitor rules --help` list them in (the command groups, and rules before backtest).
# isort: off
from monitor.cli import runtimes, rules, backtest, silences, alerts, articles, state, feeds  # noqa: F401
from monitor.cli import feed_status  # noqa: F401  (after feeds: a command of its group)
from monitor.cli import evaluate  # noqa: F401  (after backtest: a command of `rules`)

# isort: on
from monitor.cli.backtest import rules_backtest
from monitor.cli.common import app

__all__ = ["app", "main", "rules_backtest"]

app.info.help = __doc__  # the app's --help text


def main() -> None:
    app()
