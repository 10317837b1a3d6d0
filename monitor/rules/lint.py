"""Checks of a rules directory beyond what each file's schema can say.

Errors (the rule set is refused, by ``monitor rules check`` and by every loader alike):

* a route naming a sink that does not exist;
* two routes with the same name (their alerts would share ids: the second would never send).

Warnings (``monitor rules check`` prints them; it exits 0 when there is nothing else):

* no routes at all, or a rule no route can ever deliver on its own: its best score (weight x
  title_boost, plus the whole corroboration bonus and its spike bonus) is below every route's
  ``min_level``;
* one phrase in two rules' ``any`` with different weights, when nothing else (``all``,
  ``near``, language, exactness) tells them apart: an article with it always fires both;
* a ``none`` phrase sharing no word with the rule's ``any`` / ``all`` / ``near`` phrases: it
  can never overlap a hit, so it cancels nothing;
* a rule no test case expects to fire;
* a test case expecting a disabled rule (it cannot fire, the case fails).

The checks that come with reading the files (schema, duplicate ids, phrases without words, test
cases naming unknown rules) are in :func:`monitor.rules.ruleset.read_rules`.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING

from monitor.errors import Issue
from monitor.pipeline.tagging import phrase_key

if TYPE_CHECKING:
    from monitor.rules.models import Route, Rule
    from monitor.rules.phrases import Phrase
    from monitor.rules.ruleset import Placed, RuleSources

WARNING = "warning"


def lint(src: RuleSources, warnings: bool = True) -> list[Issue]:
    """The problems :func:`~monitor.rules.ruleset.read_rules` does not find (errors; and, with
    ``warnings``, the warnings too)."""
    if not src.root.is_dir():
        return []  # reported by read_rules; nothing else to say
    found = _routes(src)
    if warnings:
        found += _delivery(src)
        found += _shared_phrases(src)
        found += _dead_none_phrases(src)
        found += _test_coverage(src)
    return found


def _routes(src: RuleSources) -> list[Issue]:
    # Imported here: the registry loads every sink's client library.
    from monitor.sinks.registry import SINKS

    out: list[Issue] = []
    first: dict[str, Placed[Route]] = {}
    for p in src.routes:
        route = p.item
        if route.sink not in SINKS:
            close = difflib.get_close_matches(route.sink, list(SINKS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(SINKS))}"
            line, col = p.at("sink")
            message = f"unknown sink '{route.sink}'"
            out.append(Issue(p.path, line, col, f"routes[{p.index}].sink", message, hint=hint))
        if route.name in first:
            line, col = p.at("name")
            first_line, _ = first[route.name].at("name")
            message = f"duplicate route name '{route.name}' (first at line {first_line})"
            hint = "each route needs its own name: alerts are sent and counted per route name"
            label = f"routes[{p.index}].name"
            out.append(Issue(p.path, line, col, label, message, hint=hint))
        else:
            first[route.name] = p
    return out


def _delivery(src: RuleSources) -> list[Issue]:
    if not src.complete:  # scoring or routes did not load: thresholds and routes are not known
        return []
    if not src.routes:
        where = src.routes_path or src.root
        message = "no routes: no alert is ever delivered"
        hint = "add one to routes.yaml, e.g. routes: [{name: desk, sink: console}]"
        return [Issue(str(where), 1, 1, "routes", message, WARNING, hint)]
    scoring = src.scoring
    levels = scoring.levels
    lowest = min(src.routes, key=lambda p: getattr(levels, p.item.min_level.name))
    level = lowest.item.min_level.name
    threshold: float = getattr(levels, level)
    per, cap = scoring.corroboration.per_outlet, scoring.corroboration.max
    bonus = cap if per > 0 else 0.0
    out = []
    for p in src.rules:
        rule = p.item
        surge = rule.spike.bonus if rule.spike is not None else 0.0
        best = rule.weight * scoring.title_boost + bonus + surge
        if not rule.enabled or best >= threshold:
            continue
        need = math.ceil((threshold - bonus - surge) / scoring.title_boost * 100) / 100
        line, col = p.at("weight")
        spike = f" + spike {surge:g}" if surge else ""
        message = (
            f"no route can deliver this rule on its own: it scores at most {best:g} "
            f"(weight {rule.weight:g} x title_boost {scoring.title_boost:g} + corroboration "
            f"{bonus:g}{spike}), below {level} ({threshold:g}), the lowest min_level of any route"
        )
        hint = f"raise weight to {need:g} or more, or lower route '{lowest.item.name}' min_level"
        out.append(Issue(p.path, line, col, f"rules[{p.index}].weight", message, WARNING, hint))
    return out


def _same_words(phrase: Phrase, rule: Rule) -> tuple[str, ...]:
    """What a phrase matches, as a comparable key: its stems in the rule's language, and its
    words as written when it is exact ("strikes" exact and "strikes" stemmed differ)."""
    key = phrase_key(phrase, rule.language)
    if not key or not phrase.is_exact(rule.exact):
        return (rule.language, key)
    written = str(phrase) if phrase.case_sensitive else str(phrase).casefold()
    return (rule.language, key, " ".join(written.split()))


def _shared_phrases(src: RuleSources) -> list[Issue]:
    first: dict[tuple[str, ...], tuple[Placed[Rule], int]] = {}
    out = []
    for p in src.rules:
        rule = p.item
        if not rule.enabled or rule.match.all or rule.match.near is not None:
            continue  # context tells this rule apart: sharing a phrase is by design
        for j, phrase in enumerate(rule.match.any):
            key = _same_words(phrase, rule)
            if not key[1]:
                continue
            if key not in first:
                first[key] = (p, j)
                continue
            q, k = first[key]
            other = q.item
            if other.id == rule.id or other.weight == rule.weight:
                continue
            line, col = p.at("match", "any", j)
            other_line, _ = q.at("match", "any", k)
            message = (
                f"'{phrase}' also fires rule '{other.id}' ({q.path}:{other_line}) with "
                f"weight {other.weight:g}, this rule {rule.weight:g}: an article with it "
                "always fires both"
            )
            hint = "give both rules one weight, or keep the phrase in one of them"
            label = f"rules[{p.index}].match.any[{j}]"
            out.append(Issue(p.path, line, col, label, message, WARNING, hint))
    return out


def _dead_none_phrases(src: RuleSources) -> list[Issue]:
    out = []
    for p in src.rules:
        spec, language = p.item.match, p.item.language
        positive = [*spec.any, *spec.all, *(spec.near.terms if spec.near else [])]
        words = {w for phrase in positive for w in phrase_key(phrase, language).split()}
        for j, phrase in enumerate(spec.none):
            key = phrase_key(phrase, language)
            if not key or set(key.split()) & words:
                continue
            line, col = p.at("match", "none", j)
            message = (
                f"'{phrase}' cannot cancel anything: it shares no word with this rule's "
                "any/all/near phrases"
            )
            hint = (
                "'none' cancels only the hits it overlaps, word by word: write the words "
                "around a phrase of the rule ('home invasion' for 'invasion')"
            )
            label = f"rules[{p.index}].match.none[{j}]"
            out.append(Issue(p.path, line, col, label, message, WARNING, hint))
    return out


def _test_coverage(src: RuleSources) -> list[Issue]:
    out = []
    expected = {rid for t in src.tests for rid in t.case.expect}
    by_id = {p.item.id: p.item for p in src.rules}
    for p in src.rules:
        rule = p.item
        if rule.enabled and rule.id not in expected:
            line, col = p.at("id")
            message = "no test case expects this rule to fire"
            hint = f"add an example under tests: with expect: [{rule.id}]"
            out.append(Issue(p.path, line, col, f"rules[{p.index}].id", message, WARNING, hint))
    for t in src.tests:
        for j, (rid, (line, col)) in enumerate(zip(t.case.expect, t.expect_at, strict=True)):
            rule_ = by_id.get(rid)
            if rule_ is not None and not rule_.enabled:
                message = f"rule '{rid}' is disabled (enabled: false): it cannot fire here"
                hint = "enable the rule, or take it out of expect"
                out.append(Issue(t.path, line, col, f"expect[{j}]", message, WARNING, hint))
    return out
