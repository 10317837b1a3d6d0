"""Every metric the monitor exports, defined once. The registry is a parameter so each test (and
each runtime) gets its own; label sets are bounded (feed, rule, route, sink names — never URLs or
titles)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
_SCORE_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 85, 100, 130, 170, 250)
# Where records or alerts are set aside: the embedded runtime's one stage, the Kafka agents.
DEAD_LETTER_STAGES = ("process", "ingest", "cluster", "alerting", "deliver")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.feed_polls = Counter(
            "monitor_feed_polls",
            "Feed polls by outcome (ok, not_modified, error, timeout).",
            ["feed", "outcome"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "monitor_feed_poll_duration_seconds",
            "Time to fetch and parse one feed.",
            ["feed"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.feed_last_success = Gauge(
            "monitor_feed_last_success_timestamp_seconds",
            "Unix time of the last successful poll of a feed.",
            ["feed"],
            registry=r,
        )
        self.feed_interval = Gauge(
            "monitor_feed_interval_seconds",
            "A feed's configured polling interval (staleness is judged against it).",
            ["feed"],
            registry=r,
        )
        self.feed_poll_interval = Gauge(
            "monitor_feed_poll_interval_seconds",
            "The interval a feed's schedule chose at its last successful poll: adapted to how "
            "often it publishes, within the poller's bounds (before jitter and the publisher's "
            "ttl, Cache-Control and skipHours).",
            ["feed"],
            registry=r,
        )
        self.feed_next_poll = Gauge(
            "monitor_feed_next_poll_timestamp_seconds",
            "Unix time a feed is next due to be polled (+Inf for a retired feed).",
            ["feed"],
            registry=r,
        )
        self.feed_consecutive_errors = Gauge(
            "monitor_feed_consecutive_errors",
            "Polls of a feed that failed in a row (0 after a success).",
            ["feed"],
            registry=r,
        )
        self.feed_retired = Gauge(
            "monitor_feed_retired",
            "1 for a feed that answered 410 Gone: not polled again until the feed list gives "
            "it another URL.",
            ["feed"],
            registry=r,
        )
        self.feed_entries = Gauge(
            "monitor_feed_entries",
            "Entries in a feed's last successful fetch.",
            ["feed"],
            registry=r,
        )
        self.articles = Counter(
            "monitor_articles_ingested",
            "Articles read from feeds, before dedupe.",
            ["feed"],
            registry=r,
        )
        self.duplicates = Counter(
            "monitor_duplicates",
            "Articles recognised as duplicates, by kind (exact, near).",
            ["kind"],
            registry=r,
        )
        self.stories_active = Gauge(
            "monitor_active_stories",
            "Stories open (not yet quiet past the story window).",
            registry=r,
        )
        self.rule_matches = Counter(
            "monitor_rule_matches", "Articles a rule fired on.", ["rule"], registry=r
        )
        self.severity = Histogram(
            "monitor_severity_score",
            "Story severity score at each story event with a match.",
            buckets=_SCORE_BUCKETS,
            registry=r,
        )
        self.alerts = Counter(
            "monitor_alerts",
            "Alerts raised, by route, level and kind.",
            ["route", "level", "kind"],
            registry=r,
        )
        self.deliveries = Counter(
            "monitor_deliveries",
            "Alerts by sink and delivery outcome (ok, error, retry, duplicate, no_route, "
            "silenced, superseded).",
            ["sink", "outcome"],
            registry=r,
        )
        self.held = Counter(
            "monitor_alerts_held",
            "Alerts held back to go out later in a digest, by route and reason "
            "(group, quiet, rate, retry: the destination failed and is tried again later).",
            ["route", "reason"],
            registry=r,
        )
        self.digests = Counter(
            "monitor_digests",
            "Digests sent (several alerts in one message), by route and reason.",
            ["route", "reason"],
            registry=r,
        )
        self.silenced = Counter(
            "monitor_alerts_silenced",
            "Alerts not sent because a silence matched, by route.",
            ["route"],
            registry=r,
        )
        self.delivery_duration = Histogram(
            "monitor_delivery_duration_seconds",
            "Time for a sink to deliver one alert.",
            ["sink"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "monitor_end_to_end_latency_seconds",
            "From the article's fetch to its alert's delivery.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rules_loaded = Gauge("monitor_rules_loaded", "Rules in force.", registry=r)
        self.rule_reloads = Counter(
            "monitor_rule_reloads",
            "Rule set loads by outcome (ok, error).",
            ["outcome"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "monitor_consumer_lag",
            "Records behind the end of a topic partition.",
            ["topic", "partition"],
            registry=r,
        )
        # Full text for teaser feeds (monitor/feeds/fulltext.py)
        self.fulltext_pages = Counter(
            "monitor_fulltext_pages",
            "Article pages for full text, by outcome (extended, no_gain, empty, cached, "
            "skipped, http_error, not_html, too_large, timeout, deadline, refused, error).",
            ["feed", "outcome"],
            registry=r,
        )
        self.fulltext_seconds = Histogram(
            "monitor_fulltext_seconds",
            "Time to fetch one article page (step=fetch) or extract its text (step=extract).",
            ["step"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
            registry=r,
        )
        # WebSub (monitor/feeds/websub.py)
        self.websub_notifications = Counter(
            "monitor_websub_notifications",
            "Content pushed by WebSub hubs, by outcome (ok, bad_signature, unsigned, gone, "
            "too_large, unreadable: no feed in it, error: not handed on, the hub retries).",
            ["feed", "outcome"],
            registry=r,
        )
        self.websub_requests = Counter(
            "monitor_websub_requests",
            "(Un)subscription requests sent to hubs, by mode and outcome (ok, error).",
            ["mode", "outcome"],
            registry=r,
        )
        self.websub_verifications = Counter(
            "monitor_websub_verifications",
            "Hubs' verifications of intent, by mode and outcome (accepted, refused).",
            ["mode", "outcome"],
            registry=r,
        )
        self.websub_active = Gauge(
            "monitor_websub_subscriptions",
            "WebSub subscriptions by state (subscribing, active, denied).",
            ["state"],
            registry=r,
        )
        self.dead_letters = Counter(
            "monitor_dead_letters",
            "Records or alerts set aside after failing, by stage.",
            ["stage"],
            registry=r,
        )

    def start_series(
        self, feeds: Sequence[str] = (), sinks: Sequence[str] = (), pipeline: bool = False
    ) -> None:
        """Create the labelled series a dashboard and the alerts compare at 0, before the first
        event: a counter that appears at 1 hides its first increase from rate() and increase(),
        and a table of feeds would show nothing for a feed that has never failed."""
        for feed in feeds:
            for outcome in ("ok", "not_modified", "error", "timeout"):
                self.feed_polls.labels(feed, outcome)
        for sink in sinks:
            for outcome in ("ok", "error", "retry"):
                self.deliveries.labels(sink, outcome)
        if pipeline:
            for stage in DEAD_LETTER_STAGES:
                self.dead_letters.labels(stage)
            for outcome in ("ok", "error"):
                self.rule_reloads.labels(outcome)
            for kind in ("exact", "near"):
                self.duplicates.labels(kind)
