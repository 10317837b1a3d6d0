"""Tagging: which rules an article triggers, and the words that triggered them.

Every phrase of every rule (``any``, ``all``, ``none`` and ``near`` terms) goes into one
Aho-Corasick automaton over stemmed tokens, so a text is scanned once whatever the number of
rules: the cost grows with the text and its hits, not with the rule count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

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


# A hit: (kind, field, first token, end token, phrase). Plain tuples: this is the hot loop.
_Hit = tuple[int, int, int, int, str]
_FIELDS: tuple[Field_, Field_] = ("title", "body")


def _overlaps(hit: _Hit, spans: list[_Hit]) -> bool:
    return any(hit[2] < s[3] and s[2] < hit[3] for s in spans)


def _earliest_longest(hits: list[_Hit]) -> _Hit:
    # The earliest hit, and the longest phrase there ("military and technical measures" over
    # "military and technical"): the most telling evidence.
    return min(hits, key=lambda h: (h[2], h[2] - h[3]))


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
        self._simple = {
            id(r): not (r.match.all or r.match.none or r.match.near) for r in self.rules
        }
        if not self._empty:
            self._automaton.make_automaton()

    def tag(
        self, title: str, body: str = "", toks: tuple[list[Token], list[Token]] | None = None
    ) -> list[Match]:
        """Matches of every rule on an article. ``toks`` (the tokens of title and body) may be
        passed when the caller already has them."""
        if self._empty:
            return []
        texts = (title, body)
        if toks is None:
            toks = (tokens(title), tokens(body))
        found: dict[int, list[_Hit]] = defaultdict(list)
        for field_no in (0, 1):
            self._scan(toks[field_no], field_no, found)
        out: list[Match] = []
        for index in sorted(found):
            out.extend(self._evaluate(self.rules[index], found[index], texts, toks))
        return out

    def _scan(self, toks: list[Token], field_no: int, found: dict[int, list[_Hit]]) -> None:
        if not toks:
            return
        # Haystack " s0 s1 s2 ": a hit ending at character e with key length k starts at the
        # space at e-k+1; the token after that space is the hit's first token.
        starts: dict[int, int] = {}
        pos = 0
        for i, tok in enumerate(toks):
            starts[pos] = i
            pos += len(tok.stem) + 1
        haystack = " " + " ".join([t.stem for t in toks]) + " "
        for end, (key_len, n_tok, entries) in self._automaton.iter(haystack):
            first = starts[end - key_len + 1]
            for kind, index, phrase in entries:
                found[index].append((kind, field_no, first, first + n_tok, phrase))

    def _evaluate(
        self,
        rule: Rule,
        hits: list[_Hit],
        texts: tuple[str, str],
        toks: tuple[list[Token], list[Token]],
    ) -> list[Match]:
        spec = rule.match
        out: list[Match] = []
        if self._simple[id(rule)]:  # the common case, a phrase list: one pass, best per field
            per_field: list[_Hit | None] = [None, None]
            for h in hits:
                b = per_field[h[1]]
                if b is None or h[2] < b[2] or (h[2] == b[2] and h[3] > b[3]):
                    per_field[h[1]] = h
            for hit in per_field:
                if hit is not None:
                    out.append(self._match(rule, hit, texts[hit[1]], toks[hit[1]]))
            return out
        # 'none' phrases cancel the hits they overlap, not the whole article: "home invasion"
        # must not count as an invasion, yet a story that also reports an invasion of Ukraine
        # must still fire. (A whole-article veto would let any aside silence a real alert.)
        cancel = [[h for h in hits if h[0] == _NONE and h[1] == f] for f in (0, 1)]
        alive = [h for h in hits if h[0] != _NONE and not _overlaps(h, cancel[h[1]])]
        found_all = {h[4] for h in alive if h[0] == _ALL}
        if any(phrase not in found_all for phrase in spec.all):
            return []
        primary = _ANY if spec.any else _ALL
        for field_no in (0, 1):
            candidates = [h for h in alive if h[0] == primary and h[1] == field_no]
            if spec.near is not None:
                terms = [h for h in alive if h[0] == _NEAR and h[1] == field_no]
                within = spec.near.within
                candidates = [
                    h
                    for h in candidates
                    if any(
                        t[2] - h[3] <= within
                        and h[2] - t[3] <= within
                        and not (t[2] >= h[2] and t[3] <= h[3])
                        for t in terms
                    )
                ]
            if candidates:
                best = _earliest_longest(candidates)
                out.append(self._match(rule, best, texts[field_no], toks[field_no]))
        return out

    @staticmethod
    def _match(rule: Rule, hit: _Hit, text: str, toks: list[Token]) -> Match:
        _, field_no, start, end, phrase = hit
        last = len(toks) - 1
        lo = toks[start - _SNIPPET_WORDS].start if start > _SNIPPET_WORDS else 0
        hi = toks[end - 1 + _SNIPPET_WORDS].end if end - 1 + _SNIPPET_WORDS < last else len(text)
        snippet = " ".join(text[lo:hi].split())
        if lo:
            snippet = "…" + snippet
        if hi < len(text):
            snippet += "…"
        words = " ".join(text[toks[start].start : toks[end - 1].end].split())
        return Match(rule.id, phrase, words, _FIELDS[field_no], snippet)
