"""Normalised, stemmed tokens: the one representation rules and signatures are computed on.

Rule phrases and article text go through the same function, so whatever folding happens here
happens on both sides and a phrase always meets its own spelling.

Stemming is per language (Snowball, via PyStemmer): a rule's phrases are stemmed in the rule's
``language`` and an article's words in the article's, so "frappes" meets "frappe" in French.
The English folds below apply to English only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

# Letters and digits; apostrophes, hyphens and punctuation split words, so "military-technical"
# is the two tokens "military technical" and "Russia's" is "russia s".
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

_stemmer = Stemmer.Stemmer("english")

# The languages a rule may be written in: ISO 639-1 code -> Snowball algorithm. (No Snowball
# stemmer exists for Ukrainian, Chinese, Japanese, ...: rules in those cannot be written yet.)
LANGUAGES: dict[str, str] = {
    "ar": "arabic",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nl": "dutch",
    "no": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "tr": "turkish",
}
# Feeds sometimes give ISO 639-2 codes (or Norwegian Bokmal's own code).
_ALIASES = {
    "ara": "ar",
    "cat": "ca",
    "ces": "cs",
    "cze": "cs",
    "dan": "da",
    "deu": "de",
    "ger": "de",
    "ell": "el",
    "gre": "el",
    "eng": "en",
    "spa": "es",
    "fin": "fi",
    "fra": "fr",
    "fre": "fr",
    "hun": "hu",
    "ind": "id",
    "ita": "it",
    "lit": "lt",
    "nld": "nl",
    "dut": "nl",
    "nb": "no",
    "nob": "no",
    "nor": "no",
    "pol": "pl",
    "por": "pt",
    "ron": "ro",
    "rum": "ro",
    "rus": "ru",
    "srp": "sr",
    "swe": "sv",
    "tur": "tr",
}


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
    """Stem one lower-cased English word (cached: news vocabulary is small and very
    repetitive)."""
    return str(_stemmer.stemWord(_fold(word)))


def language_code(tag: str) -> str:
    """The primary language of a language tag, as an ISO 639-1 code where there is one:
    "en-GB" -> "en", "fra" -> "fr", "FR" -> "fr". Unknown languages come back lower-cased."""
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return _ALIASES.get(primary, primary)


def _identity(word: str) -> str:
    return word


@lru_cache(maxsize=64)
def stemmer_for(language: str) -> Callable[[str], str]:
    """The (cached) stemming function of a language code. A language without a Snowball
    stemmer gets its words unstemmed: it still tokenises and signs, and no rule matches it."""
    code = language_code(language)
    if code == "en":
        return stem
    algorithm = LANGUAGES.get(code)
    if algorithm is None:
        return _identity
    stemmer = Stemmer.Stemmer(algorithm)

    @lru_cache(maxsize=100_000)
    def stem_word(word: str) -> str:
        return str(stemmer.stemWord(word))

    return stem_word


def normalise(text: str) -> str:
    """Unicode-normalise and case-fold: full-width forms, ligatures and case differences vanish."""
    return unicodedata.normalize("NFKC", text).casefold()


def tokens(text: str, language: str = "en") -> list[Token]:
    """Stemmed tokens with their spans in ``text``, stemmed in ``language`` (a language tag).

    Offsets refer to ``text`` itself: NFKC can change lengths, so each word is normalised on its
    own rather than the whole string at once.

    NFKC can also put spaces inside one word: U+FDFA (common in Arabic text) is the four words
    "صلى الله عليه وسلم", U+037A is " ι". Such a word gives one token per part, all with the
    word's span: the tagger joins stems with spaces and reads phrase boundaries off them, and a
    stem holding a space made it look up a token start that does not exist (KeyError, the
    article lost) or match a phrase across half a token.
    """
    stem_word = stem if language == "en" else stemmer_for(language)
    out: list[Token] = []
    for m in _WORD.finditer(text):
        word = normalise(m.group())
        # isalnum(): the cheap test that the (rare) split is not needed.
        for part in (word,) if word.isalnum() else word.split():
            out.append(Token(stem_word(part), m.start(), m.end()))
    return out


def stems(text: str, language: str = "en") -> list[str]:
    return [t.stem for t in tokens(text, language)]


def words(text: str, case_sensitive: bool = False) -> list[str]:
    """The words of ``text`` as written, unstemmed: NFKC-normalised, and case-folded unless
    ``case_sensitive``. What an exact phrase is compared on."""
    if case_sensitive:
        return [unicodedata.normalize("NFKC", m.group()) for m in _WORD.finditer(text)]
    return [normalise(m.group()) for m in _WORD.finditer(text)]
