"""JSON Schemas of the YAML files analysts edit, from the same pydantic models the loader uses.

Editors read them (the first line of each file names its schema for yaml-language-server), so a
typo is underlined as it is typed; ``monitor rules check`` remains the authority (it also knows
what a schema cannot say: duplicate ids, unknown sinks, phrases that normalise to nothing).
The files under ``schemas/`` are generated: ``monitor rules schema --write schemas``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from monitor.feeds.sources import FeedList
from monitor.rules.models import RoutesFile, RuleFile, Scoring

DIALECT = "https://json-schema.org/draft/2020-12/schema"

# kind -> (model, what the file is)
KINDS: dict[str, tuple[type[BaseModel], str]] = {
    "rules": (RuleFile, "A rule file of a rules directory (rules and their test cases)."),
    "routes": (RoutesFile, "routes.yaml of a rules directory: where alerts go, and how often."),
    "scoring": (Scoring, "scoring.yaml of a rules directory: how a story's score is formed."),
    "feeds": (FeedList, "A feed list: the outlets to poll, how often, how far to trust them."),
}


def schema_file_name(kind: str) -> str:
    return f"{kind}.schema.json"


def _duration_text(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds != value.total_seconds():
        return f"{value.total_seconds():g}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class _AsWritten(GenerateJsonSchema):
    """Defaults as an author would write them: ``medium``, not 2; ``0s``, not ``PT0S``."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, Enum):
            return dft.name
        if isinstance(dft, timedelta):
            return _duration_text(dft)
        return super().encode_default(dft)


def json_schema(kind: str) -> dict[str, Any]:
    model, description = KINDS[kind]
    body = model.model_json_schema(schema_generator=_AsWritten, mode="validation")
    body["description"] = description
    return {"$schema": DIALECT, **body}


def schema_text(kind: str) -> str:
    """The schema as committed under ``schemas/`` (stable key order, ending in a newline)."""
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = directory / schema_file_name(kind)
        path.write_text(schema_text(kind), encoding="utf-8")
        written.append(path)
    return written
