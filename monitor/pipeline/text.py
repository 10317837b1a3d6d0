"""Normalised, stemmed tokens: the one representation rules and signatures are computed on.

Rule phrases and article text go through the same function, so whatever folding happens here
happens on both sides and a phrase always meets its own spelling.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

# Letters and digits; apostrophes, hyphens and punctuation split words, so "military-technical"
# is the two tokens "military technical" and "Russia's" is "russia s".
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

_stemmer = Stemmer.Stemmer("english")


@dataclass(frozen=True, slots=True)
class Token:
    stem: str
    start: int  # character offsets into the original text
    end: int


def _fold(word: str) -> str:
    """Pre-stem folds Snowball does not do. "-arily" adverbs to their adjective ("militarily" ->
    "military", "temporarily" -> "temporary", so the adverb meets the noun phrase) and British
    "-is-" to "-iz-" spellings ("mobilisation" / "mobilization") so one phrase covers both.

    Only "-arily": a general "-ily" -> "-y" fold would also turn nouns ("family", "Sicily")
    into non-words and split them from their plurals."""
    if len(word) > 7 and word.endswith("arily"):
        word = word[:-5] + "ary"
    for brit, amer in (
        ("isation", "ization"),
        ("isations", "izations"),
        ("ised", "ized"),
        ("ising", "izing"),
        ("ises", "izes"),
        ("ise", "ize"),
    ):
        if len(word) > len(brit) + 2 and word.endswith(brit):
            return word[: -len(brit)] + amer
    return word


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Stem one lower-cased word (cached: news vocabulary is small and very repetitive)."""
    return str(_stemmer.stemWord(_fold(word)))


def normalise(text: str) -> str:
    """Unicode-normalise and case-fold: full-width forms, ligatures and case differences vanish."""
    return unicodedata.normalize("NFKC", text).casefold()


def tokens(text: str) -> list[Token]:
    """Stemmed tokens with their spans in ``text``.

    Offsets refer to ``text`` itself: NFKC can change lengths, so each word is normalised on its
    own rather than the whole string at once.
    """
    out: list[Token] = []
    for m in _WORD.finditer(text):
        word = normalise(m.group())
        out.append(Token(stem(word), m.start(), m.end()))
    return out


def stems(text: str) -> list[str]:
    return [t.stem for t in tokens(text)]
