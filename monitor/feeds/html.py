"""HTML to clean text: what a reader sees, never what a browser would run."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = {"script", "style", "noscript", "template", "iframe", "object", "svg", "head", "title"}
_BLOCK = {
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "aside",
    "figure",
    "figcaption",
    "pre",
    "hr",
    "dd",
    "dt",
    "nav",
    "main",
}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
# Control characters other than newline and tab, and bidi overrides that can disguise text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Text of an HTML fragment: block elements become line breaks, entities are decoded,
    scripts and styles dropped, control characters removed, whitespace collapsed."""
    if "<" not in html and "&" not in html:
        text = html
    else:
        parser = _Text()
        parser.feed(html)
        parser.close()
        text = "".join(parser.parts)
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def one_line(text: str) -> str:
    """Headline form: a single line, whitespace collapsed."""
    return " ".join(html_to_text(text).split())


_ENTITY_START = re.compile(r"&[#\w]*")


def clip_markup(html: str, limit: int) -> str:
    """At most ``limit`` characters of an HTML fragment, without a tag or an entity cut in half
    at the end (which would otherwise show as text): bounds the work of :func:`html_to_text` on
    a hostile feed's megabyte headline."""
    if len(html) <= limit:
        return html
    cut = html[:limit]
    lt = cut.rfind("<")
    if lt > cut.rfind(">"):
        cut = cut[:lt]
    amp = cut.rfind("&")
    if amp >= 0 and _ENTITY_START.fullmatch(cut, amp):
        cut = cut[:amp]
    return cut
