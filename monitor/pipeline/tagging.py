"""Tagging: which rules an article triggers, and the words that triggered them.

Every phrase of every rule (``any``, ``all``, ``none`` and ``near`` terms) goes into one
Aho-Corasick automaton over stemmed tokens, so a text is scanned once whatever the number of
rules: the cost grows with the text and its hits, not with the rule count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import ahocorasick

from monitor.models import Field_, Match
from monitor.pipeline.text import Token, stems, tokens
from monitor.rules.models import Rule

_ANY, _ALL, _NONE, _NEAR = 0, 1, 2, 3
_SNIPPET_WORDS = 8


def phrase_key(phrase: str) -> str:
    """The automaton key of a phrase: its stems between spaces, so hits fall on word boundaries."""
    words = stems(phrase)
    return f" {' '.join(words)} " if words else ""


@dataclass(slots=True)
class _Hit:
    start: int  # token indices, end exclusive
    end: int
    phrase: str


@dataclass(slots=True)
class _RuleHits:
    any: dict[str, list[_Hit]] = field(default_factory=lambda: defaultdict(list))
    all: dict[str, list[_Hit]] = field(default_factory=lambda: defaultdict(list))
    none: dict[str, list[_Hit]] = field(default_factory=lambda: defaultdict(list))
    near: dict[str, list[_Hit]] = field(default_factory=lambda: defaultdict(list))


def _overlaps(hit: _Hit, spans: list[_Hit]) -> bool:
    return any(hit.start < s.end and s.start < hit.end for s in spans)


class Tagger:
    """Compiled form of a rule list. Immutable once built; a rule reload builds a new one."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = [r for r in rules if r.enabled]
        self._automaton = ahocorasick.Automaton()
        entries: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for index, rule in enumerate(self.rules):
            spec = rule.match
            groups = [(_ANY, spec.any), (_ALL, spec.all), (_NONE, spec.none)]
            if spec.near is not None:
                groups.append((_NEAR, spec.near.terms))
            for kind, phrases in groups:
                for phrase in phrases:
                    key = phrase_key(phrase)
                    if key:  # a phrase with no words is reported by the loader
                        entries[key].append((kind, index, phrase))
        for key, value in entries.items():
            self._automaton.add_word(key, (len(key), key.count(" ") - 1, tuple(value)))
        self._empty = not entries
        if not self._empty:
            self._automaton.make_automaton()

    def tag(
        self, title: str, body: str = "", toks: tuple[list[Token], list[Token]] | None = None
    ) -> list[Match]:
        """Matches of every rule on an article. ``toks`` (the tokens of title and body) may be
        passed when the caller already has them."""
        if self._empty:
            return []
        texts: dict[Field_, str] = {"title": title, "body": body}
        if toks is None:
            toks = (tokens(title), tokens(body))
        by_field: dict[Field_, list[Token]] = {"title": toks[0], "body": toks[1]}
        found: dict[int, _RuleHits] = defaultdict(_RuleHits)
        for name in texts:
            self._scan(by_field[name], name, found)
        out: list[Match] = []
        for index, hits in sorted(found.items()):
            out.extend(self._evaluate(self.rules[index], hits, texts, by_field))
        return out

    def _scan(self, toks: list[Token], name: Field_, found: dict[int, _RuleHits]) -> None:
        if not toks:
            return
        # Haystack " s0 s1 s2 ": a hit ending at character e with key length k starts at the
        # space at e-k+1; the token after that space is the hit's first token.
        starts: dict[int, int] = {}
        pos = 0
        parts = []
        for i, tok in enumerate(toks):
            starts[pos] = i
            parts.append(tok.stem)
            pos += len(tok.stem) + 1
        haystack = " " + " ".join(parts) + " "
        for end, (key_len, n_tok, entries) in self._automaton.iter(haystack):
            first = starts[end - key_len + 1]
            for kind, index, phrase in entries:
                hit = _Hit(first, first + n_tok, phrase)
                bucket = found[index]
                (bucket.any, bucket.all, bucket.none, bucket.near)[kind][name].append(hit)

    def _evaluate(
        self,
        rule: Rule,
        hits: _RuleHits,
        texts: dict[Field_, str],
        toks: dict[Field_, list[Token]],
    ) -> list[Match]:
        # 'none' phrases cancel the hits they overlap, not the whole article: "home invasion"
        # must not count as an invasion, yet a story that also reports an invasion of Ukraine
        # must still fire. (A whole-article veto would let any aside silence a real alert.)
        def alive(group: dict[str, list[_Hit]], name: Field_) -> list[_Hit]:
            return [h for h in group.get(name, []) if not _overlaps(h, hits.none.get(name, []))]

        spec = rule.match
        fields: tuple[Field_, ...] = ("title", "body")
        for phrase in spec.all:
            if not any(h.phrase == phrase for n in fields for h in alive(hits.all, n)):
                return []
        out: list[Match] = []
        for name in fields:
            candidates = alive(hits.any, name) if spec.any else alive(hits.all, name)
            if spec.near is not None:
                terms = hits.near.get(name, [])
                within = spec.near.within
                candidates = [
                    h
                    for h in candidates
                    if any(
                        t.start - h.end <= within
                        and h.start - t.end <= within
                        and not (t.start >= h.start and t.end <= h.end)
                        for t in terms
                    )
                ]
            if candidates:
                # The earliest hit, and the longest phrase there ("military and technical
                # measures" over "military and technical"): the most telling evidence.
                best = min(candidates, key=lambda h: (h.start, h.start - h.end))
                out.append(self._match(rule, best, name, texts[name], toks[name]))
        return out

    @staticmethod
    def _match(rule: Rule, hit: _Hit, name: Field_, text: str, toks: list[Token]) -> Match:
        first, last = toks[hit.start], toks[hit.end - 1]
        lo = toks[max(0, hit.start - _SNIPPET_WORDS)].start
        hi = toks[min(len(toks) - 1, hit.end - 1 + _SNIPPET_WORDS)].end
        snippet = " ".join(text[lo:hi].split())
        if lo > 0:
            snippet = "…" + snippet
        if hi < len(text.rstrip()):
            snippet += "…"
        return Match(
            rule_id=rule.id,
            phrase=hit.phrase,
            text=" ".join(text[first.start : last.end].split()),
            field=name,
            snippet=snippet,
        )
