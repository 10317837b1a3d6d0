"""Shared hypothesis strategies: hostile text as it reaches the pipeline and the sinks.

Surrogates are left out: feed text cannot carry them (feedparser refuses a document with a
lone surrogate, and invalid UTF-8 arrives decoded as a legacy charset, i.e. mojibake)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

# Modest, so the whole suite stays fast; no deadline, as a slow first call (a cold cache, a
# stemmer being built) is not a failure.
MODEST = settings(max_examples=200, deadline=None)

# Every kind of character a feed can smuggle in: controls (Cc), format characters (Cf: bidi
# overrides, zero-width), separators (Zs, Zl, Zp), private use (Co), and ordinary letters,
# digits, marks, punctuation and symbols.
ANY_CHAR = st.characters(
    codec="utf-8",
    categories=(
        "Cc", "Cf", "Co", "Zs", "Zl", "Zp",
        "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No",
        "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So",
    ),
)  # fmt: skip

# The pieces an attacker would try first, as whole units.
HOSTILE_PIECES = (
    "\r\n", "\r", "\n", "\x00", "\x1b[31m", "\x7f", "\x85", "\x9b",
    "\u202e", "\u202d", "\u202a", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f",
    "\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u2028", "\u2029", "\ufffd",
    "<!channel>", "<!here>", "<!everyone>", "<@U024BE7LH>", "<#C024BE7LR>",
    "<!subteam^S012AB>", "<https://evil.example|click here>", "<mailto:x@evil.example|x>",
    "*bold*", "_italic_", "~strike~", "`code`", "```block```", "&", "&amp;", "&lt;", "<", ">",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"><b>x</b>', "'", '"',
    "javascript:alert(1)", "[bold]", "[/bold]", "[link=https://evil.example]x[/link]", "[/]",
    "Bcc: victim@example.com", "Subject: forged", "=?utf-8?q?x?=", ".\r\n.\r\n",
    "Ã©", "ÿþ", "ﷺ", "ͺ", "ﬁ", "İ", "ß", "ǅ",
)  # fmt: skip

hostile_text = st.lists(
    st.one_of(st.text(ANY_CHAR, max_size=20), st.sampled_from(HOSTILE_PIECES)), max_size=12
).map("".join)
