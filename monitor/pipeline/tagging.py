"""Tagging: which rules an article triggers, and the words that triggered them.

Every phrase of every rule (``any``, ``all``, ``none`` and ``near`` terms) goes into one
Aho-Corasick automaton over stemmed tokens, so a text is scanned once whatever the number of
rules: the cost grows with the text and its hits, not with the rule count.

One automaton per rule language, built once per rule set: an article is stemmed in its own
language and scanned once, by its language's automaton; rules of other languages cost nothing.

Exact and case-sensitive phrases go into the same automaton under their stems (a literal word
form always has its own stem), their kind flagged _CHECKED: the rule's hits are then compared
with the phrase's words as written, in the text. They add no scan and nothing to the scan loop;
only rules that have such phrases pay for the comparison, and only where they hit.

Source filters (``sources: {only/except}``) are applied after the scan, to the few rules that
hit, from the article's feed name and labels.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import ahocorasick

from monitor.models import Field_, Match
from monitor.pipeline.text import Token, language_code, normalise, stems, tokens, words
from monitor.rules.models import Rule, SourceFilter
from monitor.rules.phrases import Phrase

_ANY, _ALL, _NONE, _NEAR = 0, 1, 2, 3
_CHECKED = 4  # flag on a kind: an exact or case-sensitive phrase, to compare as written
_SNIPPET_WORDS = 8


def phrase_key(phrase: str, language: str = "en") -> str:
    """The automaton key of a phrase: its stems between spaces, so hits fall on word boundaries."""
    found = stems(phrase, language)
    return f" {' '.join(found)} " if found else ""


# A hit: (kind, field, first token, end token, phrase). Plain tuples: this is the hot loop.
_Hit = tuple[int, int, int, int, Phrase]
# An automaton entry: (kind, rule index, phrase).
_Entry = tuple[int, int, Phrase]
# What a checked phrase is compared on: its words case-folded, and as written (None: compared
# without case).
_Literal = tuple[tuple[str, ...], tuple[str, ...] | None]
_FIELDS: tuple[Field_, Field_] = ("title", "body")


def _shouting(text: str) -> bool:
    """Written entirely in capitals ("US TROOPS MASS AT BORDER"): there case says nothing."""
    return text == text.upper() and text != text.lower()


def _literal(
    text: str, toks: list[Token], first: int, folded: tuple[str, ...], cased: tuple[str, ...] | None
) -> bool:
    """Whether the words of ``text`` from token ``first`` are the phrase's words as written."""
    if cased is not None and not _shouting(text):
        return all(
            unicodedata.normalize("NFKC", text[toks[first + i].start : toks[first + i].end]) == w
            for i, w in enumerate(cased)
        )
    return all(
        normalise(text[toks[first + i].start : toks[first + i].end]) == w
        for i, w in enumerate(folded)
    )


class _Spans:
    """Hits sorted by first token, to ask which lie near a token range without comparing every
    pair. Why: an article repeating a rule's words thousands of times made the pairwise checks
    of ``none`` and ``near`` quadratic; a hostile 200 kB body (the feed parser's cap) took 9 s
    to tag, a worker stalled (tests/reliability/test_poison_records.py)."""

    def __init__(self, hits: list[_Hit]) -> None:
        self.hits = sorted(hits, key=lambda h: h[2])
        self.starts = [h[2] for h in self.hits]
        self.longest = max((h[3] - h[2] for h in self.hits), default=0)

    def starting(self, lo: int, hi: int) -> list[_Hit]:
        """The hits whose first token is in ``[lo, hi]``."""
        return self.hits[bisect_left(self.starts, lo) : bisect_right(self.starts, hi)]


def _overlaps(hit: _Hit, spans: _Spans) -> bool:
    # s[2] < hit[3] and hit[2] < s[3] <= s[2] + longest: s starts in this range
    near = spans.starting(hit[2] - spans.longest + 1, hit[3] - 1)
    return any(hit[2] < s[3] and s[2] < hit[3] for s in near)


def _earliest_longest(hits: list[_Hit]) -> _Hit:
    # The earliest hit, and the longest phrase there ("military and technical measures" over
    # "military and technical"): the most telling evidence.
    return min(hits, key=lambda h: (h[2], h[2] - h[3]))


class Tagger:
    """Compiled form of a rule list. Immutable once built; a rule reload builds a new one."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = [r for r in rules if r.enabled]
        by_language: dict[str, dict[str, list[_Entry]]] = {}  # language -> key -> entries
        self._literals: dict[int, _Literal] = {}  # id(phrase) -> its words, for checked ones
        checking: set[int] = set()  # the rules with checked phrases
        for index, rule in enumerate(self.rules):
            entries = by_language.setdefault(rule.language, {})
            spec = rule.match
            groups = [(_ANY, spec.any), (_ALL, spec.all), (_NONE, spec.none)]
            if spec.near is not None:
                groups.append((_NEAR, spec.near.terms))
            for kind, phrases in groups:
                for phrase in phrases:
                    key = phrase_key(phrase, rule.language)
                    if not key:  # a phrase with no words is reported by the loader
                        continue
                    flag = 0
                    if phrase.is_exact(rule.exact):
                        cased = tuple(words(phrase, True)) if phrase.case_sensitive else None
                        self._literals[id(phrase)] = (tuple(words(phrase)), cased)
                        checking.add(id(rule))
                        flag = _CHECKED
                    entries.setdefault(key, []).append((kind | flag, index, phrase))
        self._automata: dict[str, Any] = {}
        for language, entries in by_language.items():
            automaton = ahocorasick.Automaton()
            for key, value in entries.items():
                automaton.add_word(key, (len(key), key.count(" ") - 1, tuple(value)))
            if entries:
                automaton.make_automaton()
                self._automata[language] = automaton
        self._checking = frozenset(checking)
        self._simple = {
            id(r): not (r.match.all or r.match.none or r.match.near or id(r) in checking)
            for r in self.rules
        }
        self._filters: dict[int, SourceFilter] = {
            i: r.sources for i, r in enumerate(self.rules) if r.sources is not None
        }
        # The rules whose match rate the cluster stage counts (pipeline.spike).
        self.spike_rules: tuple[Rule, ...] = tuple(r for r in self.rules if r.spike is not None)

    @property
    def languages(self) -> frozenset[str]:
        """The languages some rule is written in."""
        return frozenset(self._automata)

    def tag(
        self,
        title: str,
        body: str = "",
        toks: tuple[list[Token], list[Token]] | None = None,
        *,
        language: str = "en",
        source: str | None = None,
        labels: Sequence[str] = (),
    ) -> list[Match]:
        """Matches of every rule on an article. ``toks`` (the tokens of title and body, stemmed
        in ``language``) may be passed when the caller already has them.

        ``language``: the article's language tag; only rules of that language can match.
        ``source`` and ``labels``: its feed's name and labels, for rules' source filters; with
        no ``source`` (an example text, not an article) source filters are not applied."""
        automaton = self._automata.get(language)
        if automaton is None:
            language = language_code(language)
            automaton = self._automata.get(language)
            if automaton is None:
                return []
        texts = (title, body)
        if toks is None:
            toks = (tokens(title, language), tokens(body, language))
        found: dict[int, list[_Hit]] = defaultdict(list)
        for field_no in (0, 1):
            self._scan(automaton, toks[field_no], field_no, found)
        out: list[Match] = []
        filters = self._filters if source is not None else None
        for index in sorted(found):
            if filters and (only := filters.get(index)) and not only.allows(source or "", labels):
                continue
            out.extend(self._evaluate(self.rules[index], found[index], texts, toks))
        return out

    @staticmethod
    def _scan(
        automaton: Any, toks: list[Token], field_no: int, found: dict[int, list[_Hit]]
    ) -> None:
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
        for end, (key_len, n_tok, entries) in automaton.iter(haystack):
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
        if id(rule) in self._checking:
            hits = self._checked(hits, texts, toks)
        # 'none' phrases cancel the hits they overlap, not the whole article: "home invasion"
        # must not count as an invasion, yet a story that also reports an invasion of Ukraine
        # must still fire. (A whole-article veto would let any aside silence a real alert.)
        cancel = [_Spans([h for h in hits if h[0] == _NONE and h[1] == f]) for f in (0, 1)]
        alive = [h for h in hits if h[0] != _NONE and not _overlaps(h, cancel[h[1]])]
        # by identity: "strikes" stemmed and "strikes" exact are equal strings, not equal phrases
        found_all = {id(h[4]) for h in alive if h[0] == _ALL}
        if any(id(phrase) not in found_all for phrase in spec.all):
            return []
        primary = _ANY if spec.any else _ALL
        for field_no in (0, 1):
            candidates = [h for h in alive if h[0] == primary and h[1] == field_no]
            if spec.near is not None:
                terms = _Spans([h for h in alive if h[0] == _NEAR and h[1] == field_no])
                within = spec.near.within
                candidates = [
                    h
                    for h in candidates
                    if any(
                        t[2] - h[3] <= within
                        and h[2] - t[3] <= within
                        and not (t[2] >= h[2] and t[3] <= h[3])
                        # t[3] >= h[2] - within and t[3] <= t[2] + longest: t starts in range
                        for t in terms.starting(h[2] - within - terms.longest, h[3] + within)
                    )
                ]
            if candidates:
                best = _earliest_longest(candidates)
                out.append(self._match(rule, best, texts[field_no], toks[field_no]))
        return out

    def _checked(
        self, hits: list[_Hit], texts: tuple[str, str], toks: tuple[list[Token], list[Token]]
    ) -> list[_Hit]:
        """The hits of exact and case-sensitive phrases that are the phrase's words as
        written (flag cleared), with the other hits."""
        out: list[_Hit] = []
        for hit in hits:
            kind, field_no, first, end, phrase = hit
            if kind & _CHECKED:
                folded, cased = self._literals[id(phrase)]
                if not _literal(texts[field_no], toks[field_no], first, folded, cased):
                    continue
                hit = (kind & ~_CHECKED, field_no, first, end, phrase)
            out.append(hit)
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
        written = " ".join(text[toks[start].start : toks[end - 1].end].split())
        return Match(rule.id, str(phrase), written, _FIELDS[field_no], snippet)
