"""A feed server for the reliability scenarios: RSS over real HTTP on 127.0.0.1, from a thread.

Each feed is a list of items, each shown from a given moment: a scenario can serve a backlog
(everything at once) or a stream (items appearing over time, as news does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

from monitor.feeds.sources import FeedSource
from monitor.models import Article


@dataclass(frozen=True)
class Item:
    title: str
    link: str
    description: str
    published: datetime
    shown_at: float = 0.0  # seconds after the server started


@dataclass
class FeedServer:
    feeds: dict[str, list[Item]]
    requests: int = 0
    base: str = ""
    _started: float = 0.0
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def visible(self, name: str) -> list[Item]:
        now = time.monotonic() - self._started
        return [i for i in self.feeds.get(name, []) if i.shown_at <= now]

    def shown(self) -> list[Item]:
        """Every item some request could have seen by now."""
        return [i for name in self.feeds for i in self.visible(name)]

    def rss(self, name: str) -> bytes:
        items = sorted(self.visible(name), key=lambda i: i.published, reverse=True)
        out = [
            '<?xml version="1.0" encoding="utf-8"?>',
            '<rss version="2.0"><channel>',
            f"<title>{escape(name)}</title><link>https://{name}.example/</link>",
            "<description>reliability scenario feed</description>",
        ]
        for i in items:
            out.append(
                "<item>"
                f"<title>{escape(i.title)}</title>"
                f"<link>{escape(i.link)}</link>"
                f'<guid isPermaLink="true">{escape(i.link)}</guid>'
                f"<description>{escape(i.description)}</description>"
                f"<pubDate>{format_datetime(i.published)}</pubDate>"
                "</item>"
            )
        out.append("</channel></rss>")
        return "\n".join(out).encode("utf-8")

    def start(self) -> FeedServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1].removesuffix(".xml")
                with server._lock:
                    server.requests += 1
                if name not in server.feeds:
                    self.send_error(404)
                    return
                body = server.rss(name)
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}/feeds"
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def feed_list(self, path: Path, interval: str = "10s") -> Path:
        """A feed list (YAML) naming every feed of this server."""
        # A feed allowed private addresses (the netguard's allow_private), when the feed list
        # knows that setting: this server is on 127.0.0.1.
        private = "    allow_private: true\n" if "allow_private" in FeedSource.model_fields else ""
        lines = ["feeds:\n"]
        for name in self.feeds:
            lines.append(
                f"  - name: {name}\n    url: {self.base}/{name}.xml\n"
                f"    interval: {interval}\n    reliability: 0.9\n{private}"
            )
        path.write_text("".join(lines))
        return path


def items_from(
    articles: Sequence[Article],
    feeds: int,
    *,
    rate: float | None = None,
    start: float = 0.0,
    now: datetime | None = None,
) -> dict[str, list[Item]]:
    """Articles dealt round-robin into ``feeds`` feeds. Each item is dated a second after the
    last, ending now, so stories stay open (no pruning by age) and feeds look busy (polled at
    their configured interval). With ``rate`` (items/s) the items appear over time from
    ``start`` seconds on, and each is dated when it appears."""
    now = now or datetime.now(UTC)
    out: dict[str, list[Item]] = {f"feed-{n:02d}": [] for n in range(feeds)}
    names = list(out)
    for i, a in enumerate(articles):
        shown = 0.0 if rate is None else start + i / rate
        published = now - timedelta(seconds=len(articles) - i)
        if rate is not None:
            published = now + timedelta(seconds=shown)
        out[names[i % feeds]].append(
            Item(
                title=a.title,
                link=a.url or f"https://example.org/article/{a.id}",
                description=a.body,
                published=published,
                shown_at=shown,
            )
        )
    return out
