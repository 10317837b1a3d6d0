"""Page boilerplate removal. Scraped and syndicated copies of a story carry the host site's
furniture ("Read Also", "Leave A Reply", breadcrumbs); left in, it pads the text with words that
match rules and dilutes near-duplicate similarity between copies of one story."""

from __future__ import annotations

import re

# A whole line of furniture. Patterns that could also begin a sentence ("Latest news from Kyiv
# suggests…", "Copyright disputes…", "Sign up for the draft…") are anchored to the furniture's
# own shape, so prose that happens to start with the same words is kept.
_BOILERPLATE = re.compile(
    r"""^(
        read\ (also|more|next)\b.* | see\ also\b.* | also\ read\b.* |
        (recent|related|popular|latest|more|top)\ (articles|news|stories|posts)\s*(:.*)? |
        you\ (may|might)\ also\ like\b.* |
        leave\ a\ (reply|comment)\b.* | please\ enter\ your\ (comment|name|email)\b.* |
        you\ have\ entered\ an\ incorrect\ email\ address\b.* |
        save\ my\ name,?\ email\b.* |
        (subscribe|sign\ up)(\ (to|for)\b.*\b(newsletters?|inbox|updates|alerts|e-?mails?|digest|
            podcast|channel|our)\b.*)?[.!]? |
        share\ (this|on)\b.* | follow\ us\b.* |
        click\ here\b.* | advertisement | sponsored( content)? | continue\ reading\b.* |
        all\ rights\ reserved\b.* | ©.* | copyright\s*(©|\(c\)|\d{4}).* |
        the\ post\ .*\ appeared\ first\ on\ .* |
        [.·•–—*\-]([\ .·•–—*\-])*  # separators: "***", "• • •"
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
# Headings that open a block of furniture: the link list or comment form under them goes too.
_SECTION = re.compile(
    r"""^(
        (read\ (also|more|next)|see\ also|also\ read)\s*:? |
        (recent|related|popular|latest|more|top)\ (articles|news|stories|posts)\s*:? |
        you\ (may|might)\ also\ like\b.* |
        leave\ a\ (reply|comment)\b.*
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
# "Home › World › Europe". The ASCII separators / | > need spaces around them, so "US/UK talks
# end", "24/7" or "Kyiv/Moscow" are not mistaken for a trail.
_SEP = r"(\s*[›»]\s*|\s+[>/|]\s+)"
_BREADCRUMB = re.compile(
    rf"^(\w[\w &'-]{{0,30}}?{_SEP}){{1,6}}\w[\w &'-]{{0,30}}?(\s*[›»]|\s+[>/|])?\s*$"
    rf"|^\w[\w &'-]{{0,30}}?\s*[›»]\s*$"
)
_MAX_WORDS = 15  # boilerplate lines are short; a long line that starts "Read more" is prose
_SENTENCE_END = (".", "!", "?", '"', "”", "’", "'", ")", "…")


def _headline_shaped(line: str) -> bool:
    """A link title in a list: short, and not ending the way a sentence ends."""
    return len(line.split()) <= _MAX_WORDS and not line.endswith(_SENTENCE_END)


def strip_boilerplate(text: str) -> str:
    kept = []
    in_section = False  # under a "Recent Articles" / "Leave A Reply" heading
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            kept.append(line)
            continue
        short = len(stripped.split()) <= _MAX_WORDS
        if short and _SECTION.match(stripped):
            in_section = True
            continue
        if short and (_BOILERPLATE.match(stripped) or _BREADCRUMB.match(stripped)):
            continue
        if in_section and _headline_shaped(stripped):
            continue
        in_section = False
        kept.append(line)
    return "\n".join(kept).strip()
