"""Tagging cost against the number of rules, and against a per-rule regex loop.

Prints two ratios measured in this one process (absolute times drift on shared machines):
  * time per article at 5,000 phrase rules / at 50 rules          (target <= 2)
  * per-rule regex loop at 5,000 rules / our automaton at 5,000   (target >= 50)

Articles: the real BBC/CNN/Guardian entries of ../shared/corpus/news-2021 when present, else
the bundled sample feeds. Rules: 1-3 phrases each, of 1-3 words, drawn uniformly from the
distinct word sequences of the articles themselves (types, not tokens: drawing by frequency
would make rules of "said" and "with", which no analyst writes). The matches per article are
printed too: the automaton's cost grows with the text and with what fires, not with the rules.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.feeds.html import html_to_text  # noqa: E402
from monitor.feeds.sources import load_feeds, sample_feeds_path  # noqa: E402
from monitor.pipeline.tagging import Tagger  # noqa: E402
from monitor.rules.models import MatchSpec, Rule  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus" / "news-2021"


def articles() -> list[tuple[str, str]]:
    out = []
    if CORPUS.is_dir():
        for path in sorted(CORPUS.glob("*/*.json")):
            for e in json.loads(path.read_text()):
                out.append((e.get("title") or "", html_to_text(e.get("description") or "")))
        return out
    import feedparser

    for feed in load_feeds(sample_feeds_path()):
        for e in feedparser.parse(feed.url.removeprefix("file://")).entries:
            out.append((e.get("title", ""), html_to_text(e.get("summary", ""))))
    return out


def make_rules(n: int, texts: list[tuple[str, str]], rng: random.Random) -> list[Rule]:
    grams: list[set[str]] = [set(), set(), set()]
    for title, body in texts:
        words = re.findall(r"[A-Za-z]{3,}", f"{title} {body}".lower())
        for size in (1, 2, 3):
            for i in range(len(words) - size + 1):
                grams[size - 1].add(" ".join(words[i : i + size]))
    pools = [sorted(g) for g in grams]
    rules = []
    for i in range(n):
        phrases = [rng.choice(pools[rng.randrange(3)]) for _ in range(rng.randint(1, 3))]
        rules.append(Rule(id=f"r{i}", match=MatchSpec(any=phrases), weight=10))
    return rules


def regex_loop(rules: list[Rule]) -> Callable[[str, str], list[str]]:
    """What a tagger without an automaton does: one compiled pattern per rule, tried in turn."""
    compiled = [
        (r.id, re.compile(r"\b(?:" + "|".join(re.escape(p) for p in r.match.any) + r")\b", re.I))
        for r in rules
    ]

    def tag(title: str, body: str) -> list[str]:
        return [rid for rid, rx in compiled if rx.search(title) or rx.search(body)]

    return tag


def per_article(
    fn: Callable[[str, str], object], texts: list[tuple[str, str]], rounds: int
) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for title, body in texts:
            fn(title, body)
        best = min(best, (time.perf_counter() - started) / len(texts))
    return best


def main() -> None:
    rng = random.Random(42)
    texts = articles()
    sample = texts[:1500]
    small, large = Tagger(make_rules(50, texts, rng)), Tagger(make_rules(5000, texts, rng))
    per_article(large.tag, sample[:200], 1)  # warm the stem cache for both
    t_small = per_article(small.tag, sample, 3)
    t_large = per_article(large.tag, sample, 3)
    t_regex = per_article(regex_loop(large.rules), sample[:150], 1)
    print(
        f"articles: {len(sample)} ({'news-2021 corpus' if CORPUS.is_dir() else 'bundled samples'})"
    )
    print(f"automaton,    50 rules: {t_small * 1e6:8.1f} us/article")
    print(f"automaton, 5,000 rules: {t_large * 1e6:8.1f} us/article")
    print(f"regex loop, 5,000 rules: {t_regex * 1e6:8.1f} us/article")
    fired = sum(len(large.tag(t, b)) for t, b in sample) / len(sample)
    print(f"matches per article at 5,000 rules: {fired:.2f}")
    print(f"ratio 5,000 / 50 rules:     {t_large / t_small:6.2f}  (target <= 2)")
    print(f"speed-up over regex loop:   {t_regex / t_large:6.1f}x (target >= 50)")


if __name__ == "__main__":
    main()
