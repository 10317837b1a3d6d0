"""JSON Schemas for editors: generated from the models, committed under schemas/, named by the
first line of every YAML file analysts edit, and in agreement with the loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from typer.testing import CliRunner

from monitor.cli import app
from monitor.feeds.sources import sample_feeds_path
from monitor.rules.models import Route, RoutesFile
from monitor.rules.schema import KINDS, schema_file_name, schema_text
from monitor.yamlfile import _Loader
from tests.conftest import REPO, RULES

SCHEMAS = REPO / "schemas"
MARK = "# yaml-language-server: $schema="


def kind_of(path: Path) -> str:
    if path == sample_feeds_path():
        return "feeds"
    return {"routes.yaml": "routes", "scoring.yaml": "scoring"}.get(path.name, "rules")


EDITED = sorted([*RULES.glob("*.yaml"), *RULES.glob("*.yml"), sample_feeds_path()])


def validator(kind: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / schema_file_name(kind)).read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def load(text: str) -> Any:
    # The loader's YAML (1.2 numbers: 22:00 stays a string), as yaml-language-server reads it.
    return yaml.load(text, Loader=_Loader)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_committed_schemas_are_up_to_date(kind: str) -> None:
    committed = SCHEMAS / schema_file_name(kind)
    assert committed.is_file(), f"{committed} missing: run `monitor rules schema --write schemas`"
    assert committed.read_text(encoding="utf-8") == schema_text(kind), (
        f"{committed} is out of date with the models: run `monitor rules schema --write schemas`"
    )
    Draft202012Validator.check_schema(json.loads(schema_text(kind)))


def test_the_command_prints_and_writes_the_same_schemas(tmp_path: Path) -> None:
    printed = CliRunner().invoke(app, ["rules", "schema", "--kind", "routes"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == schema_text("routes")
    assert CliRunner().invoke(app, ["rules", "schema"]).stdout == schema_text("rules")
    written = CliRunner().invoke(app, ["rules", "schema", "--write", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(schema_file_name(k) for k in KINDS)
    for kind in KINDS:
        assert (tmp_path / schema_file_name(kind)).read_text() == schema_text(kind)


@pytest.mark.parametrize("path", EDITED, ids=lambda p: p.name)
def test_every_edited_yaml_file_names_its_schema_on_its_first_line(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(MARK), f"{path}: first line must be {MARK}..."
    target = (path.parent / first.removeprefix(MARK)).resolve()
    assert target == (SCHEMAS / schema_file_name(kind_of(path))).resolve()
    assert target.is_file()


@pytest.mark.parametrize("path", EDITED, ids=lambda p: p.name)
def test_every_edited_yaml_file_validates_against_its_schema(path: Path) -> None:
    data = load(path.read_text(encoding="utf-8"))
    problems = [e.message for e in validator(kind_of(path)).iter_errors(data)]
    assert not problems, f"{path}: {problems}"


@pytest.mark.parametrize(
    ("kind", "text", "complaint"),
    [
        ("rules", "rules:\n  - id: x\n    match: {any: [x]}\n    weight: 4\n    colour: red\n",
         "colour"),
        ("rules", "rules: []\ntests:\n  - text: x\n    expect: []\n    level: severe\n", "severe"),
        ("rules", "rulez: []\n", "rulez"),
        ("routes", "routes:\n  - name: desk\n    sink: console\n    min_levle: high\n",
         "min_levle"),
        ("routes", "routes:\n  - {name: desk, sink: console, min_level: none}\n", "none"),
        ("routes", "routes:\n  - {name: desk, sink: console, group_window: soon}\n", "soon"),
        ("routes", "routes:\n  - name: desk\n    sink: console\n"
         "    quiet_hours: {start: '7:00', end: '22:00'}\n", "7:00"),
        ("scoring", "levels: {low: 20, medium: 40, high: 60, critical: 85, severe: 99}\n",
         "severe"),
        ("feeds", "feeds:\n  - {name: wire, url: x.xml, interval: soon}\n", "soon"),
    ],
)  # fmt: skip
def test_a_mistake_does_not_validate(kind: str, text: str, complaint: str) -> None:
    problems = [e.message for e in validator(kind).iter_errors(load(text))]
    assert problems and any(complaint in p for p in problems), problems


ROUTES = """\
routes:
  - name: desk
    sink: slack
    min_level: high
    group_window: 30s
    repeat_interval: 1h30m
    resolve_after: 2d
    rate_limit: {count: 12, per: 1h}
    quiet_hours: {start: 22:00, end: "07:00", timezone: Europe/London}
  - name: archive
    sink: jsonl
    min_level: low
    group_window: 0
    resolve_after: 90
"""


def test_durations_and_clock_times_validate_as_the_loader_reads_them() -> None:
    data = load(ROUTES)
    assert data["routes"][0]["quiet_hours"]["start"] == "22:00"
    RoutesFile.model_validate(data)
    assert list(validator("routes").iter_errors(data)) == []


@pytest.mark.parametrize(
    "value",
    ["30s", "15m", "4h", "1d", "2w", "1h30m", "1.5h", "1H 30M", 90, 0.5, 0,
     "30", "soon", "", "-5m", -1, True, "30 secs"],
)  # fmt: skip
def test_the_duration_schema_agrees_with_the_parser(value: Any) -> None:
    route = {"name": "desk", "sink": "console", "group_window": value}
    try:
        Route.model_validate(route)
        accepted = True
    except ValidationError:
        accepted = False
    schema_ok = not list(validator("routes").iter_errors({"routes": [route]}))
    assert schema_ok == accepted, (value, accepted)


@pytest.mark.parametrize(
    "value", ["22:00", "07:30", "23:59:59", "00:00", "7:30", "24:00", "22h", "22:00 "]
)
def test_the_clock_time_schema_agrees_with_the_model(value: str) -> None:
    route = {"name": "d", "sink": "console", "quiet_hours": {"start": value, "end": "12:34"}}
    try:
        Route.model_validate(route)
        accepted = True
    except ValidationError:
        accepted = False
    schema_ok = not list(validator("routes").iter_errors({"routes": [route]}))
    assert schema_ok == accepted, (value, accepted)
