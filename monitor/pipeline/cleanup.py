"""Page boilerplate removal. Scraped and syndicated copies of a story carry the host site's
furniture ("Read Also", "Leave A Reply", breadcrumbs); left in, it pads the text with words that
match rules and dilutes near-duplicate similarity between copies of one story."""

from __future__ import annotations

import re

_BOILERPLATE = re.compile(
    r"""^(
        read\ (also|more|next)\b.* | see\ also\b.* | also\ read\b.* |
        (recent|related|popular|latest|more|top)\ (articles|news|stories|posts)\b.* |
        leave\ a\ (reply|comment)\b.* | please\ enter\ your\ (comment|name|email)\b.* |
        (subscribe|sign\ up)\ (to|for)\b.* | share\ (this|on)\b.* | follow\ us\b.* |
        click\ here\b.* | advertisement | sponsored( content)? | continue\ reading\b.* |
        all\ rights\ reserved\b.* | ©.* | copyright\ ©?.* | the\ post\ .*\ appeared\ first\ on\ .* |
        [.·•–—\-]+
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_BREADCRUMB = re.compile(r"^(\w[\w &'-]{0,30}\s*[›»>/|]\s*){1,6}\w[\w &'-]{0,30}\s*[›»>/|]?$")
_MAX_WORDS = 15  # boilerplate lines are short; a long line that starts "Read more" is prose


def strip_boilerplate(text: str) -> str:
    kept = []
    for line in text.split("\n"):
        stripped = line.strip()
        short = len(stripped.split()) <= _MAX_WORDS
        if short and (_BOILERPLATE.match(stripped) or _BREADCRUMB.match(stripped)):
            continue
        kept.append(line)
    return "\n".join(kept).strip()
