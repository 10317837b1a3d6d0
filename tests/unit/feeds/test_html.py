"""HTML to text: what a reader sees, never what a browser would run."""

from __future__ import annotations

import pytest

from monitor.feeds.html import html_to_text, one_line


def test_scripts_styles_and_templates_are_dropped() -> None:
    html = (
        "<p>Slow-cooker chili.</p>"
        "<script>googletag.setTargeting('kw', ['ukraine-invasion', 'nuclear-alert']);</script>"
        "<style>p { color: red }</style><noscript>Enable JavaScript</noscript>"
        "<template><p>hidden</p></template><p>Serve hot.</p>"
    )
    assert html_to_text(html) == "Slow-cooker chili.\nServe hot."


def test_nested_skipped_elements_do_not_leak_after_the_inner_one_closes() -> None:
    html = "<svg><script>alert(1)</script><text>logo</text></svg>After"
    assert html_to_text(html) == "After"


def test_a_self_closed_script_tag_does_not_swallow_the_text_after_it() -> None:
    assert html_to_text("Before<script/>after") == "Beforeafter"


def test_entities_are_decoded() -> None:
    html = "Tom &amp; Jerry &eacute;t&eacute; &#8220;quoted&#8221; &lt;tag&gt; &#x2013; done"
    assert html_to_text(html) == "Tom & Jerry été “quoted” <tag> – done"


def test_block_elements_become_line_breaks_and_inline_elements_do_not() -> None:
    html = (
        "<h2>Headline</h2><p>First <strong>bold</strong> and <em>em</em> "
        '<a href="/x">link</a>.</p><ul><li>one</li><li>two</li></ul>line<br>break<br/>again'
    )
    assert html_to_text(html).split("\n") == [
        "Headline",
        "First bold and em link.",
        "one",
        "two",
        "line",
        "break",
        "again",
    ]


def test_whitespace_is_collapsed_and_empty_lines_dropped() -> None:
    html = "<p>  lots \t of\u00a0\u00a0space  </p>\n\n\n<p></p><div> </div><p>next</p>"
    assert html_to_text(html) == "lots of space\nnext"


@pytest.mark.parametrize(
    "disguised",
    [
        "invoice\u202egpj.exe",  # right-to-left override
        "invoice\u2066gpj.exe\u2069",  # isolate
        "invoice\x00\x07\x1b\x7fgpj.exe",  # C0 controls and DEL
    ],
)
def test_control_characters_and_bidi_overrides_are_removed(disguised: str) -> None:
    assert html_to_text(disguised) == "invoicegpj.exe"  # plain text path
    assert html_to_text(f"<p>{disguised}</p>") == "invoicegpj.exe"  # parsed path


def test_plain_text_with_angle_brackets_survives() -> None:
    assert html_to_text("x < y and y > z") == "x < y and y > z"
    assert html_to_text("AT&T") == "AT&T"


def test_one_line_joins_blocks_into_a_headline() -> None:
    assert one_line("<p>Putin warns</p>\n<p>the <b>West</b></p>  ") == "Putin warns the West"
    assert one_line("Tom &amp; Jerry\u202e") == "Tom & Jerry"
    assert one_line("") == ""
