"""Where silences and dead alerts live: on Kafka when MONITOR_KAFKA_BOOTSTRAP is set, else in
the state file of `monitor run`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from monitor.cli.common import err, load_settings
from monitor.errors import StateError
from monitor.settings import Settings

if TYPE_CHECKING:  # these load the Kafka and sink clients: imported by the commands needing them
    from monitor.runtime.topics import Topics
    from monitor.state.sqlite import Store


StateOption = Annotated[
    Path | None,
    typer.Option(
        help="SQLite state file of `monitor run`; given, it is used even when "
        "MONITOR_KAFKA_BOOTSTRAP is set."
    ),
]


@dataclass(frozen=True)
class Target:
    """Where silences and dead alerts live: Kafka topics, or the embedded state file."""

    settings: Settings
    bootstrap: str | None

    @property
    def names(self) -> Topics:
        from monitor.runtime.topics import Topics

        return Topics(self.settings.kafka_topic_prefix)

    def describe(self, topic: str = "") -> str:
        if self.bootstrap:
            return f"Kafka topic {topic} at {self.bootstrap}"
        return str(self.settings.state)


def resolve_target(state: Path | None, **options: Any) -> Target:
    settings = load_settings(state=state, **options)
    return Target(settings, None if state is not None else settings.kafka_bootstrap)


def open_state(path: Path, create: bool = False) -> Store | None:
    """The state file; None when it does not exist and ``create`` is off (nothing ran yet)."""
    from monitor.state.sqlite import Store

    if not create and not path.exists():
        return None
    try:
        return Store(path)
    except StateError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
