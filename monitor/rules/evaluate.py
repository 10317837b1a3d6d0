"""How well a rule set separates labelled headlines: precision, recall and F1, with the false
alarms and the misses listed, and which rules made the false alarms.

Rule tests (``tests:`` in rule files) say which rules an example must fire; this answers the
desk's own question on a set of hundreds of labelled headlines: of the stories that should
alert, how many would, and how many alerts would be noise. Each labelled item is one article,
one story, scored by the pipeline's own stages (as rule tests do: :func:`example_story`).

Input: CSV with a header, or JSON lines; fields ``title`` (or ``text``), optional ``body``,
``language`` and ``label``. A label is yes/no (1/0, true/false, alert/none) or a level name
(low, medium, high, critical; none), the level the story should reach at least."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import Issue, RuleLoadError
from monitor.models import Level
from monitor.pipeline.cluster import StoryIndex
from monitor.pipeline.scoring import score_story
from monitor.rules.ruleset import RuleSet
from monitor.rules.testing import example_story

_YES = {"1", "yes", "y", "true", "alert", "positive", "relevant"}
_NO = {"0", "no", "n", "false", "none", "negative", "irrelevant", ""}
MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Labelled:
    where: str  # file:line, for the report
    title: str
    body: str
    language: str
    level: Level  # the least level it should reach: none = it should not alert


@dataclass(frozen=True)
class Judged:
    item: Labelled
    level: Level
    score: float
    rules: tuple[str, ...]


@dataclass
class Evaluation:
    threshold: Level
    judged: list[Judged] = field(default_factory=list)

    def _alerts(self, j: Judged) -> bool:
        return j.level >= self.threshold

    def _should(self, j: Judged) -> bool:
        return j.item.level >= self.threshold

    @property
    def false_alarms(self) -> list[Judged]:
        return [j for j in self.judged if self._alerts(j) and not self._should(j)]

    @property
    def misses(self) -> list[Judged]:
        return [j for j in self.judged if self._should(j) and not self._alerts(j)]

    @property
    def counts(self) -> dict[str, int]:
        tp = sum(self._alerts(j) and self._should(j) for j in self.judged)
        fp, fn = len(self.false_alarms), len(self.misses)
        return {"true_alerts": tp, "false_alarms": fp, "misses": fn,
                "true_silences": len(self.judged) - tp - fp - fn}  # fmt: skip

    @property
    def scores(self) -> dict[str, float | None]:
        c = self.counts
        alerted, relevant = c["true_alerts"] + c["false_alarms"], c["true_alerts"] + c["misses"]
        precision = c["true_alerts"] / alerted if alerted else None
        recall = c["true_alerts"] / relevant if relevant else None
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and recall is not None and precision + recall
            else None
        )
        return {"precision": precision, "recall": recall, "f1": f1}

    @property
    def under_level(self) -> list[Judged]:
        """Alerted, but below the level the label names (labels that are levels)."""
        return [
            j for j in self.judged if self._alerts(j) and self._should(j) and j.level < j.item.level
        ]

    def false_alarm_rules(self) -> Counter[str]:
        return Counter(r for j in self.false_alarms for r in j.rules)


def _label(raw: object, path: str, line: int) -> Level:
    text = str(raw if raw is not None else "").strip().lower()
    if text in Level.__members__:
        return Level[text]
    if text in _YES:
        return Level.low  # any alert
    if text in _NO:
        return Level.none
    raise RuleLoadError(
        [
            Issue(
                path,
                line,
                1,
                "label",
                f"{raw!r} is not a label (yes/no, 1/0, true/false, or a level: "
                "none, low, medium, high, critical)",
            )
        ]
    )


def _item(row: dict[str, Any], path: str, line: int) -> Labelled:
    title = row.get("title", row.get("text"))
    if not isinstance(title, str) or not title.strip():
        raise RuleLoadError([Issue(path, line, 1, "title", "missing: give a title (or text)")])
    body = row.get("body") or ""
    language = row.get("language") or "en"
    if not isinstance(body, str) or not isinstance(language, str):
        raise RuleLoadError([Issue(path, line, 1, "body", "body and language must be text")])
    return Labelled(f"{path}:{line}", title, body, language, _label(row.get("label"), path, line))


def read_labelled(path: Path) -> list[Labelled]:
    """Labelled items from a CSV (with a header row) or JSON-lines file; every problem is a
    RuleLoadError naming the file and line."""
    name = str(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise RuleLoadError([Issue(name, 1, 1, "(file)", f"larger than {MAX_BYTES} bytes")])
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleLoadError([Issue(name, 1, 1, "(file)", f"cannot read: {exc}")]) from None
    items = []
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise RuleLoadError([Issue(name, n, 1, "(json)", str(exc))]) from None
            if not isinstance(row, dict):
                raise RuleLoadError([Issue(name, n, 1, "(json)", "each line must be an object")])
            items.append(_item(row, name, n))
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        fields = {f.strip().lower() for f in reader.fieldnames or []}
        if not fields & {"title", "text"} or "label" not in fields:
            raise RuleLoadError(
                [Issue(name, 1, 1, "(header)", "needs columns title (or text) and label")]
            )
        for row in reader:
            clean = {(k or "").strip().lower(): v for k, v in row.items()}
            items.append(_item(clean, name, reader.line_num))
    if not items:
        raise RuleLoadError([Issue(name, 1, 1, "(file)", "no labelled items")])
    return items


def evaluate(ruleset: RuleSet, items: list[Labelled], threshold: Level = Level.low) -> Evaluation:
    out = Evaluation(threshold)
    index = StoryIndex({}, {})  # no signatures: every item is a story of its own
    for n, item in enumerate(items):
        story = example_story(ruleset, item.title, item.body, index, f"item-{n}", item.language)
        score = score_story(story, ruleset.by_id, ruleset.scoring)
        rules = tuple(sorted({h.rule_id for h in story.hits}))
        out.judged.append(Judged(item, score.level, score.value, rules))
    return out
